//! SLA timers of tasks (flow 4): how long a task may stay in a state (24 h to review an upload,
//! 72 h for the borrower to upload once asked), stored in PostgreSQL, never in memory.
//!
//! - **Scheduled** in the transaction that moves a task into a state with an SLA, due at the
//!   time it entered the state plus the SLA; **cancelled** in the one that moves it out. A task
//!   that moves on in time never breaches.
//! - **Fired** by the timer loop of any instance: due timers are claimed with
//!   `FOR UPDATE SKIP LOCKED`; for each, a `TaskSlaBreached` is published (its id derived from the
//!   timer, so a firing repeated after a crash is the same event), the task's inbox entry in
//!   Firestore is marked, an `event_log` row is written (`task_sla`, once per timer), and the
//!   timer is marked fired, all before the transaction commits. A restart while a timer waits
//!   changes nothing: the row is still there and fires when due.

use std::{sync::Arc, time::Duration};

use brain_events::{TaskSlaBreached, topics};
use brain_runtime::{
    db,
    producer::EventProducer,
    retry::sleep_or_cancel,
    settings::{Env, SettingsError},
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    SERVICE,
    firestore::{self, Projections},
};

/// Namespace of timer ids, derived from (tenant, task, state, time entered).
const TIMER_NAMESPACE: Uuid = Uuid::from_u128(0x9b2e_5d71_04a8_4c3f_8e16_a7d0_3f59_c2b4);
/// Timers fired per round.
const BATCH: i64 = 100;

/// `SLA_*`: how long a task may stay in each state (0: no SLA), and how often due timers are looked for.
#[derive(Debug, Clone, Copy)]
pub struct SlaConfig {
    pub open: Duration,
    pub awaiting_upload: Duration,
    pub pending_review: Duration,
    pub tick: Duration,
}

impl SlaConfig {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        const WEEK_MS: u64 = 7 * 24 * 3_600_000;
        Ok(Self {
            open: env.millis_in("SLA_OPEN", 0, 0..=10 * WEEK_MS)?,
            awaiting_upload: env.millis_in("SLA_AWAITING_UPLOAD", 72 * 3_600_000, 0..=10 * WEEK_MS)?,
            pending_review: env.millis_in("SLA_PENDING_REVIEW", 24 * 3_600_000, 0..=10 * WEEK_MS)?,
            tick: env.millis_in("SLA_TICK", 1_000, 10..=60_000)?,
        })
    }

    /// The SLA of `state`, if it has one.
    pub fn of(&self, state: &str) -> Option<Duration> {
        let d = match state {
            "open" => self.open,
            "awaiting_upload" => self.awaiting_upload,
            "pending_review" => self.pending_review,
            _ => Duration::ZERO,
        };
        (!d.is_zero()).then_some(d)
    }
}

