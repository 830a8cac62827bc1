//! Reading settings from `<PREFIX><FIELD>` environment variables: blank counts as unset, a value
//! that does not parse fails naming the variable, and constraints name the field.

use std::{collections::HashMap, fmt, str::FromStr};

use crate::error::ConfigError;

/// The variables of one simulator (`SHAREFILE_SIM__`, ...), through an injectable lookup so unit
/// tests need not touch the process environment.
pub struct Env<L> {
    prefix: &'static str,
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    pub fn new(prefix: &'static str, lookup: L) -> Self {
        Self { prefix, lookup }
    }

    /// `{prefix}{field}`, trimmed; `None` when unset or blank.
    pub fn get(&self, field: &str) -> Option<String> {
        (self.lookup)(&format!("{}{field}", self.prefix))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Like [`Env::get`], failing with "`{prefix}{field}` is required".
    pub fn required(&self, field: &'static str) -> Result<String, ConfigError> {
        self.get(field).ok_or_else(|| {
            ConfigError::constraint(field, format!("{}{field} is required", self.prefix))
        })
    }

    /// Parses `{prefix}{field}` when set and stores `map(value)` in `target`.
    pub fn set<V, T>(
        &self,
        field: &str,
        target: &mut T,
        map: impl FnOnce(V) -> T,
    ) -> Result<(), ConfigError>
    where
        V: FromStr,
        V::Err: fmt::Display,
    {
        if let Some(value) = self.get(field) {
            let parsed = value.parse::<V>().map_err(|e| ConfigError::Invalid {
                var: format!("{}{field}", self.prefix),
                value: value.clone(),
                source: e.to_string().into(),
            })?;
            *target = map(parsed);
        }
        Ok(())
    }

    /// A comma-separated list (`/Clients, /Archive`), items trimmed, empty ones dropped.
    pub fn list(&self, field: &str) -> Option<Vec<String>> {
        self.get(field).map(|value| {
            value
                .split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
    }

    /// A URL prefix, without trailing slashes.
    pub fn url(&self, field: &str) -> Option<String> {
        self.get(field)
            .map(|url| url.trim_end_matches('/').to_owned())
    }
}

/// A lookup over fixed `(name, value)` pairs, for unit tests of a `Config::from_lookup`.
pub fn vars_lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// An optional URL setting must start with `http://` or `https://`.
pub fn check_http_url(field: &'static str, url: Option<&str>) -> Result<(), ConfigError> {
    if url.is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        return Err(ConfigError::constraint(
            field,
            "must start with http:// or https://",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String> + use<>> {
        Env::new("TEST_SIM__", vars_lookup(vars))
    }

    #[test]
    fn reads_parses_and_maps() {
        let env = env(&[
            ("TEST_SIM__SEED", " 7 "),
            ("TEST_SIM__TTL_SECS", "1.5"),
            ("TEST_SIM__BLANK", "  "),
            ("TEST_SIM__FOLDERS", "/a, ,/b"),
            ("TEST_SIM__PUBLIC_URL", "http://sim:1//"),
        ]);
        let (mut seed, mut ttl, mut quota) = (0_u64, Duration::ZERO, None::<u64>);
        env.set("SEED", &mut seed, |v| v).unwrap();
        env.set("TTL_SECS", &mut ttl, Duration::from_secs_f64)
            .unwrap();
        env.set("QUOTA", &mut quota, Some).unwrap();
        assert_eq!((seed, ttl, quota), (7, Duration::from_millis(1500), None));
        assert_eq!(env.get("BLANK"), None);
        assert_eq!(env.list("FOLDERS").unwrap(), ["/a", "/b"]);
        assert_eq!(env.url("PUBLIC_URL").as_deref(), Some("http://sim:1"));
    }

    #[test]
    fn errors_name_the_variable_or_field() {
        let env = env(&[("TEST_SIM__SEED", "many")]);
        let mut seed = 0_u64;
        let err = env.set("SEED", &mut seed, |v| v).unwrap_err();
        assert!(err.to_string().starts_with("TEST_SIM__SEED:"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        let err = env.required("CLIENT_ID").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CLIENT_ID: TEST_SIM__CLIENT_ID is required"
        );
        assert!(check_http_url("public_url", Some("ftp://x")).is_err());
        assert!(check_http_url("public_url", Some("https://x")).is_ok());
        assert!(check_http_url("public_url", None).is_ok());
    }
}
