//! Transactional writes: registering a schema under a subject and deleting versions.

use sqlx::{PgConnection, Postgres, Row, Transaction};

use super::{Store, VersionRef, VersionRow, global_level, subject_level, versions};
use crate::{avro::ParsedSchema, compat, error::ApiError};

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: i32,
    /// The new version, or `None` if the subject already held this schema.
    pub new_version: Option<i32>,
}

impl Store {
    /// Registers `new` under `subject` after checking it against the subject's effective level.
    ///
    /// An identical (normalized) schema already live in the subject returns its id unchanged;
    /// the same schema in another subject reuses that id under a new version here.
    pub async fn register(
        &self,
        subject: &str,
        new: &ParsedSchema,
    ) -> Result<Registered, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let rows = versions(&mut *tx, subject, true).await?;
        let live: Vec<&VersionRow> = rows.iter().filter(|row| !row.deleted).collect();
        if let Some(existing) = live.iter().find(|row| row.normalized == new.normalized) {
            tx.commit().await?;
            return Ok(Registered {
                id: existing.schema_id,
                new_version: None,
            });
        }

        let level = match subject_level(&mut *tx, subject).await? {
            Some(level) => level,
            None => global_level(&mut *tx).await?,
        };
        if level != compat::Level::None {
            let existing = live
                .iter()
                .map(|row| row.parse())
                .collect::<Result<Vec<_>, _>>()?;
            compat::check(level, &new.schema, &existing).map_err(|messages| {
                ApiError::Incompatible {
                    subject: subject.to_owned(),
                    messages,
                }
            })?;
        }

        let id = schema_id_for(&mut tx, new).await?;
        // Soft-deleted versions keep their numbers, as in Confluent.
        let version = rows.iter().map(|row| row.version).max().unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)",
        )
        .bind(subject)
        .bind(version)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registered {
            id,
            new_version: Some(version),
        })
    }

    /// Soft-deletes every live version (and the subject's config); returns their numbers.
    pub async fn soft_delete_subject(&self, subject: &str) -> Result<Vec<i32>, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let rows = versions(&mut *tx, subject, true).await?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let live: Vec<i32> = rows
            .iter()
            .filter(|r| !r.deleted)
            .map(|r| r.version)
            .collect();
        if live.is_empty() {
            return Err(ApiError::SubjectSoftDeleted(subject.to_owned()));
        }
        sqlx::query("UPDATE subject_versions SET deleted = true WHERE subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        delete_config(&mut tx, subject).await?;
        tx.commit().await?;
        Ok(live)
    }

    /// Removes a subject whose versions were all soft-deleted first; returns their numbers.
    pub async fn hard_delete_subject(&self, subject: &str) -> Result<Vec<i32>, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let rows = versions(&mut *tx, subject, true).await?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        if rows.iter().any(|row| !row.deleted) {
            return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
        }
        sqlx::query("DELETE FROM subject_versions WHERE subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        delete_config(&mut tx, subject).await?;
        tx.commit().await?;
        Ok(rows.iter().map(|row| row.version).collect())
    }

    /// Deletes one version: soft, or (`permanent`) hard after a soft delete. Returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let rows = versions(&mut *tx, subject, true).await?;
        let visible: Vec<&VersionRow> = rows
            .iter()
            .filter(|row| permanent || !row.deleted)
            .collect();
        let Some(latest) = visible.last() else {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        };
        let row = match version {
            VersionRef::Latest => *latest,
            VersionRef::Number(number) => rows
                .iter()
                .find(|row| row.version == number)
                .ok_or_else(|| ApiError::VersionNotFound(number.to_string()))?,
        };
        let sql = match (permanent, row.deleted) {
            (false, true) => {
                return Err(ApiError::VersionSoftDeleted(
                    subject.to_owned(),
                    row.version,
                ));
            }
            (true, false) => {
                return Err(ApiError::VersionNotSoftDeleted(
                    subject.to_owned(),
                    row.version,
                ));
            }
            (false, false) => {
                "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2"
            }
            (true, true) => "DELETE FROM subject_versions WHERE subject = $1 AND version = $2",
        };
        sqlx::query(sql)
            .bind(subject)
            .bind(row.version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.version)
    }
}

/// Serializes writers of one subject until the transaction ends.
async fn lock_subject(
    tx: &mut Transaction<'_, Postgres>,
    subject: &str,
) -> Result<(), sqlx::Error> {
    // Two-key form: the first key namespaces our locks from other users of the database.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('schema_registry'), hashtext($1))")
        .bind(subject)
        .execute(&mut **tx)
        .await
        .map(drop)
}

async fn delete_config(tx: &mut PgConnection, subject: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM subject_configs WHERE subject = $1")
        .bind(subject)
        .execute(tx)
        .await
        .map(drop)
}

/// The id of `schema`, inserting it if no subject has registered it yet.
async fn schema_id_for(tx: &mut PgConnection, schema: &ParsedSchema) -> Result<i32, sqlx::Error> {
    let select = "SELECT id FROM schemas WHERE fingerprint = md5($1)";
    if let Some(row) = sqlx::query(select)
        .bind(&schema.normalized)
        .fetch_optional(&mut *tx)
        .await?
    {
        return row.try_get("id");
    }
    let inserted = sqlx::query(
        "INSERT INTO schemas (schema_type, schema, normalized) VALUES ('AVRO', $1, $2) \
         ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
    )
    .bind(&schema.text)
    .bind(&schema.normalized)
    .fetch_optional(&mut *tx)
    .await?;
    match inserted {
        Some(row) => row.try_get("id"),
        // Another subject inserted it concurrently and has committed (ON CONFLICT waited).
        None => sqlx::query(select)
            .bind(&schema.normalized)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id"),
    }
}
