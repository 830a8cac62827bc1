//! `POST /replays` (a dry run, answered with its report; or a replay, run in the background:
//! 202), `GET /replays/{id}` (the job from the audit, with its progress while it runs here) and
//! `GET /replays?limit=`. One replay runs at a time per replayer (409 `replay_in_progress`
//! otherwise): two at once would race on what the other already sent.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use brain_runtime::telemetry::metric_name;
use dlq_api::{JobItem, JobProgress, MAX_ITEMS, OperatorReplay, ReplayAccepted, ReplayJob, ReplayJobs, ReplayReport};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    AppState,
    error::ServiceError,
    query::{Body, TenantScope, text},
};
use crate::{
    SERVICE, audit,
    job::{self, JobRequest},
    replay::{Report, Tracker},
};

/// The replays running in this process, owned: stopped and awaited at shutdown.
#[derive(Clone, Default)]
pub struct Jobs(Arc<Inner>);

#[derive(Default)]
struct Inner {
    running: Mutex<HashMap<Uuid, Arc<Tracker>>>,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

impl Jobs {
    fn progress(&self, id: Uuid) -> Option<JobProgress> {
        self.0.running.lock().expect("jobs lock").get(&id).map(|t| t.snapshot())
    }

    /// The one slot for a replay, for job `id`.
    fn reserve(&self, id: Uuid) -> Result<Arc<Tracker>, ServiceError> {
        if self.0.stop.is_cancelled() {
            return Err(ServiceError::ShuttingDown);
        }
        let mut running = self.0.running.lock().expect("jobs lock");
        if let Some(other) = running.keys().next() {
            return Err(ServiceError::Conflict { code: "replay_in_progress", detail: format!("job {other} is replaying; wait for it to end") });
        }
        let tracker = Arc::new(Tracker::new(self.0.stop.child_token()));
        running.insert(id, tracker.clone());
        Ok(tracker)
    }