/// In the task's transaction: its state changed from `from` to `to` at `since`; the old state's
/// timer is cancelled and the new state's (if it has an SLA) scheduled.
pub async fn on_transition(
    tx: &mut Transaction<'_, Postgres>,
    config: &SlaConfig,
    tenant_id: &str,
    application_id: &str,
    task_id: &str,
    to: &str,
    since: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE task_timers SET cancelled_at = now() WHERE tenant_id = $1 AND task_id = $2 AND fired_at IS NULL AND cancelled_at IS NULL AND state <> $3")
        .bind(tenant_id)
        .bind(task_id)
        .bind(to)
        .execute(&mut **tx)
        .await?;
    let Some(sla) = config.of(to) else { return Ok(()) };
    let due = since + chrono::Duration::from_std(sla).unwrap_or(chrono::Duration::MAX);
    let timer_id = Uuid::new_v5(&TIMER_NAMESPACE, format!("{tenant_id}\n{task_id}\n{to}\n{}", since.timestamp_micros()).as_bytes());
    sqlx::query(
        "INSERT INTO task_timers (timer_id, tenant_id, task_id, application_id, state, state_since, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (timer_id) DO NOTHING",
    )
    .bind(timer_id)
    .bind(tenant_id)
    .bind(task_id)
    .bind(application_id)
    .bind(to)
    .bind(since)
    .bind(due)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub struct Timers {
    pub pool: PgPool,
    pub projections: Projections,
    pub producer: EventProducer,
    pub firestore_deadline: Duration,
    pub config: SlaConfig,
}

#[derive(sqlx::FromRow)]
struct Due {
    timer_id: Uuid,
    tenant_id: String,
    task_id: String,
    application_id: String,
    state: String,
    state_since: DateTime<Utc>,
    due_at: DateTime<Utc>,
}

impl Timers {
    /// Fires due timers until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let pause = match self.fire_due().await {
                Ok(n) if n as i64 == BATCH => Duration::ZERO,
                Ok(_) => {
                    failures = 0;
                    self.config.tick
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "SLA timers could not be fired; trying again");
                    self.config.tick * failures.min(30)
                }
            };
            if !sleep_or_cancel(pause, &stop).await {
                return;
            }
        }
    }

    /// One round: the due timers, fired in one transaction. Returns how many.
    pub async fn fire_due(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<Due> = sqlx::query_as(
            "SELECT timer_id, tenant_id, task_id, application_id, state, state_since, due_at FROM task_timers
             WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // Each task's lock, without waiting (a task being moved holds it and may be cancelling
        // this very timer): a task that is busy is left for the next round.
        let mut free = Vec::with_capacity(due.len());
        for d in due {
            if db::try_lock_entity(&mut tx, &format!("task:{}:{}", d.tenant_id, d.task_id)).await? {
                free.push(d);
            }
        }
        let due = free;
        if due.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let events: Vec<(String, TaskSlaBreached)> = due.iter().map(|d| (d.application_id.clone(), breach_event(d, now))).collect();
        self.producer.send_all::<TaskSlaBreached, _>(topics::TASK_SLA_BREACHED, &events).await?;
        let mut writes = Vec::with_capacity(due.len());
        for (d, (_, event)) in due.iter().zip(&events) {
            sqlx::query(
                "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at, correlation_id, producer, change)
                 VALUES ($1, 'task.sla_breached', $2, 'task_sla', $3, 1, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(Uuid::parse_str(&event.event_id)?)
            .bind(&d.tenant_id)
            .bind(d.timer_id.to_string())
            .bind(now)
            .bind(&event.correlation_id)
            .bind(SERVICE)
            .bind(json!({ "applicationId": d.application_id, "taskId": d.task_id, "state": d.state, "dueAt": d.due_at }))
            .execute(&mut *tx)
            .await?;
            let collection = format!("{}/{}/tasks", crate::handler::COLLECTION, d.application_id);
            let breach = || vec![("slaBreachedAt", firestore::timestamp_millis(now.timestamp_millis())), ("slaDueAt", firestore::timestamp_millis(d.due_at.timestamp_millis()))];
            writes.push(self.projections.merge_write(&collection, &d.task_id, breach(), None));
            // The assignee's inbox shows it too (under the task's lock: no reassignment meanwhile).
            let assignee: Option<String> = sqlx::query_scalar("SELECT assignee FROM tasks WHERE tenant_id = $1 AND task_id = $2 AND state = $3")
                .bind(&d.tenant_id)
                .bind(&d.task_id)
                .bind(&d.state)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
            if let Some(staff) = assignee {
                writes.push(self.projections.merge_write(&crate::inbox::collection(&staff), &d.task_id, breach(), None));
            }
        }
        self.projections.commit(writes, self.firestore_deadline).await?;
        let ids: Vec<Uuid> = due.iter().map(|d| d.timer_id).collect();
        sqlx::query("UPDATE task_timers SET fired_at = $2 WHERE timer_id = ANY($1)").bind(&ids).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
        for d in &due {
            metrics::counter!(metric_name(SERVICE, "sla_breaches_total"), "state" => state_label(&d.state)).increment(1);
            tracing::info!(task_id = %d.task_id, application_id = %d.application_id, state = %d.state, due_at = %d.due_at, "task SLA breached");
        }
        Ok(due.len())
    }
}

fn breach_event(d: &Due, now: DateTime<Utc>) -> TaskSlaBreached {
    let event_id = Uuid::new_v5(&TIMER_NAMESPACE, d.timer_id.as_bytes()).to_string();
    TaskSlaBreached {
        event_id: event_id.clone(),
        occurred_at: now.timestamp_millis(),
        tenant_id: d.tenant_id.clone(),
        correlation_id: event_id,
        causation_id: None,
        producer: SERVICE.to_string(),
        application_id: d.application_id.clone(),
        task_id: d.task_id.clone(),
        timer_id: d.timer_id.to_string(),
        state: d.state.clone(),
        state_since: d.state_since.timestamp_millis(),
        due_at: d.due_at.timestamp_millis(),
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "open" => "open",
        "awaiting_upload" => "awaiting_upload",
        _ => "pending_review",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_states_with_an_sla_get_a_timer() {
        let config = SlaConfig { open: Duration::ZERO, awaiting_upload: Duration::from_secs(3), pending_review: Duration::from_secs(5), tick: Duration::from_secs(1) };
        assert_eq!(config.of("open"), None);
        assert_eq!(config.of("pending_review"), Some(Duration::from_secs(5)));
        assert_eq!(config.of("completed"), None);
    }
}
