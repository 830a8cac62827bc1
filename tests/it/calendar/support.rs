//! What the calendar test does through the gateway, the Graph simulator's control API and
//! Python's `icalendar`.

use std::{path::Path, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use system_tests::{repo_root, stack::Stack};

/// An answer: status, body, how long it took.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub took: Duration,
}

pub async fn get(stack: &Stack, token: &str, path: &str) -> anyhow::Result<Answer> {
    let started = std::time::Instant::now();
    let response = stack.http.get(format!("{}{path}", stack.gateway_url)).bearer_auth(token).send().await?;
    let status = response.status().as_u16();
    Ok(Answer { status, body: response.json().await.unwrap_or(Value::Null), took: started.elapsed() })
}

pub async fn post(stack: &Stack, token: &str, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
    let started = std::time::Instant::now();
    let mut request = stack.http.post(format!("{}{path}", stack.gateway_url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok(Answer { status, body: response.json().await.unwrap_or(Value::Null), took: started.elapsed() })
}

/// `GET /api/v1/calendar/slots` of `staff`, `duration` minutes.
pub async fn slots(stack: &Stack, token: &str, staff: &str, duration: u32) -> anyhow::Result<Answer> {
    get(stack, token, &format!("/api/v1/calendar/slots?staffId={staff}&duration={duration}")).await
}

/// The slot starts of an answer.
pub fn starts(answer: &Value) -> Vec<DateTime<Utc>> {
    answer["slots"].as_array().into_iter().flatten().filter_map(|s| s["start"].as_str()?.parse().ok()).collect()
}

/// The meeting's invitation: status, content type, text.
pub async fn ics(stack: &Stack, token: &str, meeting: &str) -> anyhow::Result<(u16, String, String)> {
    let response = stack.http.get(format!("{}/api/v1/meetings/{meeting}/ics", stack.gateway_url)).bearer_auth(token).send().await?;
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Ok((status, content_type, response.text().await?))
}

/// `/control/...` of the Graph simulator.
pub async fn control(stack: &Stack, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut request = stack.http.request(method, format!("{}/control/{path}", stack.graph.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?.error_for_status()?;
    Ok(response.json().await.unwrap_or(Value::Null))
}

/// Seeds the staff mailboxes (working hours as graph-calendar's defaults).
pub async fn seed(stack: &Stack, staff: &[String]) -> anyhow::Result<()> {
    let staff: Vec<Value> = staff.iter().map(|id| json!({ "id": id, "displayName": format!("Staff {id}"), "mail": format!("{id}@contoso.example") })).collect();
    control(stack, reqwest::Method::POST, "seed", Some(json!({ "staff": staff }))).await?;
    Ok(())
}

pub async fn fault(stack: &Stack, fault: Value) -> anyhow::Result<()> {
    control(stack, reqwest::Method::POST, "faults", Some(fault)).await?;
    Ok(())
}

/// Parses each ICS file with Python's `icalendar` (the project's venv): per file
/// `METHOD|UID|SEQUENCE|DTSTART|DTEND|URL`. `None` when the venv has no Python (setup.sh makes it).
pub async fn parse_with_icalendar(files: &[&Path]) -> anyhow::Result<Option<Vec<String>>> {
    let python = repo_root().join(".cache/venv/bin/python");
    if !python.exists() {
        return Ok(None);
    }
    const SCRIPT: &str = "import sys, icalendar\n\
        for path in sys.argv[1:]:\n\
        \x20   cal = icalendar.Calendar.from_ical(open(path, 'rb').read())\n\
        \x20   ev = next(iter(cal.walk('VEVENT')))\n\
        \x20   print(str(cal['METHOD']), str(ev['UID']), int(ev['SEQUENCE']), ev.decoded('DTSTART').isoformat(), ev.decoded('DTEND').isoformat(), str(ev.get('URL', '')), sep='|')\n";
    let output = tokio::process::Command::new(python).arg("-c").arg(SCRIPT).args(files).output().await?;
    anyhow::ensure!(output.status.success(), "icalendar refused an ICS: {}", String::from_utf8_lossy(&output.stderr));
    Ok(Some(String::from_utf8(output.stdout)?.lines().map(str::to_string).collect()))
}

/// Meetings per state, as graph-calendar recorded them.
pub async fn states(pool: &sqlx::PgPool) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM graph_calendar.meetings GROUP BY state").fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}
