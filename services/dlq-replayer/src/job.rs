//! A replay job from start to end, the same for the CLI (`dlq-replayer replay`) and the HTTP API
//! (`POST /replays`): [`prepare`] checks the request and records the job as running (a resumed
//! job must keep its filter), [`execute`] reads the chosen dead letters, replays them
//! ([`replay::run_tracked`]: resumable, audited) and records how the job ended. A dry run is
//! recorded once it is done, with what it would have sent.

use brain_runtime::producer::EventProducer;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    Tools,
    filter::Filter,
    read,
    replay::{self, Options, Report, Tracker},
};

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub filter: Filter,
    pub dry_run: bool,
    /// Messages per second at most.
    pub rate: Option<f64>,
    /// Dead letters replayed this many times already are skipped.
    pub cap: u32,
    pub operator: String,
    /// Resume this job (its filter must be the same); `None` starts a new one.
    pub resume: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the rate must be a positive number of messages per second")]
    InvalidRate,
    #[error("job {job_id} was started with filter {filter}; resume it with the same filter")]
    FilterMismatch { job_id: Uuid, filter: Value },
    #[error("the audit database failed")]
    Audit(#[from] sqlx::Error),
    #[error("the dead letters could not be read")]
    Read(#[source] anyhow::Error),
    #[error("the replay failed")]
    Replay(#[source] anyhow::Error),
}

/// The message of `e` and of each of its sources, for the audit's note.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A job checked and, unless it is a dry run, recorded as running.
#[derive(Debug)]
pub struct Prepared {
    pub job_id: Uuid,
    pub request: JobRequest,
    filter_json: Value,
}

pub async fn prepare(tools: &Tools, request: JobRequest) -> Result<Prepared, JobError> {
    if request.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(JobError::InvalidRate);
    }
    let job_id = request.resume.unwrap_or_else(Uuid::now_v7);
    let filter_json = serde_json::to_value(&request.filter).unwrap_or_default();
    if let Some(id) = request.resume
        && let Some(previous) = tools.audit.job(id).await?
        && previous.filter != filter_json
    {
        return Err(JobError::FilterMismatch { job_id, filter: previous.filter });
    }
    if !request.dry_run {
        tools.audit.start(job_id, &request.operator, &filter_json, false, request.rate).await?;
    }
    Ok(Prepared { job_id, request, filter_json })
}

/// Runs a prepared job to its end (or until `tracker` says stop) and records how it ended.
/// `progress_bar`: the CLI's bar on stderr.
pub async fn execute(tools: &Tools, producer: &EventProducer, prepared: Prepared, tracker: &Tracker, progress_bar: bool) -> Result<Report, JobError> {
    let Prepared { job_id, request, filter_json } = prepared;
    let audit = &tools.audit;
    let result = async {
        let items = read::scan(&tools.settings.kafka, &tools.codec, &request.filter).await.map_err(JobError::Read)?;
        let options = Options { job_id, operator: request.operator.clone(), dry_run: request.dry_run, rate: request.rate, cap: request.cap, progress: progress_bar };
        replay::run_tracked(items, audit, producer, &tools.settings.kafka.namespace, &options, tracker).await.map_err(JobError::Replay)
    }
    .await;
    tracker.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if !request.dry_run {
                audit.finish(job_id, "failed", 0, None, Some(&chain(&e))).await?;
            }
            return Err(e);
        }
    };
    let matched = report.matched as i64;
    if request.dry_run {
        audit.start(job_id, &request.operator, &filter_json, true, request.rate).await?;
        let counts = (report.sent.len() as i64, report.skipped.len() as i64, 0);
        audit.finish(job_id, "finished", matched, Some(counts), Some("dry run: nothing sent")).await?;
    } else if report.interrupted {
        audit.finish(job_id, "failed", matched, None, Some("interrupted by a shutdown; resume the job to send the rest")).await?;
    } else {
        audit.finish(job_id, "finished", matched, None, None).await?;
    }
    Ok(report)
}
