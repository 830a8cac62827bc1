//! The baselines for figure (5), on `127.0.0.1:<port>`, answering
//! `GET /api/v1/applications/{id}` with a JSON body shaped like the gateway's:
//! - `bench-bare-axum PORT`: built in memory (no database, no middleware): the static limit;
//! - `bench-bare-axum PORT DATABASE_URL TENANT`: the gateway's own read-model query
//!   (`api_gateway::applications::QUERY`, scoped to `TENANT`) through a pool like the
//!   gateway's (16 connections), and nothing else: no authentication, no middleware. The fair
//!   limit for the gateway with token verification on.

use std::{str::FromStr, time::Duration};

use api_gateway::applications::{Application, QUERY};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use chrono::{DateTime, Utc};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_default()
}

async fn from_memory(Path(id): Path<String>) -> Json<Application> {
    Json(Application {
        application_id: id,
        tenant_id: "bench".into(),
        loan_id: "L-bench".into(),
        loan_number: "2026-00000001".into(),
        loan_type: "7A".into(),
        ventures_status: "Approved".into(),
        status_changed_at: at("2026-11-22T04:00:00Z"),
        amount_requested_cents: 12_500_000,
        amount_approved_cents: Some(10_000_000),
        version: 3,
        source_occurred_at: at("2026-11-22T04:00:00Z"),
        projected_at: at("2026-11-22T04:00:00.1Z"),
        correlation_id: "6f1c2d1e-8e3b-4c55-9a7e-2b0f5d3c9a10".into(),
    })
}

async fn from_database(
    State((pool, tenant)): State<(PgPool, String)>,
    Path(id): Path<String>,
) -> Result<Json<Application>, StatusCode> {
    sqlx::query_as::<_, Application>(QUERY)
        .bind(id)
        .bind(tenant)
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bench-bare-axum PORT [DATABASE_URL TENANT]"))?
        .parse()?;
    let router = match args.next() {
        None => Router::new().route("/api/v1/applications/{id}", get(from_memory)),
        Some(url) => {
            let tenant = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("usage: bench-bare-axum PORT [DATABASE_URL TENANT]"))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(PgConnectOptions::from_str(&url)?)
                .await?;
            Router::new()
                .route("/api/v1/applications/{id}", get(from_database))
                .with_state((pool, tenant))
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
