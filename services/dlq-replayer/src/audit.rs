//! The replayer's own PostgreSQL schema: replay jobs and what each did with each dead letter,
//! and the dead letters operators parked or discarded.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct Audit {
    pub pool: PgPool,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub job_id: Uuid,
    pub operator: String,
    pub filter: Value,
    pub dry_run: bool,
    pub rate_limit: Option<f64>,
    pub state: String,
    pub matched: i64,
    pub sent: i64,
    pub skipped: i64,
    pub failed: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub note: Option<String>,
}

/// What a job did with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// The columns of `Job`, for `concat!` (sqlx takes static SQL only).
macro_rules! job_columns {
    () => {
        "job_id, operator, filter, dry_run, rate_limit, state, matched, sent, skipped, failed, started_at, finished_at, note"
    };
}

impl Audit {
    /// Starts job `job_id`, or finds it to resume.
    pub async fn start(&self, job_id: Uuid, operator: &str, filter: &Value, dry_run: bool, rate_limit: Option<f64>) -> Result<Job, sqlx::Error> {
        sqlx::query(
            "INSERT INTO jobs (job_id, operator, filter, dry_run, rate_limit, state) VALUES ($1, $2, $3, $4, $5, 'running')
             ON CONFLICT (job_id) DO UPDATE SET state = 'running', finished_at = NULL",
        )
        .bind(job_id)
        .bind(operator)
        .bind(filter)
        .bind(dry_run)
        .bind(rate_limit)
        .execute(&self.pool)
        .await?;
        self.job(job_id).await?.ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn job(&self, job_id: Uuid) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1")).bind(job_id).fetch_optional(&self.pool).await
    }

    pub async fn jobs(&self, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        self.jobs_for(None, limit).await
    }

    /// The newest jobs, only those whose filter names `tenant` when it is given.
    pub async fn jobs_for(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE ($2::text IS NULL OR filter->>'tenant' = $2) ORDER BY started_at DESC LIMIT $1"))
            .bind(limit)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
    }

    /// What job `job_id` did with each dead letter (the first `limit`, in the order it did it):
    /// (id, outcome, reason).
    pub async fn items(&self, job_id: Uuid, limit: i64) -> Result<Vec<(String, String, Option<String>)>, sqlx::Error> {
        sqlx::query_as("SELECT dead_letter_id, outcome, reason FROM job_items WHERE job_id = $1 ORDER BY at, dead_letter_id LIMIT $2").bind(job_id).bind(limit).fetch_all(&self.pool).await
    }

    /// The dead letters any job has re-published, with the (first) job that did.
    pub async fn sent_before(&self, ids: &[String]) -> Result<HashMap<String, Uuid>, sqlx::Error> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT DISTINCT ON (dead_letter_id) dead_letter_id, job_id FROM job_items
             WHERE outcome = 'sent' AND dead_letter_id = ANY($1) ORDER BY dead_letter_id, at",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Parked and discarded dead letters: id → (action, reason).
    pub async fn dispositions(&self) -> Result<HashMap<String, (String, String)>, sqlx::Error> {
        let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT dead_letter_id, action, reason FROM dispositions").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id, action, reason)| (id, (action, reason))).collect())
    }

    /// Records what the job did with these dead letters and refreshes its counters.
    pub async fn record(&self, job_id: Uuid, items: &[(String, Outcome, Option<String>)]) -> Result<(), sqlx::Error> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO job_items (job_id, dead_letter_id, outcome, reason)
             SELECT $1, i, o, r FROM unnest($2::text[], $3::text[], $4::text[]) AS t(i, o, r)
             ON CONFLICT (job_id, dead_letter_id) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, at = now()",
        )
        .bind(job_id)
        .bind(items.iter().map(|(id, _, _)| id.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, o, _)| o.as_str().to_string()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET sent = c.sent, skipped = c.skipped, failed = c.failed FROM (
               SELECT count(*) FILTER (WHERE outcome = 'sent') AS sent, count(*) FILTER (WHERE outcome = 'skipped') AS skipped,
                      count(*) FILTER (WHERE outcome = 'failed') AS failed FROM job_items WHERE job_id = $1) c
             WHERE job_id = $1",
        )
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The ids this job already sent (to resume it without sending them again).
    pub async fn sent_by(&self, job_id: Uuid) -> Result<HashSet<String>, sqlx::Error> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT dead_letter_id FROM job_items WHERE job_id = $1 AND outcome = 'sent'").bind(job_id).fetch_all(&self.pool).await?;
        Ok(ids.into_iter().collect())
    }

    pub async fn finish(&self, job_id: Uuid, state: &str, matched: i64, counts: Option<(i64, i64, i64)>, note: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET state = $2, matched = $3, finished_at = now(), note = COALESCE($7, note),
                 sent = COALESCE($4, sent), skipped = COALESCE($5, skipped), failed = COALESCE($6, failed)
             WHERE job_id = $1",
        )
        .bind(job_id)
        .bind(state)
        .bind(matched)
        .bind(counts.map(|c| c.0))
        .bind(counts.map(|c| c.1))
        .bind(counts.map(|c| c.2))
        .bind(note)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// Records dead letters as dealt with (`replayed`, `parked`, `discarded`): (id, topic,
    /// dead-lettered at, how). A replay supersedes a park; unparking removes the park.
    pub async fn mark_handled(&self, items: &[(String, String, chrono::DateTime<chrono::Utc>, &str)]) -> Result<(), sqlx::Error> {
        if items.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO handled (dead_letter_id, topic, dead_lettered_at, how)
             SELECT i, t, d, h FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS x(i, t, d, h)
             ON CONFLICT (dead_letter_id) DO UPDATE SET how = EXCLUDED.how, at = now()",
        )
        .bind(items.iter().map(|i| i.0.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.1.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.2).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.3.to_string()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    pub async fn unmark_parked(&self, ids: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM handled WHERE dead_letter_id = ANY($1) AND how = 'parked'").bind(ids).execute(&self.pool).await.map(drop)
    }

    /// Parks or discards (`action`) dead letters, or unparks them (`None`), audited.
    pub async fn set_disposition(&self, ids: &[String], action: Option<&str>, reason: &str, operator: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        match action {
            Some(action) => {
                sqlx::query(
                    "INSERT INTO dispositions (dead_letter_id, action, reason, operator) SELECT i, $2, $3, $4 FROM unnest($1::text[]) AS t(i)
                     ON CONFLICT (dead_letter_id) DO UPDATE SET action = EXCLUDED.action, reason = EXCLUDED.reason, operator = EXCLUDED.operator, at = now()",
                )
                .bind(ids)
                .bind(action)
                .bind(reason)
                .bind(operator)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM dispositions WHERE dead_letter_id = ANY($1) AND action = 'parked'").bind(ids).execute(&mut *tx).await?;
            }
        }
        sqlx::query("INSERT INTO disposition_log (dead_letter_id, action, reason, operator) SELECT i, $2, $3, $4 FROM unnest($1::text[]) AS t(i)")
            .bind(ids)
            .bind(action.unwrap_or("unparked"))
            .bind(reason)
            .bind(operator)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}
