//! The downstream sweep: read the Ventures change feed from the stored cursor, publish one
//! `LoanStatusChanged` per loan change and one `ConditionChanged` per condition change, then
//! store the new cursor.
//!
//! The cursor is stored only after every event of the page is acknowledged by the broker, so a
//! crash re-reads the page; the re-published events keep their ids (derived from loan and
//! version) and consumers skip them. An expired cursor (410) triggers a full resync: every loan's
//! current state and its conditions' are published, and the feed is resumed from the cursor the
//! listing reported.

use std::{sync::Arc, time::Duration};

use brain_events::{ConditionChanged, LoanStatusChanged, topics};
use brain_runtime::{
    flags::Flags,producer::EventProducer, retry::{Backoff, sleep_or_cancel}, telemetry::metric_name};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    SERVICE,
    client::{Change, Condition, Loan, VenturesClient, VenturesError},
    conditions::{Applications, LookupError, condition_event},
    events::loan_event,
    lease::Lease,
};

pub struct Sweep {
    pub client: Arc<VenturesClient>,
    pub producer: EventProducer,
    pub pool: PgPool,
    pub tenant_id: String,
    pub interval: Duration,
    pub page_size: u32,
    pub backoff: Backoff,
    /// The `ventures` capability: while it is off for this tenant (not by panic mode, which the
    /// breaker probes through), the sweep does not call Ventures.
    pub flags: Flags,
    pub applications: Applications,
}

enum Step {
    /// More pages are waiting.
    More,
    /// Caught up with the feed.
    CaughtUp,
}

impl Sweep {
    fn source(&self) -> String {
        format!("ventures:{}", self.tenant_id)
    }

