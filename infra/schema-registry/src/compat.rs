//! Avro compatibility rules as Confluent Schema Registry applies them.
//!
//! BACKWARD: the new schema can read data written with the existing one(s).
//! FORWARD: the existing schema(s) can read data written with the new one.
//! FULL: both. Plain levels look at the latest existing schema only, `*_TRANSITIVE` at all.
//!
//! A resolution that `apache_avro` rates only `Partial` (a writer enum symbol or union branch the
//! reader lacks) counts as incompatible, as it does in Java Avro and so in Confluent.

use std::{error::Error as _, fmt, str::FromStr};

use apache_avro::{
    Schema,
    schema_compatibility::{Compatibility, SchemaCompatibility},
};

/// A compatibility level, spelled on the wire as `BACKWARD`, `FULL_TRANSITIVE`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    /// The new schema must read old data.
    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// Old schemas must read new data.
    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown compatibility level '{0}'")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Case-insensitive, like Confluent's `CompatibilityLevel.forName`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// Checks `new` against `existing` (oldest first) under `level`.
///
/// Returns every problem found, one human-readable message each.
pub fn check(level: Level, new: &Schema, existing: &[Schema]) -> Result<(), Vec<String>> {
    let targets: Vec<(usize, &Schema)> = if level.transitive() {
        existing.iter().enumerate().collect()
    } else {
        existing
            .iter()
            .enumerate()
            .next_back()
            .into_iter()
            .collect()
    };
    let total = existing.len();
    let mut messages = Vec::new();
    for (index, old) in targets {
        let which = if index + 1 == total {
            "the latest schema".to_owned()
        } else {
            format!("schema {} of {total} (oldest first)", index + 1)
        };
        if level.backward()
            && let Err(why) = can_read(old, new)
        {
            messages.push(format!(
                "{level}: the new schema cannot read data written with {which}: {why}"
            ));
        }
        if level.forward()
            && let Err(why) = can_read(new, old)
        {
            messages.push(format!(
                "{level}: {which} cannot read data written with the new schema: {why}"
            ));
        }
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(messages)
    }
}

fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err("the reader lacks some of the writer's enum symbols \
             or union branches, so some data cannot be read"
            .to_owned()),
        Err(err) => {
            // Field mismatches nest the real cause; spell out the whole chain.
            let mut text = err.to_string();
            let mut source = err.source();
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"User","fields":[{fields}]}}"#
        ))
        .expect("test schema parses")
    }

    fn v1() -> Schema {
        record(r#"{"name":"id","type":"long"}"#)
    }

    fn with_default() -> Schema {
        record(r#"{"name":"id","type":"long"},{"name":"name","type":"string","default":""}"#)
    }

    fn without_default() -> Schema {
        record(r#"{"name":"id","type":"long"},{"name":"name","type":"string"}"#)
    }

    #[test]
    fn parses_levels_case_insensitively() {
        assert_eq!(
            "full_transitive".parse::<Level>().unwrap(),
            Level::FullTransitive
        );
        assert_eq!("Backward".parse::<Level>().unwrap(), Level::Backward);
        assert!("SIDEWAYS".parse::<Level>().is_err());
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>().unwrap(), level);
        }
    }

    #[test]
    fn none_accepts_anything() {
        let unrelated = Schema::parse_str(r#""string""#).unwrap();
        assert!(check(Level::None, &unrelated, &[v1()]).is_ok());
    }

    #[test]
    fn no_existing_versions_is_compatible() {
        for level in Level::ALL {
            assert!(check(level, &v1(), &[]).is_ok());
        }
    }

    #[test]
    fn backward_accepts_added_field_with_default() {
        assert!(check(Level::Backward, &with_default(), &[v1()]).is_ok());
    }

    #[test]
    fn backward_rejects_added_field_without_default() {
        let messages = check(Level::Backward, &without_default(), &[v1()]).unwrap_err();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("name"), "{messages:?}");
    }

    #[test]
    fn forward_accepts_added_field_without_default() {
        assert!(check(Level::Forward, &without_default(), &[v1()]).is_ok());
    }

    #[test]
    fn forward_rejects_removed_field_without_default() {
        assert!(check(Level::Forward, &v1(), &[without_default()]).is_err());
    }

    #[test]
    fn full_needs_both_directions() {
        assert!(check(Level::Full, &with_default(), &[v1()]).is_ok());
        assert!(check(Level::Full, &without_default(), &[v1()]).is_err());
    }

    #[test]
    fn transitive_checks_every_version_plain_only_the_latest() {
        // Compatible with `with_default` (the latest) but not with `v1`.
        let existing = [v1(), with_default()];
        assert!(check(Level::Backward, &without_default(), &existing).is_ok());
        let messages = check(Level::BackwardTransitive, &without_default(), &existing).unwrap_err();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("schema 1 of 2"), "{messages:?}");
    }

    #[test]
    fn type_promotion_is_one_way() {
        let int = record(r#"{"name":"n","type":"int"}"#);
        let long = record(r#"{"name":"n","type":"long"}"#);
        assert!(check(Level::Backward, &long, std::slice::from_ref(&int)).is_ok());
        assert!(check(Level::Backward, &int, &[long]).is_err());
    }

    #[test]
    fn partial_enum_match_is_incompatible() {
        let ab = Schema::parse_str(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#).unwrap();
        let a = Schema::parse_str(r#"{"type":"enum","name":"E","symbols":["A"]}"#).unwrap();
        assert!(check(Level::Backward, &ab, std::slice::from_ref(&a)).is_ok());
        assert!(check(Level::Backward, &a, &[ab]).is_err());
    }

    #[test]
    fn narrowing_a_union_is_incompatible() {
        let nullable = record(r#"{"name":"s","type":["null","string"],"default":null}"#);
        let plain = record(r#"{"name":"s","type":"string"}"#);
        assert!(check(Level::Backward, &nullable, std::slice::from_ref(&plain)).is_ok());
        assert!(check(Level::Backward, &plain, &[nullable]).is_err());
    }
}
