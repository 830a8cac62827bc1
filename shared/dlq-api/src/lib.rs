//! The contract of dlq-replayer's HTTP API (`dlq-replayer serve`), which the gateway's admin API
//! (`/api/v1/admin/...`) forwards to: the JSON bodies both sides exchange, camelCase, like the
//! CLI's `--json` output. The replayer serializes them, the gateway deserializes them (a body
//! that does not fit is a fault of the replayer, never passed on) and documents them in its
//! OpenAPI document (`ToSchema`).
//!
//! The replayer's API is internal: it trusts its callers. The gateway authenticates the operator,
//! puts the token's subject in `operator` and, for a caller restricted to one tenant, sends that
//! tenant in [`SCOPE_HEADER`]; the replayer then answers only about that tenant's dead letters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    ToSchema,
    openapi::schema::{Array, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type},
};
use uuid::Uuid;

/// Set by the gateway for a caller who may see one tenant only.
pub const SCOPE_HEADER: &str = "x-brain-tenant-scope";
/// Most dead-letter ids one park, unpark or discard takes.
pub const MAX_IDS: usize = 500;
/// Longest `reason` of a park, unpark or discard.
pub const MAX_REASON_CHARS: usize = 500;
/// What a dead-letter topic's catalogue name looks like.
pub const TOPIC_PATTERN: &str = r"^deadletter\.[A-Za-z0-9._-]{1,200}$";
/// Most items a list answers with (`limit`).
pub const MAX_LIMIT: usize = 1000;
/// Most per-item outcomes a job or a report carries.
pub const MAX_ITEMS: usize = 1000;

/// Which dead letters: every criterion given must hold. In a query string the lists are repeated
/// parameters (`topic`, `id`, `field`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "topics": ["deadletter.ventures-sync.commands.v1"], "kind": "http_5xx", "since": "2h" }))]
pub struct FilterSpec {
    /// Dead-letter topics (catalogue names); none: every `deadletter.*` topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = topics)]
    pub topics: Vec<String>,
    /// Dead-lettered at or after: RFC 3339, or a duration ago (`15m`, `2h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, example = "2h")]
    pub since: Option<String>,
    /// Dead-lettered before: RFC 3339, or a duration ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub until: Option<String>,
    /// The original message's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub key: Option<String>,
    /// The decoded event's `tenant_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub tenant: Option<String>,
    /// `permanent` or `transient_exhausted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub class: Option<String>,
    /// The error kind (`validation`, `undecodable`, `http_5xx`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub kind: Option<String>,
    /// Dead-letter ids (UUIDs); none: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = filter_ids)]
    pub ids: Vec<String>,
    /// `path=value` on the decoded original event (dotted path, compared as text), e.g.
    /// `loan.status=Funded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = field_matches)]
    pub fields: Vec<String>,
}

fn strings(item: ObjectBuilder, min: Option<usize>, max: usize, description: &str) -> Array {
    ArrayBuilder::new().items(item.schema_type(Type::String)).min_items(min).max_items(Some(max)).description(Some(description)).build()
}

fn uuid_string() -> ObjectBuilder {
    ObjectBuilder::new().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

fn topics() -> Array {
    strings(ObjectBuilder::new().pattern(Some(TOPIC_PATTERN)), None, 50, "Dead-letter topics (catalogue names); none: every `deadletter.*` topic.")
}

fn filter_ids() -> Array {
    strings(uuid_string(), None, MAX_IDS, "Dead-letter ids; none: any.")
}

fn field_matches() -> Array {
    strings(ObjectBuilder::new().pattern(Some(r"^[^=]+=.*$")).max_length(Some(512)), None, 20, "`path=value` on the decoded original event (dotted path, compared as text), e.g. `loan.status=Funded`.")
}

fn disposition_ids() -> Array {
    strings(uuid_string(), Some(1), MAX_IDS, "The dead letters (1-500 ids).")
}

/// One dead letter in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSummary {
    pub id: String,
    /// The dead-letter topic (catalogue name).
    pub topic: String,
    pub source_topic: String,
    pub class: String,
    pub kind: String,
    pub message: String,
    pub key: Option<String>,
    pub tenant: Option<String>,
    pub dead_lettered_at: Option<DateTime<Utc>>,
    /// How often it was replayed before it landed here this time.
    pub replays: u32,
    /// `parked` or `discarded`, when an operator set it aside.
    pub disposition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// How many match (the list holds the first `limit`).
    pub total: usize,
    pub limit: usize,
    pub items: Vec<DeadLetterSummary>,
}

/// Dead letters of one topic, error class and kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountGroup {
    pub topic: String,
    pub class: String,
    pub kind: String,
    pub count: usize,
    pub oldest_age_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterCounts {
    pub total: usize,
    pub groups: Vec<CountGroup>,
}

/// One dead letter in full: the envelope, its history and the original event, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterDetail {
    pub id: String,
    pub dead_letter_topic: String,
    pub source: Source,
    pub key: Option<String>,
    pub consumer: ConsumerRef,
    pub error: ErrorInfo,
    pub attempts: Attempts,
    pub dead_lettered_at: Option<DateTime<Utc>>,
    pub trace_id: Option<String>,
    pub replays: u32,
    pub disposition: Option<Disposition>,
    pub headers: Vec<Header>,
    /// The original event, decoded with its writer's schema; null when it is not decodable
    /// (often why it is here).
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// Size of the original value.
    pub value_bytes: Option<usize>,
}

