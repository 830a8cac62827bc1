//! Flow 6's Teams relay: a staff message with `relayToTeams` (group `graph-calendar.relays` of
//! `firestore.message.changed.v1`) is posted to the configured Teams channel once, and the
//! outcome goes out as `graph.message.relayed.v1` (projection-writer shows it on the message).
//!
//! Once, although Graph's channel messages have no idempotency key:
//! 1. **Ledger** (`teams_relays`, one row per message): a message with an outcome only
//!    republishes it.
//! 2. **Lock** the message (an advisory lock held through the Graph calls), so two instances or
//!    two redeliveries never post it side by side.
//! 3. **An earlier post?** When a post was sent before without an outcome recorded (a crash, a
//!    lost answer), the channel is searched for the message's marker (a reference Brain puts in
//!    the content) first: found, it is this message's post.
//! 4. **Post**, then record `relayed` with the Teams message id and link, and publish.
//!
//! Failures: throttling, Graph's breaker open and our credentials refused wait without spending
//! tries; Graph failing (5xx, network) counts a failure in the ledger, and after `RELAY_ATTEMPTS`
//! of them the channel is searched once more (the last post may have landed with its answer
//! lost) before the relay is `failed` with the reason; a refusal (4xx) fails it at once. Without `TEAMS_TEAM_ID`/`TEAMS_CHANNEL_ID` a
//! relay is `skipped`. The `teams` capability flag holds relays (they wait, never dropped).

use std::sync::Arc;

use brain_events::{MessageChanged, MessageRelayed, messages, topics};
use brain_runtime::{
    consumer::{Applied, ErrorClass, Handler, HandlerError, Outcome, Source},
    db,
    flags::Gate,
    producer::EventProducer,
    telemetry::metric_name,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    SERVICE,
    booking::{graph_error, html_escape},
    graph::{Channel, ChatMessage, GraphClient},
};

/// Namespace of markers and outcome event ids, derived from the message's path.
const RELAY_NAMESPACE: Uuid = Uuid::from_u128(0x7e1a_4c2d_9b83_4f61_a0d5_3c8e_12f4_b967);

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `TEAMS_TEAM_ID` and `TEAMS_CHANNEL_ID`; none: relays are skipped.
    pub channel: Option<Channel>,
    /// `RELAY_ATTEMPTS`: tries of a post failing in Graph before the relay is `failed`.
    pub attempts: u32,
    /// `RELAY_SEARCH_PAGES`: pages of 50 channel messages searched for an earlier post.
    pub search_pages: u32,
}

pub struct RelayHandler {
    pub pool: PgPool,
    pub graph: Arc<GraphClient>,
    pub producer: EventProducer,
    /// The `teams` capability flags.
    pub gate: Gate,
    pub config: RelayConfig,
}

/// A relay as the ledger holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Relay {
    marker: String,
    state: String,
    teams_message_id: Option<String>,
    web_url: Option<String>,
    reason: Option<String>,
    post_attempts: i32,
    first_attempt_at: Option<DateTime<Utc>>,
}

/// The message a relay is about.
struct Subject<'a> {
    e: &'a MessageChanged,
    author: String,
    text: String,
}

impl Handler for RelayHandler {
    type Event = MessageChanged;

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn tenant(&self, event: &MessageChanged) -> Option<String> {
        Some(event.tenant_id.clone())
    }

    /// While the Graph breaker is open, the partition waits here.
    async fn admit(&self, _source: &Source<'_>) {
        self.graph.breaker().ready().await;
    }

    async fn handle(&self, source: Source<'_>, e: MessageChanged) -> Outcome {
        let Some(message) = e.message.as_ref().filter(|_| !e.deleted) else {
            return Ok(Applied::Stale);
        };
        // Only an accepted staff message that asked for it; projection-writer shows the rejections.
        let Ok(accepted) = messages::check(message) else {
            return Ok(Applied::Stale);
        };
        if !accepted.relay {
            return Ok(Applied::Stale);
        }
        tracing::Span::current().record("correlation_id", e.correlation_id.as_str());
        let subject = Subject { e: &e, author: message.author_id.clone().unwrap_or_default(), text: message.text.clone().unwrap_or_default() };
        let outcome = self.relay(source.attempt, &subject).await;
        let label = match &outcome {
            Ok(Applied::Processed) => "done",
            Ok(_) => "already",
            Err(_) => "retry",
        };
        metrics::counter!(metric_name(SERVICE, "relays_total"), "outcome" => label).increment(1);
        outcome
    }
}

