//! PostgreSQL storage (schema `schema_registry`): schemas, subject versions and configs.
//!
//! Writes that depend on what a subject already holds (register, delete) run in a transaction
//! holding a per-subject advisory lock, so concurrent requests cannot hand out the same version
//! twice; schema ids are de-duplicated by a unique fingerprint with `ON CONFLICT`.

mod writes;

use apache_avro::Schema;
use sqlx::{PgExecutor, PgPool, Row};

use crate::{compat::Level, error::ApiError};

/// A version reference from a URL: a number or `latest` (also spelled `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    /// Parses like Confluent: `latest` or `-1`, else an integer in `1..=i32::MAX`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("latest") || trimmed == "-1" {
            return Ok(VersionRef::Latest);
        }
        match trimmed.parse::<i32>() {
            Ok(number) if number >= 1 => Ok(VersionRef::Number(number)),
            _ => Err(ApiError::InvalidVersion(text.to_owned())),
        }
    }
}

/// One version of a subject with its schema.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub version: i32,
    pub schema_id: i32,
    pub deleted: bool,
    pub schema: String,
    pub normalized: String,
}

impl VersionRow {
    /// Parses the stored text again; it parsed when it was registered.
    pub fn parse(&self) -> Result<Schema, ApiError> {
        Schema::parse_str(&self.schema).map_err(|err| {
            ApiError::InvalidSchema(format!(
                "Stored schema version {} no longer parses: {err}",
                self.version
            ))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Store { pool }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// The subject's versions, oldest first.
    pub async fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<VersionRow>, sqlx::Error> {
        versions(&self.pool, subject, include_deleted).await
    }

    /// Resolves `version` of `subject`: 40401 if the subject has no (visible) versions, 40402 if
    /// that version is not among them.
    pub async fn resolve(
        &self,
        subject: &str,
        version: VersionRef,
        include_deleted: bool,
    ) -> Result<VersionRow, ApiError> {
        let rows = self.versions(subject, include_deleted).await?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        match version {
            VersionRef::Latest => rows.into_iter().last(),
            VersionRef::Number(number) => rows.into_iter().find(|row| row.version == number),
        }
        .ok_or_else(|| match version {
            VersionRef::Latest => ApiError::SubjectNotFound(subject.to_owned()),
            VersionRef::Number(number) => ApiError::VersionNotFound(number.to_string()),
        })
    }

    pub async fn subjects(
        &self,
        include_deleted: bool,
        prefix: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query(
            "SELECT DISTINCT subject FROM subject_versions \
             WHERE ($1 OR NOT deleted) AND starts_with(subject, $2) ORDER BY subject",
        )
        .bind(include_deleted)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get("subject"))
        .collect()
    }

    /// The schema text registered under `id`, whether or not its versions were deleted.
    pub async fn schema_by_id(&self, id: i32) -> Result<Option<String>, sqlx::Error> {
        sqlx::query("SELECT schema FROM schemas WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("schema"))
            .transpose()
    }

    pub async fn max_id(&self) -> Result<i32, sqlx::Error> {
        sqlx::query("SELECT coalesce(max(id), 0) AS max_id FROM schemas")
            .fetch_one(&self.pool)
            .await?
            .try_get("max_id")
    }

    /// `(subject, version)` pairs that use schema `id`, ordered by subject then version.
    pub async fn usages(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Vec<(String, i32)>, sqlx::Error> {
        sqlx::query(
            "SELECT subject, version FROM subject_versions \
             WHERE schema_id = $1 AND ($2 OR NOT deleted) ORDER BY subject, version",
        )
        .bind(id)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("subject")?, row.try_get("version")?)))
        .collect()
    }

    pub async fn global_level(&self) -> Result<Level, sqlx::Error> {
        global_level(&self.pool).await
    }

    pub async fn set_global_level(&self, level: Level) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE global_config SET compatibility = $1")
            .bind(level.as_str())
            .execute(&self.pool)
            .await
            .map(drop)
    }

    pub async fn subject_level(&self, subject: &str) -> Result<Option<Level>, sqlx::Error> {
        subject_level(&self.pool, subject).await
    }

    pub async fn set_subject_level(&self, subject: &str, level: Level) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO subject_configs (subject, compatibility) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
        )
        .bind(subject)
        .bind(level.as_str())
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// Removes the subject's own level, returning what it was.
    pub async fn delete_subject_level(&self, subject: &str) -> Result<Option<Level>, sqlx::Error> {
        sqlx::query("DELETE FROM subject_configs WHERE subject = $1 RETURNING compatibility")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| decode_level(row.try_get("compatibility")?))
            .transpose()
    }

    /// The subject's own level, else the global one.
    pub async fn effective_level(&self, subject: &str) -> Result<Level, sqlx::Error> {
        match self.subject_level(subject).await? {
            Some(level) => Ok(level),
            None => self.global_level().await,
        }
    }
}

async fn versions(
    executor: impl PgExecutor<'_>,
    subject: &str,
    include_deleted: bool,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query(
        "SELECT v.version, v.schema_id, v.deleted, s.schema, s.normalized \
         FROM subject_versions v JOIN schemas s ON s.id = v.schema_id \
         WHERE v.subject = $1 AND ($2 OR NOT v.deleted) ORDER BY v.version",
    )
    .bind(subject)
    .bind(include_deleted)
    .fetch_all(executor)
    .await?
    .iter()
    .map(|row| {
        Ok(VersionRow {
            version: row.try_get("version")?,
            schema_id: row.try_get("schema_id")?,
            deleted: row.try_get("deleted")?,
            schema: row.try_get("schema")?,
            normalized: row.try_get("normalized")?,
        })
    })
    .collect()
}

async fn global_level(executor: impl PgExecutor<'_>) -> Result<Level, sqlx::Error> {
    let row = sqlx::query("SELECT compatibility FROM global_config")
        .fetch_one(executor)
        .await?;
    decode_level(row.try_get("compatibility")?)
}

async fn subject_level(
    executor: impl PgExecutor<'_>,
    subject: &str,
) -> Result<Option<Level>, sqlx::Error> {
    sqlx::query("SELECT compatibility FROM subject_configs WHERE subject = $1")
        .bind(subject)
        .fetch_optional(executor)
        .await?
        .map(|row| decode_level(row.try_get("compatibility")?))
        .transpose()
}

fn decode_level(text: String) -> Result<Level, sqlx::Error> {
    text.parse::<Level>()
        .map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_refs() {
        assert_eq!(VersionRef::parse("latest").unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("LATEST").unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("-1").unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("3").unwrap(), VersionRef::Number(3));
        for bad in ["0", "-2", "abc", "", "2147483648"] {
            assert!(VersionRef::parse(bad).is_err(), "{bad}");
        }
    }
}
