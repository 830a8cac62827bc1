//! A simulator's settings from `{PREFIX}{FIELD}` environment variables: trimmed, empty meaning
//! unset, parsed into the field's type, and every failure naming the variable or field.

use std::{fmt, str::FromStr};

/// A setting that is missing or invalid, naming the variable or field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: invalid value {value:?}")]
    Invalid {
        var: String,
        value: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{field}: {message}")]
    Constraint {
        field: &'static str,
        message: String,
    },
}

/// A setting's value breaks a rule (`field` as named in the config struct or its variable).
pub fn constraint(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Constraint {
        field,
        message: message.to_owned(),
    }
}

/// The `{prefix}{FIELD}` variables of one simulator, read through `lookup` (the process
/// environment, or a map in unit tests).
pub struct Env<L> {
    prefix: &'static str,
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    pub fn new(prefix: &'static str, lookup: L) -> Self {
        Self { prefix, lookup }
    }

    /// The trimmed value of `{prefix}{field}`; `None` when unset or empty.
    pub fn get(&self, field: &str) -> Option<String> {
        (self.lookup)(&format!("{}{field}", self.prefix))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Like [`Env::get`], and an error naming the variable when it is unset.
    pub fn required(&self, field: &'static str) -> Result<String, ConfigError> {
        self.get(field)
            .ok_or_else(|| constraint(field, &format!("{}{field} is required", self.prefix)))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parses_and_names_the_variable() {
        let env = Env::new("SIM__", |name: &str| match name {
            "SIM__PORT" => Some(" 8080 ".into()),
            "SIM__EMPTY" => Some("  ".into()),
            "SIM__BAD" => Some("eight".into()),
            _ => None,
        });
        let mut port = 0u16;
        env.set("PORT", &mut port, |v| v).unwrap();
        assert_eq!(port, 8080);
        assert_eq!(env.get("EMPTY"), None);
        let err = env
            .set("BAD", &mut port, |v: u16| v)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "SIM__BAD: invalid value \"eight\"");
        let err = env.required("MISSING").unwrap_err().to_string();
        assert_eq!(err, "MISSING: SIM__MISSING is required");
    }
}
