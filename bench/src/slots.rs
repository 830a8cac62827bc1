//! Figure (12): `GET /api/v1/calendar/slots` while Microsoft Graph is down, at a fixed rate
//! (500 requests/s by default), beside the bare axum handler (figure (5)'s, answering a JSON
//! document from memory) at the same rate in the same run.
//!
//! graph-calendar reads 10 staff calendars from the Graph simulator, then every Graph call
//! answers 503 (an outage injected in the simulator) and graph-calendar's refreshes fail. The
//! gateway keeps answering from the stored slots, saying how old they are (`ageSeconds`,
//! `refreshError`): the figure is the latency of those answers. The load client is figure (5)'s
//! (fixed rate, latency from when each request was due).

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use system_tests::stack::{GRAPH_CALENDAR, Stack};

use crate::gateway::{self, LoadRun, Target};

const STAFF: usize = 10;
const TENANT: &str = "default";

#[derive(Debug, Clone, Serialize)]
pub struct SlotsFigures {
    pub staff: usize,
    /// How old the availability was when the load ended, and what the last refresh said.
    pub availability_age_seconds: f64,
    pub refresh_error: Option<String>,
    /// Free slots in the answer (the same answer throughout).
    pub slots_in_answer: usize,
    /// The slots endpoint, then the bare axum handler, both at the same fixed rate.
    pub runs: Vec<LoadRun>,
    /// The slots endpoint's P99 ÷ the bare handler's P99.
    pub p99_vs_bare: f64,
}

async fn control(stack: &Stack, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut request = stack.http.request(method, format!("{}/control/{path}", stack.graph.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Ok(request.send().await?.error_for_status()?.json().await.unwrap_or(Value::Null))
}

async fn slots(stack: &Stack, token: &str, staff: &str) -> anyhow::Result<(u16, Value)> {
    let response = stack.http.get(format!("{}/api/v1/calendar/slots?staffId={staff}&duration=30", stack.gateway_url)).bearer_auth(token).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

pub async fn measure(stack: &mut Stack, rps: u32, secs: Duration) -> anyhow::Result<SlotsFigures> {
    let staff: Vec<String> = (0..STAFF).map(|i| format!("bench-staff-{i}")).collect();
    let seeded: Vec<Value> = staff.iter().map(|id| json!({ "id": id, "displayName": format!("Staff {id}"), "mail": format!("{id}@contoso.example") })).collect();
    control(stack, reqwest::Method::POST, "seed", Some(json!({ "staff": seeded }))).await?;
    stack.service(GRAPH_CALENDAR).set_envs(&[("GRAPH_CALENDAR__STAFF", &staff.join(",")), ("GRAPH_CALENDAR__REFRESH_INTERVAL_MS", "1000"), ("GRAPH_CALENDAR__BREAKER_OPEN_MS", "1000")]);
    stack.service(GRAPH_CALENDAR).start().await?;
    let token = stack.token("staff", TENANT);
    let first = &staff[0];
    system_tests::wait_for("slots of the first staff member", Duration::from_secs(120), || async {
        let (status, body) = slots(stack, &token, first).await?;
        Ok((status == 200 && body["slots"].as_array().is_some_and(|s| !s.is_empty())).then_some(()))
    })
    .await?;
    // Graph goes down; wait until graph-calendar has seen a refresh fail.
    control(stack, reqwest::Method::POST, "faults", Some(json!({ "status": 503, "pathContains": "/v1.0/" }))).await?;
    system_tests::wait_for("a failed refresh", Duration::from_secs(60), || async {
        let (_, body) = slots(stack, &token, first).await?;
        Ok(body["refreshError"].is_string().then_some(()))
    })
    .await?;
    let url = format!("{}/api/v1/calendar/slots?staffId={first}&duration=30", stack.gateway_url);
    let endpoint = gateway::load(&Target { name: "calendar-slots (Graph down)", url, token: Some(token.clone()) }, Some(rps), secs).await?;
    let (_, answer) = slots(stack, &token, first).await?;
    let port = system_tests::free_port();
    let bare_process = gateway::bare_axum(port, None).await?;
    let bare = gateway::load(&Target { name: "bare-axum", url: format!("http://127.0.0.1:{port}/api/v1/applications/app-1"), token: None }, Some(rps), secs).await?;
    drop(bare_process);
    control(stack, reqwest::Method::DELETE, "faults", None).await?;
    stack.service(GRAPH_CALENDAR).stop().await?;
    Ok(SlotsFigures {
        staff: STAFF,
        availability_age_seconds: answer["ageSeconds"].as_f64().unwrap_or_default(),
        refresh_error: answer["refreshError"].as_str().map(str::to_string),
        slots_in_answer: answer["slots"].as_array().map_or(0, Vec::len),
        p99_vs_bare: endpoint.p99_ms / bare.p99_ms.max(0.001),
        runs: vec![endpoint, bare],
    })
}

#[cfg(test)]
mod tests {
    /// Figure (12) alone, on a stack of its own (the gateway and graph-calendar from `target/`):
    /// `cargo test -p brain-bench --lib slots_with_graph_down_alone -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a benchmark: run it on purpose"]
    async fn slots_with_graph_down_alone() -> anyhow::Result<()> {
        let rps = std::env::var("BENCH_SLOTS_RPS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
        let mut stack = system_tests::stack::Stack::start("bench-slots").await?;
        stack.start_services(&[system_tests::stack::API_GATEWAY]).await?;
        let result = super::measure(&mut stack, rps, std::time::Duration::from_secs(10)).await;
        stack.stop_all().await?;
        let f = result?;
        println!("{}", serde_json::to_string_pretty(&f)?);
        Ok(())
    }
}
