//! The gateway against its own OpenAPI document: schemathesis (PyPI, pinned in
//! `infra/dev/requirements.txt`, installed into `.cache/venv` by `make setup`) generates requests
//! from `/api/v1/openapi.json` and checks every answer against the document, once per role with
//! that role's token: no server error, and only the status codes, content types, headers and
//! bodies the document declares. The document's example application is a real loan here (and a
//! borrower's own), so requests reach the 200, 202, 409 and 422 answers, not only 404s.
//! dlq-replayer runs behind the admin routes (`/api/v1/admin/...`), so those are answered by it,
//! not by 503 `dlq_replayer_unavailable`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use system_tests::{
    repo_root,
    stack::{API_GATEWAY, DLQ_REPLAYER, GRAPH_CALENDAR, PROJECTION_WRITER, QBO_MIRROR, Stack, VENTURES_SYNC, VENTURES_TENANT},
    wait_for,
};

const WAIT: Duration = Duration::from_secs(60);
/// The checks that make the document a contract (schemathesis 4 names).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance";
/// Test cases per operation and phase: every declared answer is reached, and the four runs take
/// about a minute together (ops and admin most of it: their admin requests each read Kafka).
const MAX_EXAMPLES: &str = "25";
/// A fixed seed: a failure replays with the same requests.
const SEED: &str = "20260509";
/// One schemathesis run at most (it stops by itself far sooner).
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// A second application, beside the document's example.
const OTHER_APP: &str = "app-openapi-2";

/// `BRAIN_SCHEMATHESIS`, else the project venv's.
fn schemathesis() -> PathBuf {
    std::env::var("BRAIN_SCHEMATHESIS").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/venv/bin/schemathesis"))
}

/// A loan in the simulator whose application `app` is in the read model.
async fn projected_loan(stack: &Stack, app: &str) -> anyhow::Result<()> {
    let body = json!({
        "loanType": "7A", "status": "Prospect",
        "borrower": { "entityId": format!("B-{app}"), "name": "Test Borrower" },
        "amounts": { "requested": 120000.0 }, "externalId": app,
    });
    stack.http.post(format!("{}/control/loans", stack.sim.base_url())).json(&body).send().await?.error_for_status()?;
    let token = stack.token("staff", VENTURES_TENANT);
    wait_for(&format!("{app} in the read model"), WAIT, || async {
        let response = stack.http.get(format!("{}/api/v1/applications/{app}", stack.gateway_url)).bearer_auth(&token).send().await?;
        Ok((response.status() == 200).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_only_answers_the_openapi_document_declares() -> anyhow::Result<()> {
    crate::init_logs();
    let schemathesis = schemathesis();
    anyhow::ensure!(schemathesis.exists(), "{} is missing: run `make setup` (it installs infra/dev/requirements.txt into .cache/venv)", schemathesis.display());
    let started = Instant::now();
    let mut stack = Stack::start("openapi").await?;
    // The calendar's example staff member, so its routes answer from graph-calendar's read model.
    let seed = json!({ "staff": [{ "id": "ann", "mail": "ann@contoso.example" }] });
    stack.http.post(format!("{}/control/seed", stack.graph.base_url())).json(&seed).send().await?.error_for_status()?;
    stack.service(GRAPH_CALENDAR).set_env("GRAPH_CALENDAR__STAFF", "ann");
    stack.start_services(&[VENTURES_SYNC, PROJECTION_WRITER, QBO_MIRROR, API_GATEWAY, DLQ_REPLAYER, GRAPH_CALENDAR]).await?;
    let slots = format!("{}/api/v1/calendar/slots?staffId=ann", stack.gateway_url);
    let token = stack.token("staff", VENTURES_TENANT);
    wait_for("ann's availability", WAIT, || async { Ok(stack.http.get(&slots).bearer_auth(&token).send().await?.status().is_success().then_some(())) }).await?;

    // The document and its page need no token.
    let spec_url = format!("{}/api/v1/openapi.json", stack.gateway_url);
    let doc: Value = stack.http.get(&spec_url).send().await?.error_for_status()?.json().await?;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    let page = stack.http.get(format!("{}/api/v1/docs", stack.gateway_url)).send().await?.error_for_status()?;
    assert!(page.headers()["content-type"].to_str()?.starts_with("text/html"));
    assert!(page.text().await?.contains("openapi.json"), "the page renders the document");

    let example = doc["paths"]["/api/v1/applications/{id}"]["get"]["parameters"][0]["example"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(!example.is_empty(), "the document has an example application id");
    for app in [example.as_str(), OTHER_APP] {
        projected_loan(&stack, app).await?;
    }
    println!("stack and data ready in {:.1} s", started.elapsed().as_secs_f64());

    let mut failures = Vec::new();
    for role in ["borrower", "staff", "ops", "admin"] {
        let token = match role {
            "borrower" => stack.borrower_token(VENTURES_TENANT, &[example.as_str(), OTHER_APP]),
            _ => stack.token(role, VENTURES_TENANT),
        };
        let run = Instant::now();
        let mut command = tokio::process::Command::new(&schemathesis);
        command
            .args(["run", &spec_url, "--url", &stack.gateway_url, "--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--workers", "1", "--request-timeout", "20", "--generation-database", "none", "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .current_dir(&stack.logs)
            .kill_on_drop(true);
        let output = tokio::time::timeout(RUN_LIMIT, command.output()).await.map_err(|_| anyhow::anyhow!("schemathesis as {role} ran past {RUN_LIMIT:?}"))??;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        std::fs::write(stack.logs.join(format!("schemathesis-{role}.log")), &text)?;
        println!("schemathesis as {role}: {} in {:.1} s", output.status, run.elapsed().as_secs_f64());
        if !output.status.success() {
            failures.push(format!("---- schemathesis as {role}: {} ----\n{text}", output.status));
        }
    }
    stack.stop_all().await?;
    println!("openapi: {:.1} s in all", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "answers that break the OpenAPI document:\n{}", failures.join("\n"));
    Ok(())
}
