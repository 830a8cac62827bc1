//! Replaying dead letters: each chosen one is re-published to its original topic with its
//! original key, value bytes and headers, plus headers that mark the replay. Consumers skip what
//! they already applied (processed-event records, version checks), so a replay is a harmless
//! duplicate by construction.
//!
//! A job is resumable: every message the broker acknowledged is recorded as sent before the next
//! chunk goes out, and resuming the job (same id) skips them. Skipped, with the reason: dead
//! letters another job already re-published (`already_replayed`), parked or discarded ones, those
//! replayed `cap` times already (`replay_cap`: a message that keeps failing is not replayed in a
//! loop), and those without a value.

use std::{
    collections::HashSet,
    io::Write as _,
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use brain_events::topics::Namespace;
use brain_runtime::producer::{EventProducer, Outgoing};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    audit::{Audit, Outcome},
    read::Item,
};

/// How many times the message was replayed (incremented on every replay).
pub const REPLAY_COUNT: &str = "brain-replay-count";
pub const REPLAY_JOB: &str = "brain-replay-job";
pub const REPLAY_OPERATOR: &str = "brain-replay-operator";
pub const REPLAYED_FROM: &str = "brain-replayed-from";

/// Messages per chunk: sent together, then recorded.
const CHUNK: usize = 500;

#[derive(Debug, Clone)]
pub struct Options {
    pub job_id: Uuid,
    pub operator: String,
    pub dry_run: bool,
    /// Messages per second at most.
    pub rate: Option<f64>,
    /// A dead letter replayed this many times already is not replayed again.
    pub cap: u32,
    /// Print a progress bar with an ETA on stderr.
    pub progress: bool,
}

/// What a job did (or, dry, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub job_id: Uuid,
    pub matched: usize,
    /// Sent (or, in a dry run, would be sent).
    pub sent: Vec<String>,
    pub skipped: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
    /// Stopped between two chunks (shutdown): resume the job to send the rest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// How far a job is, for whoever watches it (the HTTP API), and a way to stop it between two
/// chunks (what was sent is recorded, so the job resumes where it stopped).
#[derive(Debug, Default)]
pub struct Tracker {
    /// 0 scanning, 1 sending, 2 done.
    stage: AtomicU8,
    total: AtomicU64,
    done: AtomicU64,
    stop: CancellationToken,
}

impl Tracker {
    pub fn new(stop: CancellationToken) -> Self {
        Self { stop, ..Self::default() }
    }

