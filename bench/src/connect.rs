//! (3) The Kafka Connect peer: the tool a team would deploy instead of writing a consumer, a
//! standalone Kafka Connect worker (the same Apache Kafka version as the broker) running
//! Debezium's JDBC sink connector in upsert mode (`bench/peer/connect/connect.sh`).
//!
//! Connect cannot read the flow topic: our records are Confluent-framed Avro, and Confluent's
//! Avro converter is not on Maven Central. So the bench also produces **the same records** (same
//! keys, versions and field values, `records::event`; `produce_json`, before any consumer runs)
//! to a topic of their own (same partition count) as Connect's JSON envelope (`JsonConverter`
//! with `schemas.enable=true`: the schema in every record, derived here from the Avro schema),
//! and the connector flattens them and upserts `application_id, loan_id, status, version` into
//! `bench_connect.loans` (the bench's `loans` table; `processed_events` stays empty).
//!
//! It does less than Brain's effect: no processed-event record and no version guard (a plain
//! `INSERT ... ON CONFLICT DO UPDATE`, last write wins; per-partition order makes the last write
//! the newest version). Timed from the first write (the smallest `updated_at`, which only an
//! insert sets: `now()`, the start of the connector's first transaction) to the first poll (every
//! 50 ms) that finds every loan at its final version, both on PostgreSQL's clock: JVM start-up,
//! plugin loading and the group join are not included, as for the other consumers.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use brain_events::{LoanStatusChanged, Record};
use brain_runtime::{kafka, settings::KafkaSettings};
use serde::Serialize;
use serde_json::{Value, json};

use crate::throughput::{Throughput, tables};

/// The Connect peer's tables (`loans` is the one it writes).
pub const CONNECT_SCHEMA: &str = "bench_connect";
/// The JSON copy of the records, in the run's namespace.
pub const JSON_TOPIC: &str = "bench.connect.loan-status-changed.json";
/// How often the bench looks for the final state.
const POLL: Duration = Duration::from_millis(50);

/// The JSON copy of the records (`produce_json`).
#[derive(Debug, Clone)]
pub struct JsonRecords {
    pub topic: String,
    pub records: u64,
    pub keys: u64,
    /// One record (the envelope with the schema) in bytes.
    pub record_bytes: usize,
    pub seconds: f64,
}

/// The Connect peer as measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectRun {
    /// First write → every loan at its final version.
    pub throughput: Throughput,
    /// The connector's tasks (`tasks.max`), each a consumer and a JDBC connection of its own.
    pub tasks: usize,
    /// One JSON record (envelope with the schema) in bytes, and the seconds producing them took
    /// (before the run, not in its figures).
    pub record_bytes: usize,
    pub produce_seconds: f64,
    /// Worker start → its first write: JVM start, plugins, group join, first batch.
    pub startup_seconds: f64,
    /// CPU of the worker's JVM from its first write to the final state (the timed part), and over
    /// its whole life (start-up and shutdown included).
    pub jvm_cpu_seconds: f64,
    pub jvm_cpu_seconds_total: f64,
}