impl RelayHandler {
    async fn relay(&self, attempt: u32, s: &Subject<'_>) -> Outcome {
        let e = s.e;
        let marker = marker(&e.document_path);
        sqlx::query(
            "INSERT INTO teams_relays (tenant_id, application_id, message_id, marker, state, correlation_id) VALUES ($1, $2, $3, $4, 'pending', $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(&e.tenant_id)
        .bind(&e.application_id)
        .bind(&e.message_id)
        .bind(&marker)
        .bind(&e.correlation_id)
        .execute(&self.pool)
        .await
        .map_err(db::classify)?;
        let mut tx = self.pool.begin().await.map_err(db::classify)?;
        db::lock_entity(&mut tx, &format!("relay:{}:{}:{}", e.tenant_id, e.application_id, e.message_id)).await.map_err(db::classify)?;
        let mut relay: Relay = sqlx::query_as(
            "SELECT marker, state, teams_message_id, web_url, reason, post_attempts, first_attempt_at FROM teams_relays
             WHERE tenant_id = $1 AND application_id = $2 AND message_id = $3",
        )
        .bind(&e.tenant_id)
        .bind(&e.application_id)
        .bind(&e.message_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db::classify)?;
        if relay.state != "pending" {
            tx.commit().await.map_err(db::classify)?;
            self.publish(e, &relay).await?;
            return Ok(Applied::Duplicate);
        }
        match self.post(&relay, s).await {
            Ok(Some(posted)) => {
                relay.state = "relayed".into();
                relay.teams_message_id = Some(posted.id);
                relay.web_url = posted.web_url;
            }
            Ok(None) => {
                relay.state = "skipped".into();
                relay.reason = Some("no Teams channel is configured (TEAMS_TEAM_ID, TEAMS_CHANNEL_ID)".into());
            }
            Err(RelayError::Database(error)) => return Err(db::classify(error)),
            Err(RelayError::Graph(g)) => {
                let error = graph_error(&self.graph, &g);
                let give_up = match error.class {
                    // Throttling, the breaker open, our credentials: wait, no try spent.
                    ErrorClass::Unavailable => false,
                    ErrorClass::Transient => self.count_failure(e).await.map_err(db::classify)? >= self.config.attempts as i32,
                    ErrorClass::Permanent => true,
                };
                if !give_up {
                    tracing::info!(message_id = %e.message_id, attempt, kind = error.kind, error = %g, "message not relayed yet; it is retried");
                    return Err(error);
                }
                // The last post's answer may have been lost after Graph made it: look before failing.
                let landed = match (&self.config.channel, error.class) {
                    (Some(channel), ErrorClass::Transient) => {
                        let since = relay.first_attempt_at.unwrap_or_else(Utc::now) - chrono::Duration::minutes(10);
                        self.graph.find_channel_message(channel, &relay.marker, since, self.config.search_pages).await.ok().flatten()
                    }
                    _ => None,
                };
                if let Some(posted) = landed {
                    relay.state = "relayed".into();
                    relay.teams_message_id = Some(posted.id);
                    relay.web_url = posted.web_url;
                } else {
                    relay.state = "failed".into();
                    relay.reason = Some(format!("{}: {g}", g.kind()));
                }
            }
        }
        relay.post_attempts = sqlx::query_scalar(
            "UPDATE teams_relays SET state = $4, teams_message_id = $5, web_url = $6, reason = $7, updated_at = now()
             WHERE tenant_id = $1 AND application_id = $2 AND message_id = $3 RETURNING post_attempts",
        )
        .bind(&e.tenant_id)
        .bind(&e.application_id)
        .bind(&e.message_id)
        .bind(&relay.state)
        .bind(&relay.teams_message_id)
        .bind(&relay.web_url)
        .bind(&relay.reason)
        .fetch_one(&mut *tx)
        .await
        .map_err(db::classify)?;
        tx.commit().await.map_err(db::classify)?;
        match relay.state.as_str() {
            "relayed" => tracing::info!(message_id = %e.message_id, application_id = %e.application_id, teams_message_id = ?relay.teams_message_id, "message relayed to Teams"),
            state => tracing::warn!(message_id = %e.message_id, application_id = %e.application_id, state, reason = ?relay.reason, "message not relayed"),
        }
        self.publish(e, &relay).await?;
        Ok(Applied::Processed)
    }

    /// The earlier post if there was one, else a new one; `None` without a channel.
    async fn post(&self, relay: &Relay, s: &Subject<'_>) -> Result<Option<ChatMessage>, RelayError> {
        let Some(channel) = &self.config.channel else {
            return Ok(None);
        };
        if relay.post_attempts > 0 {
            let since = relay.first_attempt_at.unwrap_or_else(Utc::now) - chrono::Duration::minutes(10);
            if let Some(found) = self.graph.find_channel_message(channel, &relay.marker, since, self.config.search_pages).await? {
                tracing::info!(message_id = %s.e.message_id, teams_message_id = %found.id, "an earlier post reached the channel; taking it");
                return Ok(Some(found));
            }
        }
        // Counted outside the lock's transaction: it must outlive a rollback.
        sqlx::query(
            "UPDATE teams_relays SET post_attempts = post_attempts + 1, first_attempt_at = coalesce(first_attempt_at, now()), team_id = $4, channel_id = $5
             WHERE tenant_id = $1 AND application_id = $2 AND message_id = $3",
        )
        .bind(&s.e.tenant_id)
        .bind(&s.e.application_id)
        .bind(&s.e.message_id)
        .bind(&channel.team_id)
        .bind(&channel.channel_id)
        .execute(&self.pool)
        .await?;
        Ok(Some(self.graph.post_channel_message(channel, &content(s, &relay.marker)).await?))
    }

    /// One more post failed in Graph; how many have (kept outside the lock's transaction).
    async fn count_failure(&self, e: &MessageChanged) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("UPDATE teams_relays SET failures = failures + 1 WHERE tenant_id = $1 AND application_id = $2 AND message_id = $3 RETURNING failures")
            .bind(&e.tenant_id)
            .bind(&e.application_id)
            .bind(&e.message_id)
            .fetch_one(&self.pool)
            .await
    }

