//! Staff availability kept fresh, and the free slots Brain computes from it.
//!
//! Every `REFRESH_INTERVAL_MS`, and at once when a change notification for a staff member
//! arrives, graph-calendar asks Graph for that staff member's schedule over the next
//! `AVAILABILITY_DAYS` (`getSchedule`) and, in one transaction under the staff member's lock,
//! replaces the stored busy intervals that came from Graph, recomputes the free windows (working
//! hours minus every busy interval, Brain's own bookings included) and stamps `refreshed_at` with
//! the time the schedule was asked for. An older answer never overwrites a newer one. A refresh
//! that fails keeps what is stored (so the gateway keeps answering, with its age) and notes
//! `refresh_error`.

use std::{sync::Arc, time::Duration};

use brain_runtime::{db, retry::sleep_or_cancel, telemetry::metric_name};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    graph::{GraphClient, GraphError},
    slots::{self, Interval, WorkingHours},
};

/// `AVAILABILITY_DAYS`, `WORKING_HOURS`, `WORKING_DAYS`, `SLOT_MINUTES`, `REFRESH_INTERVAL_MS`.
#[derive(Debug, Clone)]
pub struct AvailabilityConfig {
    pub days: u32,
    pub hours: WorkingHours,
    pub slot_minutes: u32,
    pub refresh_every: Duration,
}