    fn release(&self, id: Uuid) {
        self.0.running.lock().expect("jobs lock").remove(&id);
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.0.tasks.lock().expect("jobs lock");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Tells every running replay to stop after its current chunk and waits `grace` for them;
    /// then aborts what is left (each is resumable with its job id).
    pub async fn stop(&self, grace: Duration) {
        self.0.stop.cancel();
        let mut tasks = std::mem::take(&mut *self.0.tasks.lock().expect("jobs lock"));
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(?grace, "replays still running after the grace period: aborted (resume them with their job ids)");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

fn in_scope(job: &audit::Job, scope: &TenantScope) -> bool {
    scope.0.as_deref().is_none_or(|tenant| job.filter.get("tenant").and_then(|t| t.as_str()) == Some(tenant))
}

fn job_not_found(id: Uuid) -> ServiceError {
    ServiceError::NotFound { code: "replay_job_not_found", detail: format!("no replay job {id}") }
}

fn report_view(report: &Report, dry_run: bool) -> ReplayReport {
    let sent = report.sent.iter().map(|id| JobItem { id: id.clone(), outcome: "sent".into(), reason: None });
    let skipped = report.skipped.iter().map(|(id, r)| JobItem { id: id.clone(), outcome: "skipped".into(), reason: Some(r.clone()) });
    let failed = report.failed.iter().map(|(id, r)| JobItem { id: id.clone(), outcome: "failed".into(), reason: Some(r.clone()) });
    ReplayReport {
        job_id: report.job_id,
        dry_run,
        matched: report.matched,
        sent: report.sent.len(),
        skipped: report.skipped.len(),
        failed: report.failed.len(),
        seconds: report.seconds,
        items: sent.chain(skipped).chain(failed).take(MAX_ITEMS).collect(),
    }
}

fn job_view(job: audit::Job, progress: Option<JobProgress>, items: Vec<(String, String, Option<String>)>) -> ReplayJob {
    // A job that ended: everything it was to send is done.
    let progress = progress.or_else(|| {
        let handled = (job.sent + job.failed).max(0) as u64;
        (job.state != "running").then(|| JobProgress { stage: "done".into(), total: handled, done: handled })
    });
    ReplayJob {
        job_id: job.job_id,
        operator: job.operator,
        filter: job.filter,
        dry_run: job.dry_run,
        rate_limit: job.rate_limit,
        state: job.state,
        matched: job.matched,
        sent: job.sent,
        skipped: job.skipped,
        failed: job.failed,
        started_at: job.started_at,
        finished_at: job.finished_at,
        note: job.note,
        progress,
        items: items.into_iter().map(|(id, outcome, reason)| JobItem { id, outcome, reason }).collect(),
    }
}

pub async fn start(State(state): State<AppState>, scope: TenantScope, Body(body): Body<OperatorReplay>) -> Result<Response, ServiceError> {
    let invalid = |detail: &str| ServiceError::bad_request("invalid_replay", detail);
    let filter = scope.filter(body.filter)?;
    let cap = body.cap.unwrap_or(3);
    if !(1..=100).contains(&cap) {
        return Err(invalid("cap is 1-100"));
    }
    if body.rate.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 100_000.0)) {
        return Err(invalid("rate is more than 0 and at most 100,000 messages per second"));
    }
    if body.dry_run && body.job_id.is_some() {
        return Err(invalid("a dry run starts no job to resume: leave jobId out"));
    }
    if let Some(id) = body.job_id
        && let Some(job) = state.tools.audit.job(id).await?
        && !in_scope(&job, &scope)
    {
        return Err(job_not_found(id));
    }
    let operator = text("invalid_body", "operator", &body.operator, 256)?;
    let request = JobRequest { filter, dry_run: body.dry_run, rate: body.rate, cap, operator, resume: body.job_id };
    if body.dry_run {
        let prepared = job::prepare(&state.tools, request).await?;
        let report = job::execute(&state.tools, &state.producer, prepared, &Tracker::default(), false).await?;
        return Ok(Json(report_view(&report, true)).into_response());
    }
    let job_id = body.job_id.unwrap_or_else(Uuid::now_v7);
    let tracker = state.jobs.reserve(job_id)?;
    let prepared = match job::prepare(&state.tools, JobRequest { resume: Some(job_id), ..request }).await {
        Ok(prepared) => prepared,
        Err(e) => {
            state.jobs.release(job_id);
            return Err(e.into());
        }
    };
    tracing::info!(%job_id, operator = %prepared.request.operator, filter = ?prepared.request.filter, "replay job started");
    let task_state = state.clone();
    state.jobs.spawn(async move {
        let outcome = match job::execute(&task_state.tools, &task_state.producer, prepared, &tracker, false).await {
            Ok(report) => {
                tracing::info!(%job_id, sent = report.sent.len(), skipped = report.skipped.len(), failed = report.failed.len(), interrupted = report.interrupted, "replay job ended");
                if report.interrupted { "interrupted" } else { "finished" }
            }
            Err(e) => {
                tracing::warn!(%job_id, error = %job::chain(&e), "replay job failed; resume it with its job id");
                "failed"
            }
        };
        metrics::counter!(metric_name(SERVICE, "replay_jobs_total"), "outcome" => outcome).increment(1);
        task_state.jobs.release(job_id);
    });
    let status_url = format!("/replays/{job_id}");
    let location = [(LOCATION, status_url.clone())];
    Ok((StatusCode::ACCEPTED, location, Json(ReplayAccepted { job_id, state: "running".into(), status_url })).into_response())
}

pub async fn get(State(state): State<AppState>, scope: TenantScope, Path(id): Path<String>) -> Result<Json<ReplayJob>, ServiceError> {
    let id = Uuid::parse_str(&id).map_err(|_| ServiceError::bad_request("invalid_job_id", "job ids are UUIDs"))?;
    let job = state.tools.audit.job(id).await?.filter(|job| in_scope(job, &scope)).ok_or_else(|| job_not_found(id))?;
    let items = state.tools.audit.items(id, MAX_ITEMS as i64).await?;
    Ok(Json(job_view(job, state.jobs.progress(id), items)))
}

pub async fn list(State(state): State<AppState>, scope: TenantScope, RawQuery(raw): RawQuery) -> Result<Json<ReplayJobs>, ServiceError> {
    let invalid = || ServiceError::bad_request("invalid_limit", "limit is 1-100");
    let mut limit = 20;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "limit" if !value.trim().is_empty() => limit = value.trim().parse::<i64>().ok().filter(|l| (1..=100).contains(l)).ok_or_else(invalid)?,
            "limit" => {}
            _ => return Err(invalid()),
        }
    }
    let jobs = state.tools.audit.jobs_for(scope.0.as_deref(), limit).await?;
    let jobs = jobs.into_iter().map(|job| {
        let progress = state.jobs.progress(job.job_id);
        job_view(job, progress, Vec::new())
    });
    Ok(Json(ReplayJobs { jobs: jobs.collect() }))
}
