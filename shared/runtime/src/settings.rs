//! Typed settings from the environment, validated at start-up.
//!
//! Every field `FIELD` of service `my-service` is read from `MY_SERVICE__FIELD`, falling back to
//! `BRAIN__FIELD` (shared by all services), then to its default. A missing required field or an
//! unparsable value stops start-up with the variable named. Secrets are `SecretString`s: their
//! `Debug` output is redacted and they are exposed only where a connection is built.

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

use brain_events::codec::SchemaIds;
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

    pub fn secret(&self, field: &str) -> Result<SecretString, SettingsError> {
        self.required::<String>(field).map(SecretString::from)
    }
}

/// Connection settings for Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Extra librdkafka properties, `key=value;key=value` (e.g. `security.protocol=SASL_SSL`).
    pub properties: Vec<(String, String)>,
    pub sasl_password: Option<SecretString>,
    pub topic_partitions: i32,
    pub topic_replication: i32,
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
        let properties = env
            .optional::<String>("KAFKA_PROPERTIES")?
            .map(|raw| parse_properties(&raw))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            service,
            kafka: KafkaSettings {
                brokers: env.or("KAFKA_BROKERS", "127.0.0.1:9092".to_string())?,
                properties,
                sasl_password: env.optional::<String>("KAFKA_SASL_PASSWORD")?.map(SecretString::from),
                topic_partitions: env.or("TOPIC_PARTITIONS", 6)?,
                topic_replication: env.or("TOPIC_REPLICATION", 1)?,
            },
            schema_registry_url: SecretString::from(
                env.or("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081".to_string())?,
            ),
            schema_ids: if env.or("AUTO_REGISTER_SCHEMAS", true)? {
                SchemaIds::AutoRegister
            } else {
                SchemaIds::LookupOnly
            },
            database_url: env.secret("DATABASE_URL")?,
            ops_addr: env.or("OPS_ADDR", default_ops_addr.parse().expect("valid default address"))?,
            otlp_endpoint: env.optional("OTLP_ENDPOINT")?,
            log_json: env.or::<String>("LOG_FORMAT", "json".into())? != "text",
        })
    }
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
    fn secrets_are_redacted_in_debug() {
        let secret = SecretString::from("hunter2".to_string());
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2");
    }
}
