//! Traces for real: Jaeger v2 (`infra/dev/jaeger.sh`, built once from the Go module proxy)
//! receives the services' OTLP spans. One console status change and one document upload are
//! driven through the stack, and each one's trace is read back from Jaeger's query API: a single
//! trace runs from the gateway's request through the topics to the workers, their calls to the
//! external API (Ventures, ShareFile) and the projection (Firestore commit), with every service
//! named and the correlation id as an attribute of the workers' spans.

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Value, json};
use system_tests::{
    free_port, repo_root,
    stack::{API_GATEWAY, PROJECTION_WRITER, SHAREFILE_SYNC, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);

/// A Jaeger instance of this test's own, stopped on drop.
struct Jaeger {
    name: String,
    otlp: String,
    query: String,
}

impl Jaeger {
    async fn start() -> anyhow::Result<Self> {
        let name = format!("traces-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let (otlp_port, query_port) = (free_port(), free_port());
        let output = tokio::process::Command::new("bash")
            .arg(repo_root().join("infra/dev/jaeger.sh"))
            .args(["start", "--name", &name, "--otlp-grpc-port", &otlp_port.to_string(), "--query-port", &query_port.to_string(), "--otlp-http-port", "0", "--query-grpc-port", "0"])
            .output()
            .await?;
        anyhow::ensure!(output.status.success(), "jaeger.sh start failed: {}", String::from_utf8_lossy(&output.stderr));
        let otlp = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok(Self { name, otlp, query: format!("http://127.0.0.1:{query_port}") })
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").arg(repo_root().join("infra/dev/jaeger.sh")).args(["stop", "--name", &self.name]).output();
    }
}

/// What one trace holds, as Jaeger's v1 query API returns it.
#[derive(Debug, Default)]
struct Trace {
    id: String,
    services: BTreeSet<String>,
    operations: BTreeSet<String>,
    /// Services whose spans carry `correlation_id` = the one searched for.
    correlated: BTreeSet<String>,
    spans: usize,
}

fn trace_of(data: &Value, correlation_id: &str) -> Trace {
    let service_of = |span: &Value| data["processes"][span["processID"].as_str().unwrap_or_default()]["serviceName"].as_str().unwrap_or_default().to_string();
    let mut trace = Trace { id: data["traceID"].as_str().unwrap_or_default().to_string(), ..Trace::default() };
    for span in data["spans"].as_array().into_iter().flatten() {
        trace.spans += 1;
        trace.services.insert(service_of(span));
        trace.operations.insert(span["operationName"].as_str().unwrap_or_default().to_string());
        if span["tags"].as_array().into_iter().flatten().any(|t| t["key"] == "correlation_id" && t["value"] == correlation_id) {
            trace.correlated.insert(service_of(span));
        }
    }
    trace
}

/// The trace a worker's span with `correlation_id` belongs to, once it holds every one of
/// `services` and `operations`.
async fn wait_trace(stack: &Stack, jaeger: &Jaeger, worker: &str, correlation_id: &str, services: &[&str], operations: &[&str]) -> anyhow::Result<Trace> {
    let tags = json!({ "correlation_id": correlation_id }).to_string();
    wait_for(&format!("the trace of {correlation_id} in Jaeger"), WAIT, || async {
        let found: Value = stack.http.get(format!("{}/api/traces", jaeger.query)).query(&[("service", worker), ("tags", tags.as_str()), ("lookback", "1h"), ("limit", "20")]).send().await?.json().await?;
        let Some(first) = found["data"].as_array().and_then(|d| d.first()) else { return Ok(None) };
        // The whole trace, by its id (the search answers the matching traces whole too, but may
        // predate the last spans).
        let id = first["traceID"].as_str().unwrap_or_default();
        let whole: Value = stack.http.get(format!("{}/api/traces/{id}", jaeger.query)).send().await?.json().await?;
        let trace = whole["data"].as_array().and_then(|d| d.first()).map(|d| trace_of(d, correlation_id)).unwrap_or_default();
        let complete = services.iter().all(|s| trace.services.contains(*s)) && operations.iter().all(|o| trace.operations.contains(*o));
        Ok(complete.then_some(trace))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_change_and_an_upload_are_each_one_trace_from_the_gateway_to_the_projection() -> anyhow::Result<()> {
    let jaeger = Jaeger::start().await?;
    let mut stack = Stack::start("traces").await?;
    for name in [API_GATEWAY, VENTURES_SYNC, PROJECTION_WRITER, SHAREFILE_SYNC] {
        stack.service(name).set_env("BRAIN__OTLP_ENDPOINT", &jaeger.otlp);
    }
    let sim = stack.sim.base_url();
    let loan = stack.create_loan("app-trace", "Open").await?;
    let loan_id = loan["loanId"].as_str().unwrap_or_default().to_string();
    let c: Value = stack.http.post(format!("{sim}/control/loans/{loan_id}/conditions")).json(&json!({ "name": "Bank statements" })).send().await?.error_for_status()?.json().await?;
    let condition = c["conditionId"].as_str().unwrap_or_default().to_string();
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, SHAREFILE_SYNC, API_GATEWAY]).await?;
    let pool = stack.db.connect().await?;
    wait_for("the application and its task", WAIT, || async {
        let app: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.applications WHERE application_id = 'app-trace'").fetch_one(&pool).await?;
        let task: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.tasks WHERE task_id = $1").bind(&condition).fetch_one(&pool).await?;
        Ok((app == 1 && task == 1).then_some(()))
    })
    .await?;

    // 1. A console status change: gateway → command topic → ventures-sync → Ventures → outcome
    //    topic → projection-writer → Firestore.
    let staff = stack.token("staff", VENTURES_TENANT);
    // The caller's request id becomes the command's correlation id.
    let request_id = uuid::Uuid::new_v4().to_string();
    let answer: Value = stack
        .http
        .post(format!("{}/api/v1/applications/app-trace/status", stack.gateway_url))
        .bearer_auth(&staff)
        .header("x-request-id", &request_id)
        .json(&json!({ "status": "Approved", "appVersion": 1 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(answer["commandId"].is_string(), "no command id in {answer}");
    let command = request_id;
    let status = wait_trace(&stack, &jaeger, VENTURES_SYNC, &command, &[API_GATEWAY, VENTURES_SYNC, PROJECTION_WRITER], &["request", "consume", "ventures.request", "firestore.commit"]).await?;
    assert!(status.correlated.contains(VENTURES_SYNC) && status.correlated.contains(PROJECTION_WRITER), "{status:?}");

    // 2. A document upload: gateway → sharefile-sync → ShareFile → ventures-sync → Ventures →
    //    projection-writer → Firestore.
    let bytes = b"%PDF-1.7\n% statements for the trace\n".to_vec();
    stack.http.put(format!("{}/control/objects/brain-uploads/app-trace/statements.pdf", stack.storage.base_url())).header("content-type", "application/pdf").body(bytes).send().await?.error_for_status()?;
    let borrower = stack.borrower_token(VENTURES_TENANT, &["app-trace"]);
    let ingested: Value = stack
        .http
        .post(format!("{}/api/v1/documents/ingest", stack.gateway_url))
        .bearer_auth(&borrower)
        .json(&json!({ "applicationId": "app-trace", "taskId": condition, "bucket": "brain-uploads", "object": "app-trace/statements.pdf", "fileName": "Bank statements.pdf" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let document = ingested["documentId"].as_str().unwrap_or_default().to_string();
    let upload = wait_trace(
        &stack,
        &jaeger,
        SHAREFILE_SYNC,
        &document,
        &[API_GATEWAY, SHAREFILE_SYNC, VENTURES_SYNC, PROJECTION_WRITER],
        &["request", "consume", "sharefile.upload", "ventures.request", "firestore.commit"],
    )
    .await?;
    assert!(upload.correlated.contains(SHAREFILE_SYNC), "{upload:?}");
    for (what, t) in [("status change", &status), ("upload", &upload)] {
        println!(
            "traces: {what}: trace {} with {} spans over {} ({}), correlation id on the spans of {}",
            t.id,
            t.spans,
            t.services.iter().cloned().collect::<Vec<_>>().join(", "),
            t.operations.iter().cloned().collect::<Vec<_>>().join(", "),
            t.correlated.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    stack.stop_all().await?;
    Ok(())
}
