//! Change-notification subscriptions, one per staff member, kept alive: created at start-up
//! (Graph first checks the gateway's `notificationUrl` with the validation handshake) and renewed
//! before they expire; one Graph no longer knows is created again. A failure is noted on the
//! staff member (`subscription_error`) and tried again a minute later; availability stays fresh
//! meanwhile through the periodic refresh.

use std::{sync::Arc, time::Duration};

use brain_runtime::retry::sleep_or_cancel;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::graph::{GraphClient, GraphError, Subscription};

#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The gateway's `POST /api/v1/webhooks/graph`, as Graph reaches it.
    pub notification_url: String,
    pub client_state: SecretString,
    /// How long each subscription is asked for (Graph: at most 10,080 minutes for events).
    pub lifetime: chrono::Duration,
}

pub struct Subscriptions {
    pub pool: PgPool,
    pub graph: Arc<GraphClient>,
    pub config: SubscriptionConfig,
}

const RETRY: Duration = Duration::from_secs(60);

/// A staff member, their subscription's id and its expiry.
type StaffSubscription = (String, Option<String>, Option<DateTime<Utc>>);

impl Subscriptions {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let all_ok = self.round().await;
            // Renew at a third of the lifetime left; look again sooner after a failure.
            let next = if all_ok { (self.config.lifetime / 3).to_std().unwrap_or(RETRY).max(RETRY) } else { RETRY };
            if !sleep_or_cancel(next, &stop).await {
                return;
            }
        }
    }

    /// Creates or renews the subscription of every active staff member; whether all went well.
    pub async fn round(&self) -> bool {
        let staff: Result<Vec<StaffSubscription>, _> =
            sqlx::query_as("SELECT staff_id, subscription_id, subscription_expires_at FROM staff WHERE active ORDER BY staff_id").fetch_all(&self.pool).await;
        let staff = match staff {
            Ok(staff) => staff,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the staff for their subscriptions");
                return false;
            }
        };
        let mut all_ok = true;
        for (user, id, expires) in staff {
            let due = expires.is_none_or(|e| e - Utc::now() < self.config.lifetime * 2 / 3);
            if id.is_some() && !due {
                continue;
            }
            let result = self.ensure(&user, id.as_deref()).await;
            let (sub_id, expires, error) = match &result {
                Ok(s) => (Some(s.id.clone()), Some(s.expiration_date_time), None),
                Err(e) => (id.clone(), expires, Some(format!("{}: {e}", e.kind()))),
            };
            if let Err(e) = &result {
                all_ok = false;
                tracing::warn!(user, error = %e, "subscription not created or renewed; trying again later");
            }
            let stored = sqlx::query("UPDATE staff SET subscription_id = $2, subscription_expires_at = $3, subscription_error = $4, updated_at = now() WHERE staff_id = $1")
                .bind(&user)
                .bind(sub_id)
                .bind(expires)
                .bind(error)
                .execute(&self.pool)
                .await;
            if let Err(e) = stored {
                all_ok = false;
                tracing::warn!(user, error = %e, "subscription not recorded");
            }
        }
        all_ok
    }

    async fn ensure(&self, user: &str, existing: Option<&str>) -> Result<Subscription, GraphError> {
        let expires = Utc::now() + self.config.lifetime;
        if let Some(id) = existing
            && let Some(renewed) = self.graph.renew_subscription(id, expires).await?
        {
            tracing::debug!(user, id, "subscription renewed");
            return Ok(renewed);
        }
        let created = self.graph.create_subscription(user, &self.config.notification_url, &self.config.client_state, expires).await?;
        tracing::info!(user, id = %created.id, "subscribed to the staff member's calendar changes");
        Ok(created)
    }
}
