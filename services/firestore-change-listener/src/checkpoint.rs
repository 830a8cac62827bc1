//! The durable checkpoint: each watched document as of its last acknowledged change event, and
//! each target's resume token. Stored only after the broker acknowledged the events, so a crash
//! re-emits at most the changes that were not yet acknowledged (under the same event ids).

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use sqlx::PgPool;

/// A document as last emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub update_time_ns: i64,
    pub deleted: bool,
    pub fields: Map<String, Json>,
}

#[derive(Clone)]
pub struct Checkpoint {
    pub pool: PgPool,
}

impl Checkpoint {
    /// Every document of `target` as last emitted.
    pub async fn load(&self, target: &str) -> Result<HashMap<String, Known>, sqlx::Error> {
        let rows: Vec<(String, i64, bool, Json)> = sqlx::query_as("SELECT path, update_time_ns, deleted, fields FROM documents WHERE target = $1")
            .bind(target)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(path, update_time_ns, deleted, fields)| {
                let fields = match fields {
                    Json::Object(map) => map,
                    _ => Map::new(),
                };
                (path, Known { update_time_ns, deleted, fields })
            })
            .collect())
    }

    pub async fn resume_token(&self, target: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let token: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT resume_token FROM targets WHERE target = $1").bind(target).fetch_optional(&self.pool).await?;
        Ok(token.flatten().filter(|t| !t.is_empty()))
    }

    /// The next Listen starts from scratch (a full result, deduplicated by update time).
    pub async fn forget_resume_token(&self, target: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE targets SET resume_token = NULL, updated_at = now() WHERE target = $1").bind(target).execute(&self.pool).await.map(drop)
    }

    /// Records `documents` (never moving one back to an older update time) and the target's
    /// resume token, in one transaction.
    pub async fn store(&self, target: &str, documents: &[(String, Known)], resume: Option<(&[u8], i64)>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !documents.is_empty() {
            sqlx::query(
                "INSERT INTO documents (path, target, update_time_ns, deleted, fields)
                 SELECT p, $1, u, d, f FROM unnest($2::text[], $3::bigint[], $4::bool[], $5::jsonb[]) AS t(p, u, d, f)
                 ON CONFLICT (path) DO UPDATE SET update_time_ns = EXCLUDED.update_time_ns, deleted = EXCLUDED.deleted,
                     fields = EXCLUDED.fields, emitted_at = now()
                 WHERE documents.update_time_ns <= EXCLUDED.update_time_ns",
            )
            .bind(target)
            .bind(documents.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            .bind(documents.iter().map(|(_, k)| k.update_time_ns).collect::<Vec<_>>())
            .bind(documents.iter().map(|(_, k)| k.deleted).collect::<Vec<_>>())
            .bind(documents.iter().map(|(_, k)| Json::Object(k.fields.clone())).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if let Some((token, read_time_ns)) = resume {
            sqlx::query(
                "INSERT INTO targets (target, resume_token, read_time_ns) VALUES ($1, $2, $3)
                 ON CONFLICT (target) DO UPDATE SET resume_token = EXCLUDED.resume_token, read_time_ns = EXCLUDED.read_time_ns, updated_at = now()",
            )
            .bind(target)
            .bind(token)
            .bind(read_time_ns)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
