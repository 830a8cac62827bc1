//! Typed settings from the environment, validated at start-up.
//!
//! Every field `FIELD` of service `my-service` is read from `MY_SERVICE__FIELD`, falling back to
//! `BRAIN__FIELD` (shared by all services), then to its default. A missing required field or an
//! unparsable value stops start-up with the variable named. Secrets are `SecretString`s: their
//! `Debug` output is redacted and they are exposed only where a connection is built.

use std::{
    fmt::{self, Display},
    net::SocketAddr,
    ops::RangeInclusive,
    str::FromStr,
    time::Duration,
};

use brain_events::{codec::SchemaIds, topics::Namespace};
use secrecy::SecretString;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("missing required setting: set {service_var} (or {shared_var})")]
    Missing { service_var: String, shared_var: String },
    #[error("invalid setting {var}={value:?}: {reason}")]
    Invalid { var: String, value: String, reason: String },
}

/// Reads settings for one service.
#[derive(Debug, Clone)]
pub struct Env {
    prefix: String,
}

impl Env {
    pub fn new(service: &str) -> Self {
        Self { prefix: service.to_uppercase().replace('-', "_") }
    }

    fn lookup(&self, field: &str) -> Option<(String, String)> {
        [format!("{}__{field}", self.prefix), format!("BRAIN__{field}")]
            .into_iter()
            .find_map(|var| std::env::var(&var).ok().filter(|v| !v.is_empty()).map(|v| (var, v)))
    }

    fn parse<T: FromStr>(var: String, value: String) -> Result<T, SettingsError>
    where
        T::Err: Display,
    {
        value.parse().map_err(|e: T::Err| SettingsError::Invalid { var, value, reason: e.to_string() })
    }

    pub fn optional<T: FromStr>(&self, field: &str) -> Result<Option<T>, SettingsError>
    where
        T::Err: Display,
    {
        self.lookup(field).map(|(var, value)| Self::parse(var, value)).transpose()
    }

    pub fn required<T: FromStr>(&self, field: &str) -> Result<T, SettingsError>
    where
        T::Err: Display,
    {
        self.optional(field)?.ok_or_else(|| SettingsError::Missing {
            service_var: format!("{}__{field}", self.prefix),
            shared_var: format!("BRAIN__{field}"),
        })
    }

    pub fn or<T: FromStr>(&self, field: &str, default: T) -> Result<T, SettingsError>
    where
        T::Err: Display,
    {
        Ok(self.optional(field)?.unwrap_or(default))
    }

    /// A duration given in milliseconds by `FIELD_MS`.
    pub fn millis(&self, field: &str, default_ms: u64) -> Result<Duration, SettingsError> {
        Ok(Duration::from_millis(self.or(&format!("{field}_MS"), default_ms)?))
    }

    /// Like `or`, and the value must lie within `range` (e.g. `MAX_ATTEMPTS=0` is refused).
    pub fn ranged<T>(&self, field: &str, default: T, range: RangeInclusive<T>) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.or(field, default)?;
        let var = self.lookup(field).map(|(var, _)| var).unwrap_or_else(|| format!("{}__{field}", self.prefix));
        in_range(var, value, &range)
    }

    /// A duration in milliseconds by `FIELD_MS`, within `range_ms`.
    pub fn millis_in(&self, field: &str, default_ms: u64, range_ms: RangeInclusive<u64>) -> Result<Duration, SettingsError> {
        Ok(Duration::from_millis(self.ranged(&format!("{field}_MS"), default_ms, range_ms)?))
    }

    pub fn secret(&self, field: &str) -> Result<SecretString, SettingsError> {
        self.required::<String>(field).map(SecretString::from)
    }

    /// A secret only some deployments need (unset or empty: none).
    pub fn optional_secret(&self, field: &str) -> Result<Option<SecretString>, SettingsError> {
        Ok(self.optional::<String>(field)?.filter(|v| !v.is_empty()).map(SecretString::from))
    }
}

/// Connection settings for Kafka.
#[derive(Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Extra librdkafka properties, `key=value;key=value` (e.g. `security.protocol=SASL_SSL`).
    /// They may carry credentials, so `Debug` shows their values only for harmless keys.
    pub properties: Vec<(String, String)>,
    pub sasl_password: Option<SecretString>,
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// Prefix of every topic and consumer group (empty: the catalogue's names as they are).
    pub namespace: Namespace,
}

