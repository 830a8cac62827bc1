//! Publishes this instance's Ventures breaker state to `integration_health` every few seconds
//! (and at once on a change), for the gateway's `GET /api/v1/health/sync`.

use std::time::Duration;

use brain_runtime::breaker::Breaker;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(5);
const CHECK: Duration = Duration::from_millis(250);

pub async fn publish(pool: PgPool, breaker: Breaker, instance: String, stop: CancellationToken) {
    let mut last: Option<&'static str> = None;
    let mut written = tokio::time::Instant::now();
    loop {
        let state = breaker.state_label();
        if last != Some(state) || written.elapsed() >= EVERY {
            let changed = last != Some(state);
            let result = sqlx::query(
                "INSERT INTO integration_health (integration, instance, breaker_state, changed_at) VALUES ($1, $2, $3, now())
                 ON CONFLICT (integration, instance) DO UPDATE SET breaker_state = EXCLUDED.breaker_state, updated_at = now(),
                     changed_at = CASE WHEN $4 THEN now() ELSE integration_health.changed_at END",
            )
            .bind(breaker.integration())
            .bind(&instance)
            .bind(state)
            .bind(changed)
            .execute(&pool)
            .await;
            match result {
                Ok(_) => {
                    last = Some(state);
                    written = tokio::time::Instant::now();
                }
                Err(e) => tracing::debug!(error = %e, "breaker state not published"),
            }
        }
        if !brain_runtime::retry::sleep_or_cancel(CHECK, &stop).await {
            return;
        }
    }
}
