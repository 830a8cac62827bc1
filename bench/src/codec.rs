//! Figure (7): the codec on the hot path. The same wire-format records (the ones figures 1-3
//! consume: the generated `LoanStatusChanged`, Confluent framing, the schema id from the run's
//! registry) decoded into the generated type, one after the other on one task, by:
//!
//! - **ours:** `brain_events::Codec::decode`, exactly what the runtime's workers call: the registry
//!   client's cached schema; when the writer's schema is the type's own (cached per schema id), a
//!   `GenericDatumReader` on it without resolution, else `decode_body` (writer → reader
//!   resolution); then `apache_avro::from_value`;
//! - **schema_registry_converter 6.0:** `EasyAvroDecoder::decode` (its cached schema and cached
//!   `ResolvedSchema`, decoding with the writer's schema only, never resolving to a reader schema)
//!   and then the same `apache_avro::from_value` into the generated type, which is what a service
//!   using the crate would have to do to get the same typed event;
//! - two measurements of ours in parts (not codecs of their own): **`decode_body`**, our path when
//!   the writer's schema is another version (resolution, reader built per record), and a reader
//!   **built once** on the writer's schema (ours without building the reader per record).
//!
//! Each is run `ROUNDS` times, interleaved; the report gives the median round. Before timing, each
//! decodes a few records (fetching the schema from the registry) and all are checked to give the
//! same events.

use std::time::Instant;

use apache_avro::reader::datum::GenericDatumReader;
use brain_events::{
    Codec, LoanStatusChanged,
    codec::{decode_body, encode_body},
    wire,
};
use schema_registry_converter::async_impl::{
    easy_avro::EasyAvroDecoder, schema_registry::SrSettings,
};
use serde::Serialize;

use crate::{records, throughput::Throughput};

pub const ROUNDS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct CodecFigures {
    pub records: u64,
    pub record_bytes: usize,
    pub rounds: usize,
    pub ours: Throughput,
    pub schema_registry_converter: Throughput,
    /// `decode_body`: writer → reader resolution, reader built per record.
    pub ours_resolving: Throughput,
    /// The writer's schema, no resolution, reader built once.
    pub reader_built_once: Throughput,
    /// ours ÷ schema_registry_converter (records/s).
    pub ours_vs_crate: f64,
}

/// Decodes `count` records of about `record_bytes` for `topic` with each decoder.
pub async fn measure(
    codec: &Codec,
    registry_url: &str,
    topic: &str,
    count: u64,
    record_bytes: usize,
    keys: u64,
) -> anyhow::Result<CodecFigures> {
    let schema_id = codec.schema_id::<LoanStatusChanged>(topic).await?;
    let padding = records::padding_for(record_bytes)?;
    let now = chrono::Utc::now().timestamp_millis();
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let app = format!("bench-app-{:06}", i % keys);
            let event = records::event(&app, (i / keys + 1) as i64, i as i64, now, padding);
            Ok(wire::frame(schema_id, &encode_body(&event)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let record_bytes = payloads.first().map_or(0, Vec::len);

    let decoder = EasyAvroDecoder::new(SrSettings::new(registry_url.to_string()));
    let writer = codec.registry().schema(schema_id).await?;
    let once = GenericDatumReader::builder(&writer).build()?;

    // Warm-up (schema fetched by each) and the same answer from all three.
    for payload in payloads.iter().take(3) {
        let a: LoanStatusChanged = codec.decode(payload).await?;
        let value = decoder
            .decode(Some(payload))
            .await
            .map_err(|e| anyhow::anyhow!("schema_registry_converter: {e}"))?
            .value;
        let b: LoanStatusChanged = apache_avro::from_value(&value)?;
        let c = decode_with(&once, payload)?;
        let d: LoanStatusChanged = decode_body(&writer, wire::unframe(payload)?.1)?;
        anyhow::ensure!(a == b && a == c && a == d, "the decoders disagree");
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut resolving, mut built_once) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for payload in &payloads {
            let event: LoanStatusChanged = codec.decode(payload).await?;
            std::hint::black_box(event);
        }
        ours.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        for payload in &payloads {
            let value = decoder
                .decode(Some(payload))
                .await
                .map_err(|e| anyhow::anyhow!("schema_registry_converter: {e}"))?
                .value;
            let event: LoanStatusChanged = apache_avro::from_value(&value)?;
            std::hint::black_box(event);
        }
        theirs.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        for payload in &payloads {
            let event: LoanStatusChanged = decode_body(&writer, wire::unframe(payload)?.1)?;
            std::hint::black_box(event);
        }
        resolving.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        for payload in &payloads {
            std::hint::black_box(decode_with(&once, payload)?);
        }
        built_once.push(started.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        Throughput::new(count, v[v.len() / 2])
    };
    let (ours, theirs) = (median(ours), median(theirs));
    Ok(CodecFigures {
        records: count,
        record_bytes,
        rounds: ROUNDS,
        ours,
        schema_registry_converter: theirs,
        ours_resolving: median(resolving),
        reader_built_once: median(built_once),
        ours_vs_crate: ours.records_per_sec / theirs.records_per_sec,
    })
}

fn decode_with(
    reader: &GenericDatumReader<'_>,
    payload: &[u8],
) -> anyhow::Result<LoanStatusChanged> {
    let (_, mut body) = wire::unframe(payload)?;
    let value = reader.read_value(&mut body)?;
    Ok(apache_avro::from_value(&value)?)
}
