//! The consumer of `gateway.qbo.webhook-received.v1`: each verified webhook asks for a sync of its
//! realm. Many webhooks of one realm make one sync (the request only moves the realm's next sync to
//! now), and CDC fetches what changed, so a webhook missed or repeated loses or doubles nothing.

use std::sync::Arc;

use brain_events::QboWebhookReceived;
use brain_runtime::{
    consumer::{Applied, Handler, HandlerError, Outcome, Source},
    db,
};
use tokio::sync::Notify;

use crate::realms::Realms;

pub struct WebhookHandler {
    pub realms: Realms,
    /// Wakes the scheduler.
    pub wake: Arc<Notify>,
}

impl Handler for WebhookHandler {
    type Event = QboWebhookReceived;

    async fn handle(&self, _source: Source<'_>, event: QboWebhookReceived) -> Outcome {
        if event.realm_id.is_empty() {
            return Err(HandlerError::permanent("validation", "a webhook without a realm"));
        }
        let known = self.realms.request_sync(&event.realm_id).await.map_err(db::classify)?;
        if known {
            self.wake.notify_one();
            metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "webhook_sync_requests_total")).increment(1);
        } else {
            tracing::debug!(realm = %event.realm_id, "webhook for a realm that is not connected (or revoked); ignored");
        }
        Ok(Applied::Processed)
    }
}
