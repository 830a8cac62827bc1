//! When each of the bench's events became visible in `projection_writer.event_log`, i.e. when
//! projection-writer's transaction (after its Firestore `Commit`) committed.
//!
//! A statement trigger the bench adds to `event_log` (`brain_bench_commits`, bench databases
//! only) sends a PostgreSQL notification, which is delivered when the inserting transaction
//! commits; on each, the observer reads the rows it has not seen. A notification costs the
//! writer one `pg_notify` per batch, where polling every 10 ms cost PostgreSQL a fifth of a core
//! and put up to 10 ms (plus the query) on every measured latency. The observer also reads every
//! 100 ms without a notification, in case one is missed.
//!
//! Rows are read by id above a floor that advances over every id seen without a gap: ids are
//! taken at insert and become visible at commit, so a batch's rows may appear after rows with
//! higher ids of another partition's batch. A gap that stays open for 2 s (the ids of a
//! rolled-back transaction) is skipped whole; its ids are still looked for during 30 s.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use futures::FutureExt;
use sqlx::{PgPool, postgres::PgListener};

/// The channel the trigger notifies (named in its function too).
const CHANNEL: &str = "brain_bench_commits";

/// Adds the notifying trigger to `event_log` (idempotent).
async fn install(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE OR REPLACE FUNCTION projection_writer.brain_bench_commits() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_notify('brain_bench_commits', ''); RETURN NULL; END $$",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE OR REPLACE TRIGGER brain_bench_commits AFTER INSERT ON projection_writer.event_log
         FOR EACH STATEMENT EXECUTE FUNCTION projection_writer.brain_bench_commits()",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// For each new row of `prefix` above `floor`, the time it became visible minus its
/// `occurred_at`, in seconds. Returns once `total` rows were seen (`true`), or what was seen when
/// `timeout` passed (`false`).
pub async fn observe(pool: PgPool, prefix: String, total: usize, mut floor: i64, timeout: Duration) -> anyhow::Result<(Vec<f64>, bool)> {
    install(&pool).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let deadline = Instant::now() + timeout;
    let mut above: BTreeSet<i64> = BTreeSet::new();
    let (mut lags, mut gap_since) = (Vec::with_capacity(total), None::<Instant>);
    let mut skipped: Vec<(i64, Instant)> = Vec::new();
    while lags.len() < total {
        if Instant::now() >= deadline {
            return Ok((lags, false));
        }
        skipped.retain(|(_, at)| at.elapsed() < Duration::from_secs(30));
        let late: Vec<i64> = skipped.iter().map(|(id, _)| *id).collect();
        let rows: Vec<(i64, bool, f64)> = sqlx::query_as(
            "SELECT id, starts_with(entity_id, $2), EXTRACT(EPOCH FROM occurred_at)::float8
             FROM projection_writer.event_log WHERE id > $1 OR id = ANY($3)",
        )
        .bind(floor)
        .bind(&prefix)
        .bind(&late)
        .fetch_all(&pool)
        .await?;
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        for (id, ours, occurred) in rows {
            let new = if id <= floor {
                let was = skipped.len();
                skipped.retain(|(s, _)| *s != id);
                skipped.len() < was
            } else {
                above.insert(id)
            };
            if new && ours {
                lags.push(now - occurred);
            }
        }
        while above.remove(&(floor + 1)) {
            floor += 1;
            gap_since = None;
        }
        if above.is_empty() {
            gap_since = None;
        } else if gap_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2) {
            let to = above.first().map_or(floor + 1, |lowest| lowest - 1);
            skipped.extend((floor + 1..=to).map(|id| (id, Instant::now())));
            floor = to;
            while above.remove(&(floor + 1)) {
                floor += 1;
            }
            gap_since = None;
        }
        if lags.len() >= total {
            break;
        }
        // The next commit (or 100 ms), then whatever else was notified meanwhile.
        match tokio::time::timeout(Duration::from_millis(100), listener.recv()).await {
            Ok(received) => {
                received?;
            }
            Err(_) => continue,
        }
        while let Some(received) = listener.recv().now_or_never() {
            received?;
        }
    }
    Ok((lags, true))
}