impl KafkaSettings {
    /// Plain settings for one broker list, as tests and tools need them.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            properties: Vec::new(),
            sasl_password: None,
            topic_partitions: 6,
            topic_replication: 1,
            namespace: Namespace::default(),
        }
    }

    /// `KAFKA_BROKERS`, `KAFKA_PROPERTIES`, `KAFKA_SASL_PASSWORD`, `TOPIC_PARTITIONS`,
    /// `TOPIC_REPLICATION` and `KAFKA_NAMESPACE` of `env`'s service (or `BRAIN__`).
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let properties = env
            .optional::<String>("KAFKA_PROPERTIES")?
            .map(|raw| parse_properties(&raw))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            brokers: env.or("KAFKA_BROKERS", "127.0.0.1:9092".to_string())?,
            properties,
            sasl_password: env.optional::<String>("KAFKA_SASL_PASSWORD")?.map(SecretString::from),
            topic_partitions: env.ranged("TOPIC_PARTITIONS", 6, 1..=10_000)?,
            topic_replication: env.ranged("TOPIC_REPLICATION", 1, 1..=16)?,
            namespace: match env.optional::<String>("KAFKA_NAMESPACE")? {
                None => Namespace::default(),
                Some(raw) => Namespace::new(&raw).map_err(|e| SettingsError::Invalid {
                    var: "KAFKA_NAMESPACE".into(),
                    value: raw.clone(),
                    reason: e.to_string(),
                })?,
            },
        })
    }
}

/// Property keys whose values are never shown (matched as substrings of the lower-cased key).
const SECRET_PROPERTY_WORDS: [&str; 6] = ["password", "secret", "jaas", "token", "key", "credential"];

fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_PROPERTY_WORDS.iter().any(|word| key.contains(word))
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| if is_secret_property(k) { format!("{k}=[REDACTED]") } else { format!("{k}={v}") })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("properties", &properties)
            .field("sasl_password", &self.sasl_password)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication", &self.topic_replication)
            .field("namespace", &self.namespace.to_string())
            .finish()
    }
}

/// What every Brain service needs.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub service: &'static str,
    pub kafka: KafkaSettings,
    /// May carry credentials (`https://key:secret@host`), hence secret.
    pub schema_registry_url: SecretString,
    pub schema_ids: SchemaIds,
    pub database_url: SecretString,
    pub ops_addr: SocketAddr,
    pub otlp_endpoint: Option<String>,
    pub log_json: bool,
}

impl CommonSettings {
    pub fn from_env(service: &'static str, default_ops_addr: &str) -> Result<Self, SettingsError> {
        let env = Env::new(service);
        Ok(Self {
            service,
            kafka: KafkaSettings::from_env(&env)?,
            schema_registry_url: registry_url(&env)?,
            schema_ids: schema_ids(&env)?,
            database_url: env.secret("DATABASE_URL")?,
            ops_addr: env.or("OPS_ADDR", default_ops_addr.parse().expect("valid default address"))?,
            otlp_endpoint: env.optional("OTLP_ENDPOINT")?,
            log_json: env.or::<String>("LOG_FORMAT", "json".into())? != "text",
        })
    }
}

/// `SCHEMA_REGISTRY_URL` (may carry credentials, hence secret).
pub fn registry_url(env: &Env) -> Result<SecretString, SettingsError> {
    Ok(SecretString::from(env.or("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081".to_string())?))
}

/// `AUTO_REGISTER_SCHEMAS` (default true): whether producers register their schemas.
pub fn schema_ids(env: &Env) -> Result<SchemaIds, SettingsError> {
    Ok(if env.or("AUTO_REGISTER_SCHEMAS", true)? { SchemaIds::AutoRegister } else { SchemaIds::LookupOnly })
}

fn in_range<T: PartialOrd + Display>(var: String, value: T, range: &RangeInclusive<T>) -> Result<T, SettingsError> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(SettingsError::Invalid {
        var,
        value: value.to_string(),
        reason: format!("must be between {} and {}", range.start(), range.end()),
    })
}

fn parse_properties(raw: &str) -> Result<Vec<(String, String)>, SettingsError> {
    raw.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| SettingsError::Invalid {
                    var: "KAFKA_PROPERTIES".into(),
                    value: pair.into(),
                    reason: "expected key=value".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn properties_parse_and_reject_garbage() {
        let parsed = parse_properties("security.protocol=SASL_SSL; sasl.mechanisms=PLAIN;").unwrap();
        assert_eq!(parsed[1], ("sasl.mechanisms".to_string(), "PLAIN".to_string()));
        assert!(parse_properties("nonsense").is_err());
    }

    #[test]
    fn kafka_properties_with_credentials_are_redacted_in_debug() {
        let mut settings = KafkaSettings::new("b:9092");
        settings.properties = parse_properties(
            "security.protocol=SASL_SSL;sasl.jaas.config=hunter1;ssl.key.password=hunter2;sasl.oauthbearer.client.secret=hunter3",
        )
        .unwrap();
        settings.sasl_password = Some(SecretString::from("hunter4".to_string()));
        let debug = format!("{settings:?}");
        assert!(debug.contains("security.protocol=SASL_SSL"), "{debug}");
        for secret in ["hunter1", "hunter2", "hunter3", "hunter4"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_variable() {
        let err = in_range("RANGE_TEST__MAX_ATTEMPTS".into(), 0u32, &(1..=100)).unwrap_err().to_string();
        assert!(err.contains("RANGE_TEST__MAX_ATTEMPTS") && err.contains("between 1 and 100"), "{err}");
        assert_eq!(in_range("X".into(), 7u32, &(1..=100)).unwrap(), 7);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let secret = SecretString::from("hunter2".to_string());
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2");
    }
}
