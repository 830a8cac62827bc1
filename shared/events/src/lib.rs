//! Brain's events: the Rust types generated from `schemas/*.avsc`, the Confluent wire format, a
//! caching schema-registry client and the codec that ties them together.
//!
//! Producers register (or look up) the writer schema under the topic-name strategy subject
//! `<topic>-value` and frame the Avro body as `0x00 | schema id (u32, big endian) | body`.
//! Consumers read the schema id, fetch the writer schema once (cached) and resolve the body into
//! the reader's generated type, so older and newer writers both decode (schema resolution).

pub mod codec;
pub mod firestore;
pub mod messages;
pub mod registry;
pub mod topics;
pub mod wire;

mod generated {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

pub use codec::{Codec, CodecError};
pub use generated::*;
pub use registry::{RegistryClient, RegistryError};

/// A type generated from a schema file.
pub trait Record: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The schema text exactly as in the file.
    const SCHEMA_JSON: &'static str;
    /// The Avro full name (`namespace.name`).
    const FULL_NAME: &'static str;
    /// The file under `schemas/` the type was generated from.
    const SCHEMA_FILE: &'static str;
    /// The parsed schema.
    fn schema() -> &'static apache_avro::Schema;
}

/// The topic-name strategy subject for a topic's values.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}