    pub fn snapshot(&self) -> dlq_api::JobProgress {
        let stage = match self.stage.load(Ordering::Acquire) {
            0 => "scanning",
            1 => "sending",
            _ => "done",
        };
        dlq_api::JobProgress { stage: stage.into(), total: self.total.load(Ordering::Acquire), done: self.done.load(Ordering::Acquire) }
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub fn finish(&self) {
        self.stage.store(2, Ordering::Release);
    }
}

pub async fn run(items: Vec<Item>, audit: &Audit, producer: &EventProducer, namespace: &Namespace, options: &Options) -> anyhow::Result<Report> {
    run_tracked(items, audit, producer, namespace, options, &Tracker::default()).await
}

/// [`run`], reporting progress to `tracker` and stopping between chunks when it says so.
pub async fn run_tracked(items: Vec<Item>, audit: &Audit, producer: &EventProducer, namespace: &Namespace, options: &Options, tracker: &Tracker) -> anyhow::Result<Report> {
    let started = Instant::now();
    let ids: Vec<String> = items.iter().map(|i| i.envelope.dead_letter_id.clone()).collect();
    let resumed: HashSet<String> = audit.sent_by(options.job_id).await?;
    let before = audit.sent_before(&ids).await?;
    let set_aside = audit.dispositions().await?;
    let mut report = Report { job_id: options.job_id, matched: items.len(), ..Report::default() };

    let mut to_send = Vec::new();
    let mut skipped_now = Vec::new();
    for item in items {
        let id = item.envelope.dead_letter_id.clone();
        let reason = if resumed.contains(&id) {
            None // sent by this job before it was interrupted: counted, not sent again
        } else if let Some(job) = before.get(&id) {
            Some(format!("already_replayed by job {job}"))
        } else if let Some((action, why)) = set_aside.get(&id) {
            Some(format!("{action}: {why}"))
        } else if item.replays() >= options.cap {
            Some(format!("replay_cap: replayed {} times already", item.replays()))
        } else if item.envelope.value.is_none() {
            Some("no_value".to_string())
        } else {
            to_send.push(item);
            continue;
        };
        match reason {
            Some(reason) => skipped_now.push((id, reason)),
            None => report.sent.push(id),
        }
    }
    report.skipped = skipped_now.clone();
    if options.dry_run {
        report.sent.extend(to_send.iter().map(|i| i.envelope.dead_letter_id.clone()));
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    audit.record(options.job_id, &skipped_now.iter().map(|(id, r)| (id.clone(), Outcome::Skipped, Some(r.clone()))).collect::<Vec<_>>()).await?;

    let total = to_send.len();
    tracker.total.store(total as u64, Ordering::Release);
    tracker.stage.store(1, Ordering::Release);
    let mut progress = Progress::new(total, options.progress);
    let mut done = 0usize;
    for chunk in to_send.chunks(CHUNK) {
        if tracker.stopping() {
            report.interrupted = true;
            break;
        }
        if let Some(rate) = options.rate {
            // Keep the average at or below `rate`, chunk by chunk.
            let due = Duration::try_from_secs_f64((done + chunk.len()) as f64 / rate).unwrap_or(Duration::MAX);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::select! {
                    _ = tokio::time::sleep(due - elapsed) => {}
                    _ = tracker.stop.cancelled() => {
                        report.interrupted = true;
                        break;
                    }
                }
            }
        }
        let sends = chunk.iter().map(|item| send(producer, namespace, item, options));
        let results = join_all(sends).await;
        let mut recorded = Vec::with_capacity(chunk.len());
        let mut handled = Vec::with_capacity(chunk.len());
        for (item, result) in chunk.iter().zip(results) {
            let id = item.envelope.dead_letter_id.clone();
            match result {
                Ok(()) => {
                    recorded.push((id.clone(), Outcome::Sent, None));
                    let at = chrono::DateTime::from_timestamp_millis(item.envelope.dead_lettered_at).unwrap_or_default();
                    handled.push((id.clone(), item.topic.clone(), at, "replayed"));
                    report.sent.push(id);
                }
                Err(e) => {
                    recorded.push((id.clone(), Outcome::Failed, Some(e.clone())));
                    report.failed.push((id, e));
                }
            }
        }
        audit.record(options.job_id, &recorded).await?;
        audit.mark_handled(&handled).await?;
        done += chunk.len();
        tracker.done.store(done as u64, Ordering::Release);
        progress.show(done);
    }
    progress.finish();
    tracker.finish();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn send(producer: &EventProducer, namespace: &Namespace, item: &Item, options: &Options) -> Result<(), String> {
    let e = &item.envelope;
    let prefix = namespace.to_string();
    let topic = e.source_topic.strip_prefix(prefix.as_str()).unwrap_or(&e.source_topic);
    let mut headers: Vec<(String, Vec<u8>)> = e
        .headers
        .iter()
        .filter(|h| ![REPLAY_COUNT, REPLAY_JOB, REPLAY_OPERATOR, REPLAYED_FROM].contains(&h.key.as_str()))
        .filter_map(|h| h.value.clone().map(|v| (h.key.clone(), v)))
        .collect();
    headers.push((REPLAY_COUNT.into(), (item.replays() + 1).to_string().into_bytes()));
    headers.push((REPLAY_JOB.into(), options.job_id.to_string().into_bytes()));
    headers.push((REPLAY_OPERATOR.into(), options.operator.clone().into_bytes()));
    headers.push((REPLAYED_FROM.into(), e.dead_letter_id.clone().into_bytes()));
    let payload = e.value.as_deref().unwrap_or_default();
    producer.send_raw(Outgoing { topic, key: e.key.as_deref(), payload, headers }).await.map_err(|e| e.to_string())
}

/// `[#########.........] 4,500/10,000 45% · 5,210/s · ETA 1 s` on stderr, at most 4 times a second.
struct Progress {
    total: usize,
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: usize, enabled: bool) -> Self {
        Self { total, enabled: enabled && total > 0, started: Instant::now(), last: None }
    }

    fn show(&mut self, done: usize) {
        if !self.enabled || self.last.is_some_and(|l| l.elapsed() < Duration::from_millis(250) && done < self.total) {
            return;
        }
        self.last = Some(Instant::now());
        let fraction = done as f64 / self.total as f64;
        let width = 30;
        let filled = (fraction * width as f64).round() as usize;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let eta = (self.total - done) as f64 / rate.max(1e-3);
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
        eprint!("\r[{bar}] {done}/{} {:>3.0}% · {rate:.0}/s · ETA {eta:.0} s   ", self.total, fraction * 100.0);
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
