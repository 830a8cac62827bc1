//! Dead letters: the envelope that keeps everything needed to inspect and replay a message.

use brain_events::{DeadLetter, DeadLetterHeader};
use rdkafka::{
    Message,
    message::{Headers, OwnedMessage},
};
use tokio_util::sync::CancellationToken;

use super::{Handler, HandlerError, worker::{Disposition, Shared}};
use crate::{producer::Outgoing, retry::sleep_or_cancel, telemetry};

/// Why and after how much trying a message is dead-lettered.
pub(super) struct Failure<'a> {
    pub error: &'a HandlerError,
    /// `permanent` or `transient_exhausted`.
    pub class: &'static str,
    pub attempts: u32,
    pub first_attempt: chrono::DateTime<chrono::Utc>,
    pub trace_id: Option<String>,
}

/// Publishes the envelope, retrying until the broker acknowledges it or `stop` fires.
pub(super) async fn publish<H: Handler>(shared: &Shared<H>, message: &OwnedMessage, failure: Failure<'_>, stop: &CancellationToken) -> Disposition {
    let config = &shared.config;
    let error = failure.error;
    let now = chrono::Utc::now().timestamp_millis();
    let envelope = DeadLetter {
        dead_letter_id: uuid::Uuid::now_v7().to_string(),
        source_topic: message.topic().to_string(),
        source_partition: message.partition(),
        source_offset: message.offset(),
        source_timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|h| h.iter().map(|h| DeadLetterHeader { key: h.key.to_string(), value: h.value.map(<[u8]>::to_vec) }).collect())
            .unwrap_or_default(),
        consumer_group: config.group_id.clone(),
        service: config.service.to_string(),
        error_class: failure.class.to_string(),
        error_kind: error.kind.to_string(),
        error_message: error.message.clone(),
        attempts: failure.attempts as i32,
        first_attempt_at: failure.first_attempt.timestamp_millis(),
        last_attempt_at: now,
        dead_lettered_at: now,
        trace_id: failure.trace_id,
    };
    let topic = &shared.dead_letter_topic;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = match shared.producer.encode(topic, &envelope).await {
            Ok(payload) => shared
                .producer
                .send_raw(Outgoing { topic, key: message.key(), payload: &payload, headers: Vec::new() })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => {
                metrics::counter!(telemetry::metric_name(config.service, "consumer_messages_total"), "topic" => message.topic().to_string(), "outcome" => "dead_lettered").increment(1);
                tracing::error!(dead_letter_topic = %topic, class = failure.class, kind = error.kind, attempts = failure.attempts, offset = message.offset(), error = %error.message, "message dead-lettered");
                return Disposition::Done;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "could not publish dead letter; retrying");
                if !sleep_or_cancel(config.backoff.delay(attempt.min(16), None), stop).await {
                    return Disposition::Abandoned;
                }
            }
        }
    }
}
