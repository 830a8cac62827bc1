//! Upstream: status-change commands (flow 2) applied in Ventures, exactly once.
//!
//! For each `StatusChangeRequested`:
//! 1. the version to send is fixed the first time the command is seen (`status_commands`): the
//!    console's `app_version`, or with `force` the loan's version read from Ventures then;
//! 2. `PUT /loans/{loanId}/status` with `expectedVersion` and `Idempotency-Key` = the command id,
//!    so a redelivered command (a crash, a rebalance, an operator's replay) sends the very same
//!    request and Ventures answers it from its idempotency store without changing the loan again;
//!    Ventures checks the version again here, where the change is applied;
//! 3. the outcome is published: `applied` (with the loan's new state on
//!    `ventures.loan.status-changed.v1`, under the id the change feed's sweep gives the same
//!    version, so projection-writer takes whichever comes first) or `rejected` with the reason:
//!    409 `stale_version`, 422 `transition_refused`, 404 `loan_not_found`.
//!
//! Ventures unreachable, 429 and 5xx are retried (then dead-lettered); our own credentials refused
//! waits without limit; a command for a tenant this instance does not serve is dead-lettered with
//! `tenant_not_served`, never dropped.

use std::sync::Arc;

use brain_events::{CommandOutcome, StatusChangeRequested, StatusChangeResolved, topics};
use brain_runtime::{
    flags::Gate,
    breaker::Breaker,
    consumer::{Applied, ErrorClass, Handler, HandlerError, Outcome, Source},
    db,
    producer::EventProducer,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    client::{VenturesClient, VenturesError},
    events::{PRODUCER, loan_event},
};

/// Namespace of the outcome ids derived from command ids.
const OUTCOME_NAMESPACE: Uuid = Uuid::from_u128(0x2d4c_91a0_7b3e_4f15_8c62_0e9a_5f17_b3d4);

pub struct StatusCommandHandler {
    pub client: Arc<VenturesClient>,
    pub producer: EventProducer,
    pub pool: PgPool,
    pub tenant_id: String,
    /// The `ventures` capability flags.
    pub gate: Gate,
}

/// A refusal by Ventures that ends the command.
struct Rejection {
    code: &'static str,
    message: String,
}

impl Handler for StatusCommandHandler {
    type Event = StatusChangeRequested;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &StatusChangeRequested) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the Ventures breaker is open, commands wait here (their partitions stop).
    async fn admit(&self, _source: &Source<'_>) {
        self.client.breaker().ready().await;
    }

    async fn handle(&self, _source: Source<'_>, command: StatusChangeRequested) -> Outcome {
        let command_id = Uuid::parse_str(&command.event_id).map_err(|_| HandlerError::permanent("validation", format!("command id {:?} is not a UUID", command.event_id)))?;
        tracing::Span::current().record("correlation_id", command.correlation_id.as_str());
        if command.tenant_id != self.tenant_id {
            return Err(HandlerError::permanent("tenant_not_served", format!("this ventures-sync serves tenant {:?}, not {:?}", self.tenant_id, command.tenant_id)));
        }
        if command.loan_id.is_empty() || command.to_status.is_empty() {
            return Err(HandlerError::permanent("validation", "a command needs a loan id and a status"));
        }
        let expected_version = self.expected_version(&command, command_id).await?;
        let resolved = match self.client.set_status(&command.loan_id, &command.to_status, expected_version, &command.event_id).await {
            Ok(loan) => {
                let (key, event) = loan_event(&self.tenant_id, &loan, 0, now_ms());
                self.producer.send(topics::LOAN_STATUS_CHANGED, &key, &event).await.map_err(produce_error)?;
                tracing::info!(command_id = %command_id, loan_id = %command.loan_id, to = %command.to_status, version = loan.version, "status change applied in Ventures");
                outcome(&command, CommandOutcome::Applied, Some(loan.version), None)
            }
            Err(e) => match rejection(&e) {
                Some(rejection) => {
                    tracing::info!(command_id = %command_id, loan_id = %command.loan_id, code = rejection.code, "Ventures refused the status change");
                    outcome(&command, CommandOutcome::Rejected, None, Some(rejection))
                }
                None => return Err(failure_with(self.client.breaker())(e)),
            },
        };
        self.producer.send(topics::STATUS_CHANGE_RESOLVED, &command.application_id, &resolved).await.map_err(produce_error)?;
        Ok(Applied::Processed)
    }
}