/// Runs the worker (`connect.sh run`, log in `logs/connect.log`, configuration and offsets in
/// `logs/connect/`) with `tasks` tasks on the records `produce_json` wrote, until
/// `bench_connect.loans` holds every loan at its final version; stops it (SIGTERM) and returns
/// the figures.
pub async fn connect_peer(
    repo: &Path,
    logs: &Path,
    settings: &KafkaSettings,
    database_url: &str,
    json: &JsonRecords,
    tasks: usize,
    timeout: Duration,
) -> anyhow::Result<ConnectRun> {
    let pool = tables(database_url, CONNECT_SCHEMA, 1).await?;
    let name = format!("bench-connect-{}", uuid::Uuid::new_v4().simple());
    let jdbc = JdbcTarget::from_url(database_url)?;
    let work = logs.join("connect");
    std::fs::create_dir_all(&work)?;
    let log_path = logs.join("connect.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(repo.join("bench/peer/connect/connect.sh"))
        .args([
            "run",
            "--bootstrap",
            &settings.brokers,
            "--topic",
            &json.topic,
        ])
        .args(["--jdbc-url", &jdbc.url, "--user", &jdbc.user])
        .args(["--table", &format!("{CONNECT_SCHEMA}.loans")])
        .args(["--name", &name, "--group", &settings.namespace.group(&name)])
        .args(["--tasks", &tasks.to_string()])
        .arg("--work-dir")
        .arg(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(password) = &jdbc.password {
        command.env("CONNECT_DB_PASSWORD", password);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .context("starting bench/peer/connect/connect.sh")?;
    // connect.sh execs the JVM: the child is the worker itself.
    let pid = child.id().context("the Connect worker has no pid")?;
    let jvm_cpu = || crate::footprint::cpu_seconds(pid, false).unwrap_or(0.0);
    let (rows, version_sum) = final_state(json.records, json.keys);
    let deadline = started + timeout;
    let mut first: Option<(Instant, f64)> = None;
    let mut polls = 0u64;
    let outcome = loop {
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "the Connect worker exited ({status}) before the final state; see {}",
                log_path.display()
            ));
        }
        // A failed task stays failed while the worker runs on: stop at once rather than time out.
        polls += 1;
        if polls.is_multiple_of(20) && task_failed(&log_path) {
            break Err(anyhow::anyhow!(
                "a Kafka Connect task failed; see {}",
                log_path.display()
            ));
        }
        let state: (i64, i64, Option<f64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), coalesce(sum(version), 0)::bigint,
                    extract(epoch FROM clock_timestamp() - min(updated_at))::float8
             FROM {CONNECT_SCHEMA}.loans"
        )))
        .fetch_one(&pool)
        .await?;
        if first.is_none() && state.0 > 0 {
            first = Some((Instant::now(), jvm_cpu()));
        }
        if (state.0, state.1) == (rows, version_sum) {
            let (first_seen, cpu_at_first) = first.expect("rows were seen");
            break Ok((state.2.unwrap_or(0.0), first_seen, jvm_cpu() - cpu_at_first));
        }
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "Kafka Connect: {} of {rows} loans (version sum {} of {version_sum}) after {timeout:?}; see {}",
                state.0,
                state.1,
                log_path.display()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let jvm_cpu_seconds_total = jvm_cpu();
    stop(&mut child, pid).await;
    pool.close().await;
    let (seconds, first_seen, jvm_cpu_seconds) = outcome?;
    Ok(ConnectRun {
        throughput: Throughput::new(json.records, seconds),
        tasks,
        record_bytes: json.record_bytes,
        produce_seconds: json.seconds,
        startup_seconds: (first_seen - started).as_secs_f64(),
        jvm_cpu_seconds,
        jvm_cpu_seconds_total,
    })
}

/// Whether the worker logged a task that failed and will not restart (a configuration error, a
/// record the connector could not write: `errors.tolerance` is `none`).
fn task_failed(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .is_ok_and(|text| text.contains("Task threw an uncaught and unrecoverable exception"))
}

