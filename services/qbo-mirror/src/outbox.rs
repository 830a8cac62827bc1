//! The outbox relay: publishes the entity-changed events the apply transactions wrote, in order,
//! and deletes them once the broker has them. A crash between the two publishes them again; the
//! event id makes consumers skip the repeat.

use std::time::Duration;

use brain_events::{QboEntityChanged, topics};
use brain_runtime::producer::EventProducer;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 500;

pub async fn relay(pool: PgPool, producer: EventProducer, wake: std::sync::Arc<Notify>, stop: CancellationToken) {
    loop {
        let sent = match relay_once(&pool, &producer).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(error = %e, "publishing entity-changed events failed; retrying");
                0
            }
        };
        if sent as i64 == BATCH {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn relay_once(pool: &PgPool, producer: &EventProducer) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, String, serde_json::Value)> =
        sqlx::query_as("SELECT id, key, event FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED").bind(BATCH).fetch_all(&mut *tx).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut events = Vec::with_capacity(rows.len());
    for (_, key, event) in &rows {
        events.push((key.clone(), serde_json::from_value::<QboEntityChanged>(event.clone())?));
    }
    producer.send_all::<QboEntityChanged, QboEntityChanged>(topics::QBO_ENTITY_CHANGED, &events).await?;
    let ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
    tx.commit().await?;
    metrics::counter!(brain_runtime::telemetry::metric_name(crate::SERVICE, "events_published_total")).increment(rows.len() as u64);
    Ok(rows.len())
}