impl StatusCommandHandler {
    /// The version this command is sent at: fixed the first time it is seen.
    async fn expected_version(&self, command: &StatusChangeRequested, command_id: Uuid) -> Result<i64, HandlerError> {
        let known: Option<i64> = sqlx::query_scalar("SELECT expected_version FROM status_commands WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db::classify)?;
        if let Some(version) = known {
            return Ok(version);
        }
        let version = if command.force {
            self.client.loan(&command.loan_id).await.map_err(failure_with(self.client.breaker()))?.version
        } else {
            command.app_version
        };
        // Two deliveries racing (a rebalance) agree on the first one stored.
        sqlx::query_scalar(
            "INSERT INTO status_commands (command_id, application_id, loan_id, expected_version) VALUES ($1, $2, $3, $4)
             ON CONFLICT (command_id) DO UPDATE SET command_id = EXCLUDED.command_id RETURNING expected_version",
        )
        .bind(command_id)
        .bind(&command.application_id)
        .bind(&command.loan_id)
        .bind(version)
        .fetch_one(&self.pool)
        .await
        .map_err(db::classify)
    }
}

fn outcome(command: &StatusChangeRequested, outcome: CommandOutcome, version: Option<i64>, rejection: Option<Rejection>) -> StatusChangeResolved {
    StatusChangeResolved {
        event_id: Uuid::new_v5(&OUTCOME_NAMESPACE, command.event_id.as_bytes()).to_string(),
        occurred_at: now_ms(),
        tenant_id: command.tenant_id.clone(),
        correlation_id: command.correlation_id.clone(),
        causation_id: Some(command.event_id.clone()),
        producer: PRODUCER.to_string(),
        command_id: command.event_id.clone(),
        application_id: command.application_id.clone(),
        loan_id: command.loan_id.clone(),
        outcome,
        to_status: command.to_status.clone(),
        version,
        reason_code: rejection.as_ref().map(|r| r.code.to_string()),
        reason: rejection.map(|r| r.message),
    }
}

/// Ventures' answers that end a command as rejected.
fn rejection(e: &VenturesError) -> Option<Rejection> {
    let VenturesError::Rejected { status, message, .. } = e else { return None };
    let code = match status {
        409 => "stale_version",
        422 => "transition_refused",
        404 => "loan_not_found",
        _ => return None,
    };
    Some(Rejection { code, message: message.clone() })
}

/// Everything else: transient (retried, then dead-lettered), our credentials refused
/// (unavailable: waits), or a request Ventures cannot take (dead-lettered).
pub(crate) fn failure(e: VenturesError) -> HandlerError {
    match &e {
        VenturesError::Rejected { status: 401 | 403, .. } => HandlerError::unavailable("ventures_credentials", e.to_string()),
        _ if e.is_transient() => HandlerError::transient(e.kind(), e.to_string()).with_retry_after(e.retry_after()),
        _ => HandlerError::permanent(e.kind(), e.to_string()),
    }
}

/// `failure`, except that while the Ventures breaker is open a transient failure waits
/// (`Unavailable`, retried without limit) instead of using up the message's attempts: an outage
/// never dead-letters a command.
pub(crate) fn failure_with(breaker: &Breaker) -> impl Fn(VenturesError) -> HandlerError + '_ {
    move |e| {
        let error = failure(e);
        if error.class == ErrorClass::Transient && breaker.is_open() { HandlerError::unavailable("ventures_breaker_open", error.message) } else { error }
    }
}

fn produce_error(e: brain_runtime::producer::ProduceError) -> HandlerError {
    if e.is_transient() { HandlerError::unavailable("kafka", e.to_string()) } else { HandlerError::permanent("encode", e.to_string()) }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> VenturesError {
        VenturesError::Rejected { status, code: "X".into(), message: "m".into() }
    }

    #[test]
    fn ventures_refusals_end_the_command_and_the_rest_is_retried_or_dead_lettered() {
        assert_eq!(rejection(&rejected(409)).map(|r| r.code), Some("stale_version"));
        assert_eq!(rejection(&rejected(422)).map(|r| r.code), Some("transition_refused"));
        assert_eq!(rejection(&rejected(404)).map(|r| r.code), Some("loan_not_found"));
        assert!(rejection(&rejected(400)).is_none());
        assert_eq!(failure(rejected(401)).class, brain_runtime::consumer::ErrorClass::Unavailable);
        assert_eq!(failure(rejected(400)).class, brain_runtime::consumer::ErrorClass::Permanent);
        let busy = VenturesError::RateLimited { retry_after: Some(std::time::Duration::from_secs(2)) };
        let e = failure(busy);
        assert_eq!((e.class, e.retry_after), (brain_runtime::consumer::ErrorClass::Transient, Some(std::time::Duration::from_secs(2))));
    }
}
