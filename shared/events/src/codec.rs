//! Encoding and decoding of generated types in the Confluent wire format.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use apache_avro::{reader::datum::GenericDatumReader, writer::datum::GenericDatumWriter};
use thiserror::Error;

use crate::{
    Record,
    registry::{RegistryClient, RegistryError},
    value_subject,
    wire::{self, FrameError},
};

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("not in the wire format: {0}")]
    Framing(#[from] FrameError),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("Avro body does not match its writer schema or our reader schema: {0}")]
    Avro(#[source] apache_avro::Error),
}

impl CodecError {
    /// Transient errors may succeed on retry; everything else is a property of the bytes.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(e) if e.is_transient())
    }

    /// A stable short code for dead letters and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Framing(_) => "undecodable",
            Self::Registry(RegistryError::UnknownSchema(_)) => "unknown_schema",
            Self::Registry(_) => "registry",
            Self::Avro(_) => "undecodable",
        }
    }
}

/// How a producer obtains schema ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaIds {
    /// Register the schema on first use (development, CI, and registries that allow it).
    AutoRegister,
    /// Only look up ids of schemas registered by a deployment pipeline.
    LookupOnly,
}

#[derive(Debug, Clone)]
pub struct Codec {
    registry: RegistryClient,
    ids: SchemaIds,
    /// Per (writer schema id, record type): whether the writer's schema is the reader's own, so
    /// that decoding can skip schema resolution (the common case, and most of the decode cost).
    same_schema: Arc<Mutex<HashMap<(u32, &'static str), bool>>>,
}

impl Codec {
    pub fn new(registry: RegistryClient, ids: SchemaIds) -> Self {
        Self { registry, ids, same_schema: Arc::default() }
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// The schema id for `T` on `topic`, registering it if configured to.
    pub async fn schema_id<T: Record>(&self, topic: &str) -> Result<u32, CodecError> {
        let subject = value_subject(topic);
        Ok(match self.ids {
            SchemaIds::AutoRegister => self.registry.register(&subject, T::SCHEMA_JSON).await?,
            SchemaIds::LookupOnly => self.registry.lookup(&subject, T::SCHEMA_JSON).await?,
        })
    }

    /// Encodes `value` for `topic` in the wire format.
    pub async fn encode<T: Record>(&self, topic: &str, value: &T) -> Result<Vec<u8>, CodecError> {
        let id = self.schema_id::<T>(topic).await?;
        Ok(wire::frame(id, &encode_body(value)?))
    }

    /// Decodes a wire-format record into `T`, resolving from the writer's schema to `T`'s.
    pub async fn decode<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (id, body) = wire::unframe(bytes)?;
        let writer = self.registry.schema(id).await?;
        let cached = self.same_schema.lock().expect("codec cache lock").get(&(id, T::FULL_NAME)).copied();
        let same = match cached {
            Some(same) => same,
            None => {
                let same = writer.canonical_form() == T::schema().canonical_form();
                self.same_schema.lock().expect("codec cache lock").insert((id, T::FULL_NAME), same);
                same
            }
        };
        if same { decode_own_body(T::schema(), body) } else { decode_body(&writer, body) }
    }
}

impl Codec {
    /// Decodes any wire-format record into JSON with its writer's schema (for tools that show
    /// events they have no Rust type for, such as the dead-letter replayer). Bytes become arrays
    /// of numbers; enums their symbol; unions their branch's value.
    pub async fn decode_json(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        let (id, body) = wire::unframe(bytes)?;
        let writer = self.registry.schema(id).await?;
        let reader = GenericDatumReader::builder(&writer).build().map_err(CodecError::Avro)?;
        let mut slice = body;
        let value = reader.read_value(&mut slice).map_err(CodecError::Avro)?;
        serde_json::Value::try_from(value).map_err(CodecError::Avro)
    }
}

/// The Avro binary body of `value`, written with `T`'s own schema.
pub fn encode_body<T: Record>(value: &T) -> Result<Vec<u8>, CodecError> {
    let writer = GenericDatumWriter::builder(T::schema()).build().map_err(CodecError::Avro)?;
    writer.write_ser_to_vec(value).map_err(CodecError::Avro)
}

/// Reads an Avro body written with `writer` into `T`, applying schema resolution.
pub fn decode_body<T: Record>(writer: &Arc<apache_avro::Schema>, body: &[u8]) -> Result<T, CodecError> {
    let reader = GenericDatumReader::builder(writer)
        .reader_schema(T::schema())
        .build()
        .map_err(CodecError::Avro)?;
    read_record(&reader, body)
}

/// Reads an Avro body written with `T`'s own schema (no resolution needed).
fn decode_own_body<T: Record>(schema: &apache_avro::Schema, body: &[u8]) -> Result<T, CodecError> {
    let reader = GenericDatumReader::builder(schema).build().map_err(CodecError::Avro)?;
    read_record(&reader, body)
}

fn read_record<T: Record>(reader: &GenericDatumReader<'_>, body: &[u8]) -> Result<T, CodecError> {
    let mut slice = body;
    let value = reader.read_value(&mut slice).map_err(CodecError::Avro)?;
    if !slice.is_empty() {
        return Err(CodecError::Avro(apache_avro::Error::new(apache_avro::error::Details::ReadBytes(
            std::io::Error::other(format!("{} trailing bytes after the record", slice.len())),
        ))));
    }
    apache_avro::from_value::<T>(&value).map_err(CodecError::Avro)
}

#[cfg(test)]
mod tests {
    use proptest::{prelude::*, strategy::ValueTree};