    /// Waits while the `ventures` capability is switched off for this tenant. False once told to stop.
    async fn wait_switched_on(&self, shutdown: &CancellationToken) -> bool {
        let mut changes = self.flags.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = self.flags.loaded() => {}
        }
        let mut said = false;
        while self.flags.holds("ventures", &self.tenant_id) {
            if !said {
                tracing::info!(tenant_id = %self.tenant_id, "ventures capability switched off: the sweep waits");
                said = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = changes.changed() => {}
            }
        }
        if said {
            tracing::info!(tenant_id = %self.tenant_id, "ventures capability switched on: the sweep resumes");
        }
        true
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let leader = metrics::gauge!(metric_name(SERVICE, "sweep_leader"), "tenant" => self.tenant_id.clone());
        let key = format!("sweep:{}", self.source());
        while let Some(mut lease) = Lease::acquire(&self.pool, &key, self.interval.max(Duration::from_millis(200)), &shutdown).await {
            leader.set(1.0);
            // Another instance may have swept meanwhile: its cursor is the one to go on from.
            let mut cursor = self.load_cursor().await?;
            tracing::info!(lease = lease.key(), cursor = cursor.as_deref().unwrap_or("<start>"), "holding the sweep lease: sweeping the Ventures change feed");
            self.sweep(&mut cursor, &mut lease, &shutdown).await;
            leader.set(0.0);
        }
        self.producer.flush(Duration::from_secs(10));
        tracing::info!("sweep stopped");
        Ok(())
    }

    /// Sweeps while the lease is held and the service runs.
    async fn sweep(&self, cursor: &mut Option<String>, lease: &mut Lease, shutdown: &CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            if !self.wait_switched_on(shutdown).await || !lease.held().await {
                return;
            }
            let span = tracing::info_span!("sweep", tenant_id = %self.tenant_id);
            let outcome = self.step(cursor, shutdown).instrument(span).await;
            let delay = match outcome {
                Ok(Step::More) => {
                    failures = 0;
                    continue;
                }
                Ok(Step::CaughtUp) => {
                    failures = 0;
                    self.interval
                }
                Err(e) => {
                    failures += 1;
                    let delay = self.backoff.delay(failures.min(16), e.retry_after());
                    metrics::counter!(metric_name(SERVICE, "sweep_failures_total"), "kind" => e.kind()).increment(1);
                    tracing::warn!(kind = e.kind(), attempt = failures, delay_ms = delay.as_millis() as u64, error = %e, "sweep failed; backing off");
                    delay
                }
            };
            if !sleep_or_cancel(delay, shutdown).await {
                return;
            }
        }
    }

    async fn step(&self, cursor: &mut Option<String>, shutdown: &CancellationToken) -> Result<Step, SweepError> {
        let page = match self.client.changes(cursor.as_deref(), self.page_size).await {
            Ok(page) => page,
            Err(VenturesError::CursorExpired) => {
                *cursor = Some(self.resync(shutdown).await?);
                return Ok(Step::More);
            }
            Err(e) => return Err(e.into()),
        };
        let mut events = Vec::with_capacity(page.changes.len());
        let mut loans = Vec::with_capacity(page.changes.len());
        let mut conditions = Vec::new();
        for change in &page.changes {
            if change.entity_type == "condition" {
                if let Some(event) = self.condition_change(change).await? {
                    conditions.push(event);
                }
                continue;
            }
            if change.entity_type != "loan" {
                metrics::counter!(metric_name(SERVICE, "changes_total"), "entity_type" => "other", "outcome" => "ignored").increment(1);
                continue;
            }
            let loan = match self.loan_of(change).await {
                Ok(loan) => loan,
                Err(SweepError::Ventures(e)) if skip_reason(&e).is_some() => {
                    // One loan Ventures will never serve (deleted, malformed) must not stop the
                    // feed for every other loan: the change is skipped, counted and logged.
                    let reason = skip_reason(&e).unwrap_or("rejected");
                    metrics::counter!(metric_name(SERVICE, "changes_total"), "entity_type" => "loan", "outcome" => reason).increment(1);
                    tracing::warn!(seq = change.seq, loan_id = %change.loan_id, reason, error = %e, "change skipped: Ventures cannot serve this loan");
                    continue;
                }
                Err(e) => return Err(e),
            };
            events.push(loan_event(&self.tenant_id, &loan, change.seq, change.changed_at.timestamp_millis()));
            loans.push(loan);
        }
        self.applications.remember(&loans.iter().collect::<Vec<_>>()).await.map_err(|e| SweepError::Database(e.to_string()))?;
        self.publish(&events).await?;
        self.publish_conditions(&conditions).await?;
        if let Some(last) = page.changes.last() {
            let lag = (chrono::Utc::now() - last.changed_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!(metric_name(SERVICE, "feed_lag_seconds")).set(lag);
        }
        let last_seq = page.changes.last().map(|c| c.seq);
        self.store_cursor(&page.next_cursor, last_seq, false).await?;
        *cursor = Some(page.next_cursor);
        Ok(if page.has_more { Step::More } else { Step::CaughtUp })
    }

    /// The loan as of `change`: its snapshot when the feed carries one, else the current state.
    async fn loan_of(&self, change: &Change) -> Result<Loan, SweepError> {
        if let Some(data) = &change.data {
            match serde_json::from_value::<Loan>(data.clone()) {
                Ok(loan) => return Ok(loan),
                Err(e) => tracing::warn!(seq = change.seq, error = %e, "change snapshot unreadable; fetching the loan"),
            }
        }
        Ok(self.client.loan(&change.loan_id).await?)
    }

    /// The event of one condition change, or `None` when the change is skipped (its loan or
    /// condition is gone: counted and logged, the feed moves on).
    async fn condition_change(&self, change: &Change) -> Result<Option<(String, ConditionChanged)>, SweepError> {
        let snapshot = change.data.as_ref().and_then(|data| serde_json::from_value::<Condition>(data.clone()).ok());
        let looked_up = async {
            let condition = match snapshot {
                Some(condition) => condition,
                None => {
                    let all = self.client.conditions(&change.loan_id).await?;
                    match all.into_iter().find(|c| c.condition_id == change.entity_id) {
                        Some(condition) => condition,
                        None => return Ok(None),
                    }
                }
            };
            let application = self.applications.of(&self.client, &change.loan_id).await?;
            Ok::<_, LookupError>(Some((application, condition)))
        };
        let outcome = match looked_up.await {
            Ok(Some((application, condition))) => {
                metrics::counter!(metric_name(SERVICE, "changes_total"), "entity_type" => "condition", "outcome" => "published").increment(1);
                return Ok(Some(condition_event(&self.tenant_id, &application, &condition, change.seq, change.changed_at.timestamp_millis())));
            }
            Ok(None) => "skipped_not_found",
            Err(LookupError::Ventures(e)) => match skip_reason(&e) {
                Some(reason) => reason,
                None => return Err(e.into()),
            },
            Err(LookupError::Database(e)) => return Err(SweepError::Database(e.to_string())),
        };
        metrics::counter!(metric_name(SERVICE, "changes_total"), "entity_type" => "condition", "outcome" => outcome).increment(1);
        tracing::warn!(seq = change.seq, loan_id = %change.loan_id, condition_id = %change.entity_id, reason = outcome, "condition change skipped: Ventures cannot serve it");
        Ok(None)
    }

    async fn publish_conditions(&self, events: &[(String, ConditionChanged)]) -> Result<(), SweepError> {
        if events.is_empty() {
            return Ok(());
        }
        self.producer
            .send_all::<ConditionChanged, _>(topics::CONDITION_CHANGED, events)
            .await
            .map_err(|e| SweepError::Publish(e.to_string()))?;
        metrics::counter!(metric_name(SERVICE, "events_published_total"), "topic" => topics::CONDITION_CHANGED).increment(events.len() as u64);
        Ok(())
    }

    async fn publish(&self, events: &[(String, LoanStatusChanged)]) -> Result<(), SweepError> {
        if events.is_empty() {
            return Ok(());
        }
        self.producer
            .send_all::<LoanStatusChanged, _>(topics::LOAN_STATUS_CHANGED, events)
            .await
            .map_err(|e| SweepError::Publish(e.to_string()))?;
        metrics::counter!(metric_name(SERVICE, "events_published_total"), "topic" => topics::LOAN_STATUS_CHANGED).increment(events.len() as u64);
        Ok(())
    }

    /// Publishes every loan's current state and returns the feed cursor to continue from.
    async fn resync(&self, shutdown: &CancellationToken) -> Result<String, SweepError> {
        tracing::warn!("change-feed cursor expired: full resync of every loan");
        metrics::counter!(metric_name(SERVICE, "resyncs_total")).increment(1);
        let (mut page_cursor, mut feed_cursor, mut total) = (None::<String>, None::<String>, 0usize);
        loop {
            if shutdown.is_cancelled() {
                return Err(SweepError::Cancelled);
            }
            let page = self.client.loans(page_cursor.as_deref(), self.page_size).await?;
            // The feed position of the first page: later changes are re-read from the feed.
            feed_cursor.get_or_insert(page.feed_cursor.clone());
            let now = chrono::Utc::now().timestamp_millis();
            let events: Vec<_> = page.loans.iter().map(|loan| loan_event(&self.tenant_id, loan, 0, now)).collect();
            self.applications.remember(&page.loans.iter().collect::<Vec<_>>()).await.map_err(|e| SweepError::Database(e.to_string()))?;
            self.publish(&events).await?;
            let mut conditions = Vec::new();
            for loan in &page.loans {
                let application = crate::events::application_id(loan);
                for condition in self.client.conditions(&loan.loan_id).await? {
                    conditions.push(condition_event(&self.tenant_id, &application, &condition, 0, now));
                }
            }
            self.publish_conditions(&conditions).await?;
            total += events.len();
            if !page.has_more {
                break;
            }
            page_cursor = page.next_cursor;
        }
        let feed_cursor = feed_cursor.expect("at least one page was read");
        self.store_cursor(&feed_cursor, None, true).await?;
        tracing::info!(loans = total, "full resync done");
        Ok(feed_cursor)
    }

    async fn load_cursor(&self) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>("SELECT cursor FROM sweep_state WHERE source = $1")
            .bind(self.source())
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    async fn store_cursor(&self, cursor: &str, last_seq: Option<i64>, resync: bool) -> Result<(), SweepError> {
        sqlx::query(
            "INSERT INTO sweep_state (source, cursor, last_seq, resyncs) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source) DO UPDATE SET cursor = $2, last_seq = COALESCE($3, sweep_state.last_seq),
                 resyncs = sweep_state.resyncs + $4, updated_at = now()
             -- Forward only: a deposed sweeper's late write cannot set the cursor back.
             WHERE $3 IS NULL OR sweep_state.last_seq IS NULL OR $3 >= sweep_state.last_seq",
        )
        .bind(self.source())
        .bind(cursor)
        .bind(last_seq)
        .bind(i64::from(resync))
        .execute(&self.pool)
        .await
        .map_err(|e| SweepError::Database(e.to_string()))?;
        Ok(())
    }
}

