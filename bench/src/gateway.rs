//! Figure (5): the application read endpoint under the bench's own HTTP load client, at a fixed
//! rate and at saturation, beside a bare axum handler (`bench-bare-axum`) measured the same way in
//! the same run.
//!
//! The load client is part of the bench (nothing to install): `CONNECTIONS` workers, each with one
//! HTTP/1.1 keep-alive connection (hyper's client connection, no pool, no TLS), sending `GET`s one
//! after the other and reading every body to the end.
//!
//! - **Fixed rate:** request `i` is due at `start + i / rate`; a free worker takes the next due
//!   request, waits until it is due and sends it. Latency is measured **from when the request was
//!   due**, not from when it was sent, so a server that falls behind is charged for the queueing it
//!   causes (no coordinated omission, as in wrk2).
//! - **Saturation:** every worker sends its next request as soon as the previous answer is read,
//!   until the duration is over; latency is send → last byte of the body.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Empty};
use hyper::{Request, Uri, body::Bytes};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::time::Instant;

use crate::pipeline::Latency;

/// Connections (one worker each) the load client keeps open, in both modes.
pub const CONNECTIONS: u32 = 50;

/// What generated the load, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct LoadClient {
    pub name: &'static str,
    pub connections: u32,
}

impl Default for LoadClient {
    fn default() -> Self {
        Self {
            name: "brain-bench's own (hyper 1 HTTP/1.1 client connections, keep-alive)",
            connections: CONNECTIONS,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    pub target: String,
    /// `fixed` (a request due every 1/rate s) or `saturation` (as fast as the connections allow).
    pub mode: String,
    pub offered_rps: Option<u32>,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Responses with status 200 ÷ requests (the target: 1; reported, not enforced).
    pub success_rate: f64,
}

/// One worker's tally.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    ok: u64,
    failed: u64,
}

/// One keep-alive HTTP/1.1 connection to `authority`.
async fn connect(
    authority: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one GET (with `authorization` when given) and reads its body; true when the answer was
/// a 200.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: &str,
    path: &str,
    authorization: Option<&str>,
) -> anyhow::Result<bool> {
    sender.ready().await?;
    let mut request = Request::get(path).header(hyper::header::HOST, authority);
    if let Some(value) = authorization {
        request = request.header(hyper::header::AUTHORIZATION, value);
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

/// What to load: a name for the report, the URL (`http://host:port/path`) and the bearer token
/// to send, if any.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub token: Option<String>,
}

/// Loads `target` for `duration`, at `rate` requests/s or at saturation.
pub async fn load(target: &Target, rate: Option<u32>, duration: Duration) -> anyhow::Result<LoadRun> {
    let url = target.url.as_str();
    let authorization = target.token.as_ref().map(|t| format!("Bearer {t}"));
    let uri: Uri = url.parse()?;
    anyhow::ensure!(uri.scheme_str() == Some("http"), "plain http only: {url}");
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?
        .to_string();
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let total = rate.map(|r| (r as f64 * duration.as_secs_f64()).round().max(1.0) as u64);
    let next = Arc::new(AtomicU64::new(0));
    // Connections first, so the run measures requests, not connection set-up.
    let mut senders = Vec::with_capacity(CONNECTIONS as usize);
    for _ in 0..CONNECTIONS {
        senders.push(connect(&authority).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (authority, path, next, authorization) =
            (authority.clone(), path.clone(), next.clone(), authorization.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            tokio::time::sleep_until(start).await;
            loop {
                let began = match (rate, total) {
                    (Some(rate), Some(total)) => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                        tokio::time::sleep_until(due).await;
                        due
                    }
                    _ => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                match get(&mut sender, &authority, &path, authorization.as_deref()).await {
                    Ok(ok) => {
                        tally.latencies.push(began.elapsed().as_secs_f64());
                        if ok {
                            tally.ok += 1;
                        } else {
                            tally.failed += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "load client request failed; reconnecting");
                        tally.failed += 1;
                        match connect(&authority).await {
                            Ok(s) => sender = s,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        all.latencies.extend(tally.latencies);
        all.ok += tally.ok;
        all.failed += tally.failed;
    }
    let seconds = start.elapsed().as_secs_f64();
    let requests = all.ok + all.failed;
    // A response other than 200 is counted (`success_rate`), not fatal: on a starved machine a
    // server may shed a request, and the bench reports it rather than failing. None at all is.
    anyhow::ensure!(all.ok > 0, "{}: none of {requests} responses was 200", target.name);
    if all.failed > 0 {
        tracing::warn!(target = target.name, failed = all.failed, requests, "responses other than 200");
    }
    let latency = Latency::of(all.latencies);
    Ok(LoadRun {
        target: target.name.into(),
        mode: if rate.is_some() {
            "fixed"
        } else {
            "saturation"
        }
        .into(),
        offered_rps: rate,
        seconds,
        requests,
        requests_per_sec: requests as f64 / seconds,
        p50_ms: latency.p50_ms,
        p95_ms: latency.p95_ms,
        p99_ms: latency.p99_ms,
        max_ms: latency.max_ms,
        success_rate: all.ok as f64 / requests as f64,
    })
}

/// A bare axum handler as a child process on `port`, ready to serve: from memory, or running the
/// gateway's query on a database URL, scoped to a tenant, when given.
pub async fn bare_axum(
    port: u16,
    query: Option<(&str, &str)>,
) -> anyhow::Result<tokio::process::Child> {
    // Beside the bench binary, or one folder up when the bench runs as a test (`deps/`).
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("bench-bare-axum");
    let bin = match exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("bench-bare-axum")) {
        Some(up) if !beside.exists() => up,
        _ => beside,
    };
    anyhow::ensure!(
        bin.exists(),
        "{} is not built (cargo build -p brain-bench)",
        bin.display()
    );
    let child = tokio::process::Command::new(&bin)
        .arg(port.to_string())
        .args(query.into_iter().flat_map(|(url, tenant)| [url, tenant]))
        .kill_on_drop(true)
        .spawn()?;
    system_tests::wait_for(
        "the bare axum handler",
        Duration::from_secs(20),
        || async move {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    Ok(child)
}

/// Figure (5): the application endpoint through the gateway (with a staff token of the
/// application's tenant) beside the two baselines, at `rps` and at saturation, `secs` each.
pub async fn measure(
    stack: &system_tests::stack::Stack,
    pool: &sqlx::PgPool,
    rps: u32,
    secs: Duration,
) -> anyhow::Result<Vec<LoadRun>> {
    let (app, tenant): (String, String) = sqlx::query_as(
        "SELECT application_id, tenant_id FROM projection_writer.applications LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    let (bare_port, query_port) = (system_tests::free_port(), system_tests::free_port());
    let _bare = bare_axum(bare_port, None).await?;
    let reader_url = stack.db.url(Some("brain_gateway_reader"));
    let _query = bare_axum(query_port, Some((&reader_url, &tenant))).await?;
    let path = format!("/api/v1/applications/{app}");
    let targets = [
        Target {
            name: "api-gateway",
            url: format!("{}{path}", stack.gateway_url),
            token: Some(stack.token("staff", &tenant)),
        },
        Target {
            name: "bare-axum-query",
            url: format!("http://127.0.0.1:{query_port}{path}"),
            token: None,
        },
        Target {
            name: "bare-axum",
            url: format!("http://127.0.0.1:{bare_port}{path}"),
            token: None,
        },
    ];
    let mut runs = Vec::new();
    for rate in [Some(rps), None] {
        for target in &targets {
            runs.push(load(target, rate, secs).await?);
        }
    }
    Ok(runs)
}
