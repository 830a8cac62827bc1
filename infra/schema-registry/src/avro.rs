//! Parsing and normalizing submitted Avro schemas.
//!
//! Two submissions are "the same schema" (same id, no new version) when their normalized forms
//! match. The normalized form is the compact JSON `apache_avro` writes for the parsed schema: it
//! ignores whitespace and key order but, unlike the Parsing Canonical Form, keeps defaults, docs,
//! aliases, logical types and custom properties. Confluent compares a similar form; the Parsing
//! Canonical Form would merge a field with a default into one without, skipping the
//! compatibility check and handing out the wrong schema for an id.

use apache_avro::Schema;

/// A schema that parsed, with the text it came from.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub text: String,
    pub schema: Schema,
    pub normalized: String,
}

/// Parses `text` as an Avro schema; the error is a message for the client.
pub fn parse(text: &str) -> Result<ParsedSchema, String> {
    if text.trim().is_empty() {
        return Err("Empty schema".to_owned());
    }
    let schema = Schema::parse_str(text).map_err(|err| format!("Invalid schema: {err}"))?;
    let normalized = normalize(&schema)?;
    Ok(ParsedSchema {
        text: text.to_owned(),
        schema,
        normalized,
    })
}

/// The de-duplication key of a parsed schema.
pub fn normalize(schema: &Schema) -> Result<String, String> {
    serde_json::to_string(schema).map_err(|err| format!("Invalid schema: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_key_order_do_not_matter() {
        let a = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let b = parse(
            r#"{ "fields": [ {"type": "int", "name": "a"} ],
                 "name": "R", "type": "record" }"#,
        );
        assert_eq!(a.unwrap().normalized, b.unwrap().normalized);
    }

    #[test]
    fn defaults_and_logical_types_matter() {
        let plain = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let default = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}"#,
        );
        assert_ne!(plain.unwrap().normalized, default.unwrap().normalized);
        let long = parse(r#""long""#).unwrap();
        let millis = parse(r#"{"type":"long","logicalType":"timestamp-millis"}"#).unwrap();
        assert_ne!(long.normalized, millis.normalized);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("{not json").is_err());
        assert!(parse(r#"{"type":"record","name":"R"}"#).is_err());
    }
}