/// SIGTERM (the worker stops its tasks and commits), SIGKILL after 30 s. The exit status is not
/// checked: the figures are taken already, and the JVM exits with 143 on SIGTERM.
async fn stop(child: &mut tokio::process::Child, pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        tracing::warn!("the Connect worker did not stop within 30 s of SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// The `loans` rows and the sum of their versions once every record is applied: record `i` is
/// version `i / keys + 1` of key `i % keys`, so each key ends at the number of its records and the
/// versions add up to `records`. Every version written is at most its key's final one, so the sum
/// reaches this only when every row is final.
pub fn final_state(records: u64, keys: u64) -> (i64, i64) {
    (keys.min(records) as i64, records as i64)
}

/// Connect's schema (the `schema` half of `JsonConverter`'s envelope) of an Avro schema: records
/// become structs, `["null", T]` optional `T`, logical types their primitive (the values are
/// the same numbers as in the Avro records).
pub fn connect_schema(avro: &Value) -> anyhow::Result<Value> {
    connect_type(avro, false)
}

fn connect_type(avro: &Value, optional: bool) -> anyhow::Result<Value> {
    let primitive = |name: &str| -> anyhow::Result<&'static str> {
        Ok(match name {
            "string" => "string",
            "long" => "int64",
            "int" => "int32",
            "boolean" => "boolean",
            "double" => "double",
            "float" => "float",
            "bytes" => "bytes",
            other => anyhow::bail!("no Connect type for Avro {other}"),
        })
    };
    Ok(match avro {
        Value::String(name) => json!({"type": primitive(name)?, "optional": optional}),
        Value::Array(branches) => {
            let [Value::String(null), inner] = &branches[..] else {
                anyhow::bail!("only [\"null\", T] unions are supported: {avro}");
            };
            anyhow::ensure!(null == "null", "only [\"null\", T] unions: {avro}");
            connect_type(inner, true)?
        }
        Value::Object(o) if o.get("type") == Some(&json!("record")) => {
            let mut fields = Vec::new();
            for f in o["fields"].as_array().context("record without fields")? {
                let mut field = connect_type(&f["type"], false)?;
                field["field"] = f["name"].clone();
                fields.push(field);
            }
            let name = match (o.get("namespace"), o.get("name")) {
                (Some(Value::String(ns)), Some(Value::String(n))) => format!("{ns}.{n}"),
                (_, Some(Value::String(n))) => n.clone(),
                _ => anyhow::bail!("record without a name: {avro}"),
            };
            json!({"type": "struct", "fields": fields, "optional": optional, "name": name})
        }
        Value::Object(o) => match o.get("type") {
            Some(Value::String(name)) => json!({"type": primitive(name)?, "optional": optional}),
            _ => anyhow::bail!("unsupported Avro type {avro}"),
        },
        _ => anyhow::bail!("unsupported Avro type {avro}"),
    })
}

/// One record as `JsonConverter` (with schemas) reads it; `schema` is `connect_schema`'s, as JSON.
pub fn envelope(schema: &str, event: &LoanStatusChanged) -> anyhow::Result<Vec<u8>> {
    let payload = serde_json::to_string(event)?;
    Ok(format!(r#"{{"schema":{schema},"payload":{payload}}}"#).into_bytes())
}

/// Creates `JSON_TOPIC` (the flow topic's partition count) and produces the records
/// `records::produce` produces (same keys, versions and values) as JSON envelopes; waits for every
/// acknowledgement.
pub async fn produce_json(
    settings: &KafkaSettings,
    count: u64,
    record_bytes: usize,
    keys: u64,
) -> anyhow::Result<JsonRecords> {
    kafka::ensure_topics(settings, &[JSON_TOPIC]).await?;
    let topic = settings.namespace.topic(JSON_TOPIC);
    let avro: Value = serde_json::from_str(LoanStatusChanged::SCHEMA_JSON)?;
    let schema = connect_schema(&avro)?.to_string();
    let padding = crate::records::padding_for(record_bytes)?;
    let started = Instant::now();
    let size = crate::records::produce_ordered(
        settings,
        &topic,
        count,
        keys,
        "brain-bench-connect-loader",
        |event| envelope(&schema, event),
        padding,
    )
    .await?;
    Ok(JsonRecords {
        topic,
        records: count,
        keys,
        record_bytes: size,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The bench's database as the JDBC sink connects to it.
#[derive(Debug, PartialEq)]
struct JdbcTarget {
    /// `jdbc:postgresql://host:port/database` (no credentials: they are separate settings).
    url: String,
    user: String,
    password: Option<String>,
}

impl JdbcTarget {
    fn from_url(database_url: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
        anyhow::ensure!(
            matches!(url.scheme(), "postgres" | "postgresql"),
            "not a PostgreSQL URL: {}",
            url.scheme()
        );
        let host = url.host_str().context("the database URL has no host")?;
        let database = url.path().trim_start_matches('/');
        anyhow::ensure!(!database.is_empty(), "the database URL names no database");
        let decode = |s: &str| -> anyhow::Result<String> {
            let bytes: Vec<u8> = percent_decode(s)?;
            Ok(String::from_utf8(bytes)?)
        };
        let user = match url.username() {
            "" => "postgres".to_string(),
            user => decode(user)?,
        };
        Ok(Self {
            url: format!(
                "jdbc:postgresql://{host}:{}/{database}",
                url.port().unwrap_or(5432)
            ),
            user,
            password: url.password().map(decode).transpose()?,
        })
    }
}

/// `%XX` escapes of a URL's user or password, decoded.
fn percent_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let (bytes, mut out) = (s.as_bytes(), Vec::with_capacity(s.len()));
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).context("a truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).context("a bad %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_state_is_what_the_records_add_up_to() {
        for (records, keys) in [(200_000, 10_000), (2_000, 200), (1_005, 10), (7, 10)] {
            let mut last = std::collections::HashMap::new();
            for i in 0..records {
                last.insert(i % keys, i / keys + 1);
            }
            let sum: u64 = last.values().sum();
            assert_eq!(final_state(records, keys), (last.len() as i64, sum as i64));
        }
    }

    #[test]
    fn the_envelope_carries_every_field_with_its_schema() {
        let avro: Value = serde_json::from_str(LoanStatusChanged::SCHEMA_JSON).unwrap();
        let schema = connect_schema(&avro).unwrap();
        let event = crate::records::event("bench-app-000042", 3, 7, 1_700_000_000_000, 10);
        let bytes = envelope(&schema.to_string(), &event).unwrap();
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["schema"], schema);
        // Every field of the schema is in the payload and nothing else (recursively).
        fn check(schema: &Value, payload: &Value) {
            let fields = schema["fields"].as_array().unwrap();
            assert_eq!(fields.len(), payload.as_object().unwrap().len());
            for f in fields {
                let value = &payload[f["field"].as_str().unwrap()];
                match f["type"].as_str().unwrap() {
                    "struct" => check(f, value),
                    "string" => {
                        assert!(value.is_string() || (f["optional"] == true && value.is_null()))
                    }
                    "int64" => {
                        assert!(value.is_i64() || (f["optional"] == true && value.is_null()))
                    }
                    other => panic!("unexpected type {other}"),
                }
            }
        }
        check(&schema, &parsed["payload"]);
        let payload = &parsed["payload"];
        assert_eq!(payload["application_id"], "bench-app-000042");
        assert_eq!(payload["version"], 3);
        assert_eq!(payload["loan"]["loan_id"], "L-bench-app-000042");
        assert_eq!(payload["loan"]["status"], event.loan.status);
        let causation = &schema["fields"].as_array().unwrap()[4];
        assert_eq!(causation["field"], "causation_id");
        assert_eq!(causation["optional"], true);
        assert_eq!(schema["name"], "brain.ventures.LoanStatusChanged");
    }

    #[test]
    fn jdbc_target_from_a_database_url() {
        assert_eq!(
            JdbcTarget::from_url("postgres://postgres@127.0.0.1:5432/brain_test_1").unwrap(),
            JdbcTarget {
                url: "jdbc:postgresql://127.0.0.1:5432/brain_test_1".into(),
                user: "postgres".into(),
                password: None,
            }
        );
        assert_eq!(
            JdbcTarget::from_url("postgresql://bench:p%40ss%2Fw@db.local/bench").unwrap(),
            JdbcTarget {
                url: "jdbc:postgresql://db.local:5432/bench".into(),
                user: "bench".into(),
                password: Some("p@ss/w".into()),
            }
        );
        assert!(JdbcTarget::from_url("mysql://x@h/db").is_err());
        assert!(JdbcTarget::from_url("postgres://x@h/").is_err());
    }
}