impl AvailabilityConfig {
    pub fn slot(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.slot_minutes))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("getSchedule failed")]
    Graph(#[from] GraphError),
    #[error("the availability could not be stored")]
    Database(#[from] sqlx::Error),
}

pub struct Availability {
    pub pool: PgPool,
    pub graph: Arc<GraphClient>,
    pub config: AvailabilityConfig,
}

/// The advisory-lock name of a staff member's calendar (bookings and refreshes take it).
pub fn staff_lock(staff: &str) -> String {
    format!("graph-calendar:staff:{staff}")
}

impl Availability {
    /// Adds (or reactivates) the configured staff of `tenant`; the others stay as they are.
    pub async fn register_staff(&self, tenant: &str, staff: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO staff (staff_id, tenant_id, slot_minutes) SELECT s, $2, $3 FROM UNNEST($1::text[]) AS s
             ON CONFLICT (staff_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, slot_minutes = EXCLUDED.slot_minutes, active = true, updated_at = now()",
        )
        .bind(staff)
        .bind(tenant)
        .bind(self.config.slot_minutes as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn active_staff(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT staff_id FROM staff WHERE active ORDER BY staff_id").fetch_all(&self.pool).await
    }

    pub async fn is_staff(&self, staff: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM staff WHERE staff_id = $1 AND active)").bind(staff).fetch_one(&self.pool).await
    }

    /// Refreshes every active staff member until `stop`, one round every `refresh_every`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self.active_staff().await {
                Ok(staff) => {
                    for s in staff {
                        // While the breaker is open this round waits (and becomes the probe).
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = self.graph.breaker().ready() => {}
                        }
                        if let Err(e) = self.refresh(&s).await {
                            tracing::warn!(staff = %s, error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "availability not refreshed; the stored one stays");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not list the staff"),
            }
            if !sleep_or_cancel(self.config.refresh_every, &stop).await {
                return;
            }
        }
    }

    /// Asks Graph for `staff`'s schedule and stores it.
    pub async fn refresh(&self, staff: &str) -> Result<(), RefreshError> {
        let asked_at = Utc::now();
        let from = slots::floor_to_grid(asked_at, self.config.slot());
        let to = from + chrono::Duration::days(i64::from(self.config.days));
        let items = match self.graph.get_schedule(staff, from, to, self.config.slot_minutes).await {
            Ok(items) => items,
            Err(e) => {
                count("failed");
                let noted = sqlx::query("UPDATE staff SET refresh_error = $2, refresh_failed_at = now() WHERE staff_id = $1").bind(staff).bind(format!("{}: {e}", e.kind())).execute(&self.pool).await;
                if let Err(db) = noted {
                    tracing::debug!(error = %db, "refresh failure not noted");
                }
                return Err(e.into());
            }
        };
        let busy: Vec<(Interval, String)> = items
            .iter()
            .filter(|i| i.blocks())
            .filter_map(|i| {
                let (start, end) = (i.start.to_utc()?, i.end.to_utc()?);
                (end > start).then(|| (Interval::new(start, end), i.status.clone()))
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        db::lock_entity(&mut tx, &staff_lock(staff)).await?;
        let newest: Option<Option<DateTime<Utc>>> = sqlx::query_scalar("SELECT refreshed_at FROM staff WHERE staff_id = $1").bind(staff).fetch_optional(&mut *tx).await?;
        let Some(newest) = newest else {
            tracing::debug!(staff, "not a staff member; schedule not stored");
            return Ok(());
        };
        if newest.is_some_and(|n| n >= asked_at) {
            count("superseded");
            return Ok(());
        }
        sqlx::query("DELETE FROM busy_intervals WHERE staff_id = $1 AND source = 'graph'").bind(staff).execute(&mut *tx).await?;
        let starts: Vec<DateTime<Utc>> = busy.iter().map(|(b, _)| b.start).collect();
        let ends: Vec<DateTime<Utc>> = busy.iter().map(|(b, _)| b.end).collect();
        let statuses: Vec<&str> = busy.iter().map(|(_, s)| s.as_str()).collect();
        sqlx::query("INSERT INTO busy_intervals (staff_id, start_at, end_at, status, source) SELECT $1, s, e, st, 'graph' FROM UNNEST($2::timestamptz[], $3::timestamptz[], $4::text[]) AS t(s, e, st)")
            .bind(staff)
            .bind(&starts)
            .bind(&ends)
            .bind(&statuses)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE staff SET refreshed_at = $2, horizon_end = $3, refresh_error = NULL, updated_at = now() WHERE staff_id = $1").bind(staff).bind(asked_at).bind(to).execute(&mut *tx).await?;
        recompute(&mut tx, &self.config, staff).await?;
        tx.commit().await?;
        count("refreshed");
        tracing::debug!(staff, busy = busy.len(), "availability refreshed");
        Ok(())
    }
}

/// Recomputes `staff`'s free windows from the stored busy intervals, from now to the horizon of
/// the last refresh. The caller holds the staff member's lock.
pub async fn recompute(tx: &mut Transaction<'_, Postgres>, config: &AvailabilityConfig, staff: &str) -> Result<usize, sqlx::Error> {
    let horizon: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT horizon_end FROM staff WHERE staff_id = $1").bind(staff).fetch_optional(&mut **tx).await?.flatten();
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as("SELECT start_at, end_at FROM busy_intervals WHERE staff_id = $1").bind(staff).fetch_all(&mut **tx).await?;
    let busy: Vec<Interval> = rows.into_iter().map(|(s, e)| Interval::new(s, e)).collect();
    let windows = match horizon {
        Some(to) => slots::free_windows(&config.hours, &busy, Utc::now(), to, config.slot()),
        None => Vec::new(),
    };
    sqlx::query("DELETE FROM free_slots WHERE staff_id = $1").bind(staff).execute(&mut **tx).await?;
    let starts: Vec<DateTime<Utc>> = windows.iter().map(|w| w.start).collect();
    let ends: Vec<DateTime<Utc>> = windows.iter().map(|w| w.end).collect();
    sqlx::query("INSERT INTO free_slots (staff_id, start_at, end_at) SELECT $1, s, e FROM UNNEST($2::timestamptz[], $3::timestamptz[]) AS t(s, e)")
        .bind(staff)
        .bind(&starts)
        .bind(&ends)
        .execute(&mut **tx)
        .await?;
    Ok(windows.len())
}

fn count(outcome: &'static str) {
    metrics::counter!(metric_name(SERVICE, "availability_refreshes_total"), "outcome" => outcome).increment(1);
}