/// Why a change whose loan Ventures refuses is skipped, or `None` when the refusal may pass
/// (rate limits, outages, and our own credentials being refused are retried instead).
fn skip_reason(error: &VenturesError) -> Option<&'static str> {
    match error {
        VenturesError::Rejected { status: 404 | 410, .. } => Some("skipped_not_found"),
        VenturesError::Rejected { status: 401 | 403 | 408 | 409 | 429, .. } => None,
        VenturesError::Rejected { status: 400..=499, .. } => Some("skipped_rejected"),
        VenturesError::Decode(_) => Some("skipped_unreadable"),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Ventures(#[from] VenturesError),
    #[error("publishing failed: {0}")]
    Publish(String),
    #[error("the database failed: {0}")]
    Database(String),
    #[error("cancelled")]
    Cancelled,
}

impl SweepError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Ventures(e) => e.kind(),
            Self::Publish(_) => "publish",
            Self::Database(_) => "database",
            Self::Cancelled => "cancelled",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Ventures(e) => e.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> VenturesError {
        VenturesError::Rejected { status, code: "X".into(), message: String::new() }
    }

    #[test]
    fn a_loan_ventures_will_never_serve_is_skipped_and_the_rest_is_retried() {
        assert_eq!(skip_reason(&rejected(404)), Some("skipped_not_found"));
        assert_eq!(skip_reason(&rejected(422)), Some("skipped_rejected"));
        assert_eq!(skip_reason(&VenturesError::Decode("x".into())), Some("skipped_unreadable"));
        for retried in [rejected(401), rejected(403), rejected(429), VenturesError::Network("x".into())] {
            assert_eq!(skip_reason(&retried), None, "{retried}");
        }
        assert_eq!(skip_reason(&VenturesError::Unavailable { status: 503, retry_after: None }), None);
    }
}
