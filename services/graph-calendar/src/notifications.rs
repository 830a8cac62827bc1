//! Graph's change notifications (`gateway.graph.notification-received.v1`, published by the
//! gateway once it checked `clientState`): the staff member's availability is refreshed at once
//! instead of at the next round. A batch refreshes each staff member once. A notification is only
//! a hint to look again, so it is never dead-lettered for Graph failing: it waits (throttling,
//! breaker open, Graph down) until a refresh goes through. Notifications about a mailbox that is
//! not an active staff member are skipped.

use std::{collections::HashSet, sync::Arc};

use brain_events::GraphNotificationReceived;
use brain_runtime::{
    consumer::{Applied, Delivery, Handler, HandlerError, Outcome, Source},
    db,
};

use crate::{
    availability::{Availability, RefreshError},
    graph::GraphError,
};

pub struct NotificationHandler {
    pub availability: Arc<Availability>,
}

impl NotificationHandler {
    async fn refresh(&self, user: &str) -> Outcome {
        if !self.availability.is_staff(user).await.map_err(db::classify)? {
            tracing::debug!(user, "notification about a mailbox that is not a staff member; skipped");
            return Ok(Applied::Processed);
        }
        match self.availability.refresh(user).await {
            Ok(()) => Ok(Applied::Processed),
            Err(RefreshError::Database(e)) => Err(db::classify(e)),
            Err(RefreshError::Graph(e @ GraphError::Rejected { .. })) => {
                tracing::warn!(user, error = %e, "Graph refused the schedule of a notified staff member; skipped");
                Ok(Applied::Processed)
            }
            Err(RefreshError::Graph(e)) => Err(HandlerError::unavailable("graph_refresh", e.to_string()).with_retry_after(e.retry_after())),
        }
    }
}

impl Handler for NotificationHandler {
    type Event = GraphNotificationReceived;

    async fn admit(&self, _source: &Source<'_>) {
        self.availability.graph.breaker().ready().await;
    }

    async fn handle(&self, _source: Source<'_>, n: GraphNotificationReceived) -> Outcome {
        tracing::debug!(user = %n.user_id, change = %n.change_type, "calendar change notified");
        self.refresh(&n.user_id).await
    }

    async fn handle_batch(&self, batch: Vec<Delivery<'_, GraphNotificationReceived>>) -> Result<Vec<Outcome>, HandlerError> {
        let mut refreshed = HashSet::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let user = delivery.event.user_id;
            if refreshed.contains(&user) {
                outcomes.push(Ok(Applied::Duplicate));
                continue;
            }
            let outcome = self.refresh(&user).await;
            let failed = outcome.is_err();
            outcomes.push(outcome);
            if failed {
                break;
            }
            refreshed.insert(user);
        }
        Ok(outcomes)
    }
}
