//! The HTTP side of notifications: the validation handshake (`POST {url}?validationToken=...`,
//! which must be answered 200 `text/plain` with the decoded token within the validation timeout)
//! and notification POSTs with their retries. Each POST becomes one log [`Record`].
//! [`run`] takes queued notifications and delivers up to 8 at once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    config::NotificationConfig,
    notifier::{Job, Kind, Notifier, Outcome, Queue, Record},
    state::SharedState,
    time,
};

const CONCURRENT_DELIVERIES: usize = 8;

const MAX_ANSWER_CHARS: usize = 1000;

pub struct Plan {
    pub dropped: bool,
    pub repeated: bool,
    pub settings: NotificationConfig,
}

fn record(kind: Kind, url: &str) -> Record {
    Record {
        seq: 0,
        at: Utc::now(),
        kind,
        notification_id: None,
        subscription_id: None,
        url: url.to_owned(),
        change_type: None,
        resource: None,
        event_id: None,
        attempt: 1,
        repeat: false,
        outcome: Outcome::Dropped,
        status: None,
        latency_ms: None,
        answer: None,
        detail: None,
        body: None,
    }
}

/// What one POST got back.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// POSTs once and reads the answer; `Err` says whether it timed out, and why it failed.
async fn post(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> (Result<Answer, (Outcome, String)>, u64) {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await?;
        Ok::<_, reqwest::Error>(Answer {
            status,
            content_type,
            body,
        })
    })
    .await;
    let latency = started.elapsed().as_millis() as u64;
    let result = match result {
        Err(_) => Err((
            Outcome::TimedOut,
            format!("no answer within {} ms", timeout.as_millis()),
        )),
        Ok(Err(error)) if error.is_timeout() => Err((Outcome::TimedOut, error.to_string())),
        Ok(Err(error)) => Err((Outcome::Unreachable, error.to_string())),
        Ok(Ok(answer)) => Ok(answer),
    };
    (result, latency)
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_ANSWER_CHARS).collect()
}

/// The validation handshake; the record's outcome is `Delivered` when it passed.
pub async fn validate(http: &reqwest::Client, url: &str, timeout: Duration) -> Record {
    let mut rec = record(Kind::Validation, url);
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let mut target = match reqwest::Url::parse(url) {
        Ok(target) => target,
        Err(error) => {
            (rec.outcome, rec.detail) = (Outcome::Unreachable, Some(error.to_string()));
            return rec;
        }
    };
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let request = http
        .post(target)
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body("");
    let (result, latency) = post(request, timeout).await;
    rec.latency_ms = Some(latency);
    match result {
        Err((outcome, detail)) => (rec.outcome, rec.detail) = (outcome, Some(detail)),
        Ok(answer) => {
            rec.status = Some(answer.status);
            rec.answer = Some(clip(&answer.body));
            let problem = if answer.status != 200 {
                Some(format!("answered {} instead of 200", answer.status))
            } else if !answer.content_type.starts_with("text/plain") {
                Some(format!(
                    "answered Content-Type {:?} instead of text/plain",
                    answer.content_type
                ))
            } else if answer.body != token {
                Some("the answer is not the decoded validationToken".to_owned())
            } else {
                None
            };
            rec.outcome = if problem.is_some() {
                Outcome::Refused
            } else {
                Outcome::Delivered
            };
            rec.detail = problem;
        }
    }
    rec
}

/// Sends one notification (twice when repeated), each with retries; returns per sending
/// whether it was answered 2xx. A dropped notification is only logged.
pub async fn deliver(notifier: &Notifier, job: &Job, body: Value, plan: Plan) -> Vec<bool> {
    let url = &job.subscription.notification_url;
    let mut base = record(Kind::Notification, url);
    base.notification_id = Some(uuid::Uuid::new_v4().to_string());
    base.subscription_id = Some(job.subscription.id.clone());
    base.change_type = Some(job.change);
    base.resource = body["value"][0]["resource"].as_str().map(str::to_owned);
    base.event_id = Some(job.event_id.clone());
    base.body = Some(body.clone());
    if plan.dropped {
        notifier.record(base);
        return Vec::new();
    }
    let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
    let settings = &plan.settings;
    let mut results = Vec::new();
    for repeat in [false, true]
        .into_iter()
        .take(1 + usize::from(plan.repeated))
    {
        let mut delivered = false;
        let mut backoff = settings.retry_delay;
        for attempt in 1..=settings.max_attempts {
            let request = notifier
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            let mut rec = base.clone();
            (rec.at, rec.attempt, rec.repeat) = (Utc::now(), attempt, repeat);
            let (result, latency) = post(request, settings.timeout).await;
            rec.latency_ms = Some(latency);
            match result {
                Ok(answer) => {
                    delivered = (200..300).contains(&answer.status);
                    rec.status = Some(answer.status);
                    rec.answer = Some(clip(&answer.body));
                    rec.outcome = if delivered {
                        Outcome::Delivered
                    } else {
                        Outcome::Refused
                    };
                }
                Err((outcome, detail)) => (rec.outcome, rec.detail) = (outcome, Some(detail)),
            }
            tracing::debug!(attempt, outcome = ?rec.outcome, "notification sent");
            notifier.record(rec);
            if delivered {
                break;
            }
            if attempt < settings.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
        results.push(delivered);
    }
    results
}

/// The notification body Graph sends for one change.
pub fn body(job: &Job, tenant_id: &str) -> Value {
    let resource = format!("Users/{}/Events/{}", job.user_id, job.event_id);
    let s = &job.subscription;
    json!({"value": [{
        "subscriptionId": s.id,
        "subscriptionExpirationDateTime": time::format_instant(s.expiration_date_time),
        "changeType": job.change,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": job.etag,
            "id": job.event_id,
        },
        "clientState": s.client_state,
        "tenantId": tenant_id,
    }]})
}

/// Delivers queued notifications until `shutdown`; in-flight ones are abandoned then.
pub async fn run(state: SharedState, Queue(mut rx): Queue, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let job = tokio::select! {
            () = shutdown.cancelled() => break,
            job = rx.recv() => match job { Some(job) => job, None => break },
        };
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
        };
        let (dropped, repeated, settings) = state.notifier.plan();
        let state = state.clone();
        tasks.spawn(async move {
            let notifier = &state.notifier;
            let body = body(&job, &state.config.tenant_id);
            let plan = Plan {
                dropped,
                repeated,
                settings,
            };
            let results = deliver(notifier, &job, body, plan).await;
            notifier.finished(&results);
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}
