//! The baseline for figure (5): a bare axum handler on `127.0.0.1:<port>` answering
//! `GET /api/v1/applications/{id}` with a JSON body shaped like the gateway's, built in memory
//! (no database, no middleware).

use axum::{Json, Router, extract::Path, routing::get};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Application {
    application_id: String,
    tenant_id: &'static str,
    loan_id: &'static str,
    loan_number: &'static str,
    loan_type: &'static str,
    ventures_status: &'static str,
    status_changed_at: &'static str,
    amount_requested_cents: i64,
    amount_approved_cents: Option<i64>,
    version: i64,
    source_occurred_at: &'static str,
    projected_at: &'static str,
    correlation_id: &'static str,
}

async fn application(Path(id): Path<String>) -> Json<Application> {
    Json(Application {
        application_id: id,
        tenant_id: "bench",
        loan_id: "L-bench",
        loan_number: "2026-00000001",
        loan_type: "7A",
        ventures_status: "Approved",
        status_changed_at: "2026-11-22T04:00:00Z",
        amount_requested_cents: 12_500_000,
        amount_approved_cents: Some(10_000_000),
        version: 3,
        source_occurred_at: "2026-11-22T04:00:00Z",
        projected_at: "2026-11-22T04:00:00.1Z",
        correlation_id: "6f1c2d1e-8e3b-4c55-9a7e-2b0f5d3c9a10",
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench-bare-axum PORT"))?
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = Router::new().route("/api/v1/applications/{id}", get(application));
    axum::serve(listener, app).await?;
    Ok(())
}