    async fn publish(&self, e: &MessageChanged, relay: &Relay) -> Result<(), HandlerError> {
        let event = MessageRelayed {
            event_id: Uuid::new_v5(&RELAY_NAMESPACE, format!("{}\n{}", e.document_path, relay.state).as_bytes()).to_string(),
            occurred_at: Utc::now().timestamp_millis(),
            tenant_id: e.tenant_id.clone(),
            correlation_id: e.correlation_id.clone(),
            causation_id: Some(e.event_id.clone()),
            producer: SERVICE.to_string(),
            application_id: e.application_id.clone(),
            message_id: e.message_id.clone(),
            outcome: relay.state.clone(),
            teams_message_id: relay.teams_message_id.clone(),
            web_url: relay.web_url.clone(),
            reason: relay.reason.clone(),
            attempts: relay.post_attempts,
        };
        self.producer.send(topics::MESSAGE_RELAYED, &e.application_id, &event).await.map_err(|error| HandlerError::transient("publish", error.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// The reference put in a post's content, from the message's path.
fn marker(document_path: &str) -> String {
    let id = Uuid::new_v5(&RELAY_NAMESPACE, document_path.as_bytes()).simple().to_string();
    format!("brain-ref-{}", &id[..16])
}

/// The post: who wrote it on which application, the text, and the marker.
fn content(s: &Subject<'_>, marker: &str) -> String {
    format!(
        "<p><b>{}</b> on application {}:</p><p>{}</p><p><small>Sent from Brain · {marker}</small></p>",
        html_escape(&s.author),
        html_escape(&s.e.application_id),
        html_escape(&s.text).replace('\n', "<br>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_stable_per_message_and_escaped_content_keeps_them() {
        let a = marker("applications/app-1/messages/m-1");
        assert_eq!(a, marker("applications/app-1/messages/m-1"));
        assert_ne!(a, marker("applications/app-1/messages/m-2"));
        let e = MessageChanged {
            event_id: "e".into(),
            occurred_at: 0,
            tenant_id: "t".into(),
            correlation_id: "c".into(),
            causation_id: None,
            producer: "p".into(),
            application_id: "app-1".into(),
            message_id: "m-1".into(),
            document_path: "applications/app-1/messages/m-1".into(),
            version: 1,
            created: true,
            deleted: false,
            message: None,
        };
        let html = content(&Subject { e: &e, author: "ann".into(), text: "<b>hi</b>\nthere".into() }, &a);
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;<br>there") && html.contains(&a));
    }
}