/// Where the original message was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerRef {
    pub group: String,
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub class: String,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempts {
    pub count: i32,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

/// Why an operator set a dead letter aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disposition {
    /// `parked` or `discarded`.
    pub action: String,
    pub reason: String,
}

/// A header of the original message (its value as text, lossily).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub key: String,
    pub value: Option<String>,
}

/// Park, unpark or discard dead letters, as the gateway takes it (the operator is the caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "ids": ["0196b3c2-6a4e-7c1d-9f00-3b1f2a4c5d6e"], "reason": "waiting for the lender to fix the loan" }))]
pub struct DispositionRequest {
    #[schema(schema_with = disposition_ids)]
    pub ids: Vec<String>,
    /// Why; audited. 1-500 characters, no control characters but line feeds; surrounding white
    /// space is trimmed.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$")]
    pub reason: String,
}

/// [`DispositionRequest`] with the operator, as the replayer takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorDisposition {
    pub ids: Vec<String>,
    pub reason: String,
    pub operator: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DispositionDone {
    /// `parked`, `unparked` or `discarded`.
    pub action: String,
    pub ids: Vec<String>,
}

/// Start a replay (or a dry run), as the gateway takes it (the operator is the caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({ "filter": { "topics": ["deadletter.ventures-sync.commands.v1"], "kind": "http_5xx" }, "dryRun": true }))]
pub struct ReplayRequest {
    /// Which dead letters; `{}` is every one.
    pub filter: FilterSpec,
    /// Say what would be sent and skipped, and send nothing.
    pub dry_run: bool,
    /// Messages per second at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 100000)]
    pub rate: Option<f64>,
    /// Dead letters replayed this many times already are skipped (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub cap: Option<u32>,
    /// Resume this job (same filter): what it sent is not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
}

/// [`ReplayRequest`] with the operator, as the replayer takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorReplay {
    pub filter: FilterSpec,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    pub operator: String,
}

impl OperatorReplay {
    pub fn new(request: ReplayRequest, operator: String) -> Self {
        let ReplayRequest { filter, dry_run, rate, cap, job_id } = request;
        Self { filter, dry_run, rate, cap, job_id, operator }
    }
}

/// A replay started in the background (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayAccepted {
    pub job_id: Uuid,
    /// Always `running` here.
    pub state: String,
    /// Where to follow the job.
    pub status_url: String,
}

/// What a dry run would do (or what a replay did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub job_id: Uuid,
    pub dry_run: bool,
    pub matched: usize,
    /// Sent, or in a dry run, would be sent.
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
    pub seconds: f64,
    /// Per dead letter (the first 1,000).
    pub items: Vec<JobItem>,
}

/// What a job did (or would do) with one dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobItem {
    pub id: String,
    /// `sent` (in a dry run: would be sent), `skipped` or `failed`.
    pub outcome: String,
    /// Why it was skipped (`already_replayed by job …`, `parked: …`, `replay_cap: …`,
    /// `no_value`) or failed.
    pub reason: Option<String>,
}

/// A replay job as the audit has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayJob {
    pub job_id: Uuid,
    pub operator: String,
    /// The filter it was started with.
    #[schema(value_type = Object)]
    pub filter: Value,
    pub dry_run: bool,
    pub rate_limit: Option<f64>,
    /// `running`, `finished` or `failed` (a failed or interrupted job can be resumed).
    pub state: String,
    /// Dead letters the filter chose (known once the job finished).
    pub matched: i64,
    pub sent: i64,
    pub skipped: i64,
    pub failed: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// How far a job running in this replayer is; null for one running elsewhere (the CLI).
    pub progress: Option<JobProgress>,
    /// Per dead letter, for one job (the first 1,000); empty in lists and for dry runs.
    pub items: Vec<JobItem>,
}

/// How far a running job is: `done` of `total` dead letters to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// `scanning` (reading the dead letters), `sending` or `done`.
    pub stage: String,
    pub total: u64,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayJobs {
    pub jobs: Vec<ReplayJob>,
}

/// The replayer's error answers: `{ "code", "detail" }`, like the gateway's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_refuse_unknown_fields_and_the_operator_comes_apart() {
        let ok: ReplayRequest = serde_json::from_str(r#"{"filter":{"kind":"http_5xx"},"dryRun":true}"#).unwrap();
        assert_eq!(ok.filter.kind.as_deref(), Some("http_5xx"));
        assert!(serde_json::from_str::<ReplayRequest>(r#"{"filter":{},"dryRun":true,"operator":"me"}"#).is_err(), "the operator is never the caller's to say");
        assert!(serde_json::from_str::<ReplayRequest>(r#"{"filter":{"nope":1},"dryRun":true}"#).is_err());
        let forwarded = serde_json::to_value(OperatorReplay::new(ok, "sub-1".into())).unwrap();
        assert_eq!(forwarded["operator"], "sub-1");
        assert_eq!(forwarded["dryRun"], true);
        assert!(serde_json::from_str::<DispositionRequest>(r#"{"ids":["a"],"reason":"x","operator":"y"}"#).is_err());
    }
}