    use super::*;
    use crate::{DeadLetter, DeadLetterHeader, LoanState, LoanStatusChanged};

    fn loan_event() -> impl Strategy<Value = LoanStatusChanged> {
        (any::<String>(), any::<i64>(), any::<i64>(), proptest::option::of(any::<i64>()), proptest::option::of(".*"))
            .prop_map(|(id, version, millis, approved, causation)| LoanStatusChanged {
                event_id: id.clone(),
                occurred_at: millis,
                tenant_id: "t1".into(),
                correlation_id: id.clone(),
                causation_id: causation,
                producer: "ventures-sync".into(),
                application_id: id,
                version,
                source_seq: version.wrapping_mul(3),
                loan: LoanState {
                    loan_id: "L-1".into(),
                    loan_number: "2026-0001".into(),
                    loan_type: "7A".into(),
                    status: "Open".into(),
                    status_changed_at: millis,
                    borrower_entity_id: "B-9".into(),
                    amount_requested_cents: 12_500_000,
                    amount_approved_cents: approved,
                    updated_at: millis,
                },
            })
    }

    fn dead_letter() -> impl Strategy<Value = DeadLetter> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
            proptest::collection::vec(("[a-z]{1,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16))), 0..4),
            any::<i32>(),
            any::<i64>(),
        )
            .prop_map(|(key, value, headers, partition, offset)| DeadLetter {
                dead_letter_id: "d".into(),
                source_topic: "ventures.loan.status-changed.v1".into(),
                source_partition: partition,
                source_offset: offset,
                source_timestamp: Some(offset),
                key,
                value,
                headers: headers.into_iter().map(|(key, value)| DeadLetterHeader { key, value }).collect(),
                consumer_group: "projection-writer".into(),
                service: "projection-writer".into(),
                error_class: "permanent".into(),
                error_kind: "undecodable".into(),
                error_message: "bad".into(),
                attempts: 1,
                first_attempt_at: 1,
                last_attempt_at: 2,
                dead_lettered_at: 3,
                trace_id: None,
            })
    }

    proptest! {
        #[test]
        fn loan_events_round_trip(event in loan_event()) {
            let body = encode_body(&event).unwrap();
            let writer = Arc::new(LoanStatusChanged::schema().clone());
            prop_assert_eq!(decode_body::<LoanStatusChanged>(&writer, &body).unwrap(), event);
        }

        #[test]
        fn dead_letters_round_trip(envelope in dead_letter()) {
            let body = encode_body(&envelope).unwrap();
            let writer = Arc::new(DeadLetter::schema().clone());
            prop_assert_eq!(decode_body::<DeadLetter>(&writer, &body).unwrap(), envelope);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let writer = Arc::new(LoanStatusChanged::schema().clone());
            let _ = decode_body::<LoanStatusChanged>(&writer, &bytes);
        }
    }

    proptest! {
        #[test]
        fn the_fast_path_reads_what_resolution_reads(event in loan_event()) {
            let body = encode_body(&event).unwrap();
            let writer = Arc::new(LoanStatusChanged::schema().clone());
            let resolved = decode_body::<LoanStatusChanged>(&writer, &body).unwrap();
            prop_assert_eq!(decode_own_body::<LoanStatusChanged>(LoanStatusChanged::schema(), &body).unwrap(), resolved);
        }
    }

    #[test]
    fn an_older_writer_without_a_defaulted_field_still_decodes() {
        // Written by a producer whose schema lacked `causation_id` (it has a default).
        let old: serde_json::Value = serde_json::from_str(LoanStatusChanged::SCHEMA_JSON).unwrap();
        let mut old = old;
        old["fields"].as_array_mut().unwrap().retain(|f| f["name"] != "causation_id");
        let old_schema = Arc::new(apache_avro::Schema::parse(&old).unwrap());
        let mut event = loan_event().new_tree(&mut proptest::test_runner::TestRunner::default()).unwrap().current();
        event.causation_id = Some("dropped".into());
        let full = encode_body(&event).unwrap();
        // Re-encode with the old schema by going through a generic value without the field.
        let value = GenericDatumReader::builder(LoanStatusChanged::schema()).build().unwrap().read_value(&mut full.as_slice()).unwrap();
        let apache_avro::types::Value::Record(mut fields) = value else { panic!("record") };
        fields.retain(|(name, _)| name != "causation_id");
        let body = GenericDatumWriter::builder(&old_schema).build().unwrap().write_value_to_vec(apache_avro::types::Value::Record(fields)).unwrap();
        let decoded = decode_body::<LoanStatusChanged>(&old_schema, &body).unwrap();
        assert_eq!(decoded.causation_id, None);
        assert_eq!(decoded.version, event.version);
    }
}
