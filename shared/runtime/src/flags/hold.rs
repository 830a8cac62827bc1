//! The hold: where a consumer parks the events of a switched-off tenant, in offset order, so the
//! other tenants of the same partitions keep flowing. Each service that gates a consumer has the
//! `held_events` table in its own schema (see `migrations/*/..._held_events.sql`).

use std::collections::HashSet;

use rdkafka::{
    Message, Timestamp,
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
};
use sqlx::PgPool;

use super::Flags;

/// What a consumer needs to honour capability flags for one integration.
#[derive(Clone)]
pub struct Gate {
    pub flags: Flags,
    /// The integration the handler exercises (`ventures`, `firestore`, ...).
    pub integration: &'static str,
    pub hold: HoldStore,
}

impl Gate {
    pub fn new(flags: Flags, integration: &'static str, pool: PgPool) -> Self {
        Self { flags, integration, hold: HoldStore { pool } }
    }
}

/// The `held_events` table of the service's schema.
#[derive(Clone)]
pub struct HoldStore {
    pub pool: PgPool,
}

/// Held events of one tenant, per consumer group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldCount {
    pub consumer_group: String,
    pub integration: String,
    pub tenant: String,
    pub events: i64,
}

type HeaderList = Vec<(String, Option<Vec<u8>>)>;

impl HoldStore {
    /// The tenants with held events of one partition.
    pub async fn tenants(&self, group: &str, topic: &str, partition: i32) -> Result<HashSet<String>, sqlx::Error> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant FROM held_events WHERE consumer_group = $1 AND topic = $2 AND partition = $3")
            .bind(group)
            .bind(topic)
            .bind(partition)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Parks `messages` (each with its tenant) in one statement; a message held before stays as it was.
    pub async fn hold(&self, group: &str, integration: &str, messages: &[(&OwnedMessage, String)]) -> Result<(), sqlx::Error> {
        let mut offsets = Vec::with_capacity(messages.len());
        let mut tenants = Vec::with_capacity(messages.len());
        let mut keys: Vec<Option<Vec<u8>>> = Vec::with_capacity(messages.len());
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(messages.len());
        let mut headers = Vec::with_capacity(messages.len());
        let mut timestamps: Vec<Option<i64>> = Vec::with_capacity(messages.len());
        for (m, tenant) in messages {
            offsets.push(m.offset());
            tenants.push(tenant.clone());
            keys.push(m.key().map(<[u8]>::to_vec));
            values.push(m.payload().map(<[u8]>::to_vec));
            let list: HeaderList = m.headers().map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect()).unwrap_or_default();
            headers.push(serde_json::to_value(list).unwrap_or_default());
            timestamps.push(m.timestamp().to_millis());
        }
        let Some((first, _)) = messages.first() else { return Ok(()) };
        sqlx::query(
            "INSERT INTO held_events (consumer_group, topic, partition, source_offset, integration, tenant, key, value, headers, source_timestamp_ms)
             SELECT $1, $2, $3, o, $4, t, k, v, h, ts FROM UNNEST($5::bigint[], $6::text[], $7::bytea[], $8::bytea[], $9::jsonb[], $10::bigint[]) AS u(o, t, k, v, h, ts)
             ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(first.topic())
        .bind(first.partition())
        .bind(integration)
        .bind(offsets)
        .bind(tenants)
        .bind(keys)
        .bind(values)
        .bind(headers)
        .bind(timestamps)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The oldest `limit` held events of `tenant` on one partition, in offset order, as messages.
    pub async fn page(&self, group: &str, topic: &str, partition: i32, tenant: &str, limit: i64) -> Result<Vec<OwnedMessage>, sqlx::Error> {
        type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>, serde_json::Value, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT source_offset, key, value, headers, source_timestamp_ms FROM held_events
             WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND tenant = $4 ORDER BY source_offset LIMIT $5",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(offset, key, value, headers, ts)| {
                let list: HeaderList = serde_json::from_value(headers).unwrap_or_default();
                let owned = list.iter().fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: v.as_deref() }));
                let timestamp = ts.map_or(Timestamp::NotAvailable, Timestamp::CreateTime);
                OwnedMessage::new(value, key, topic.to_string(), timestamp, partition, offset, Some(owned))
            })
            .collect())
    }

    /// Forgets `tenant`'s held events of one partition up to `offset` (they were handled).
    pub async fn release(&self, group: &str, topic: &str, partition: i32, tenant: &str, offset: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM held_events WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND tenant = $4 AND source_offset <= $5")
            .bind(group)
            .bind(topic)
            .bind(partition)
            .bind(tenant)
            .bind(offset)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Held events per consumer group, integration and tenant.
    pub async fn counts(&self) -> Result<Vec<HeldCount>, sqlx::Error> {
        let rows: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT consumer_group, integration, tenant, count(*) FROM held_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(consumer_group, integration, tenant, events)| HeldCount { consumer_group, integration, tenant, events }).collect())
    }
}
