-- The ShareFile circuit breaker of each instance, and the events of tenants whose `sharefile`
-- capability is switched off (brain_runtime::breaker, brain_runtime::flags), with the gateway's
-- read-only views (GET /api/v1/health/sync).
CREATE TABLE integration_health (
    integration    text        NOT NULL,
    instance       text        NOT NULL,
    breaker_state  text        NOT NULL CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    changed_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration, instance)
);

CREATE TABLE held_events (
    consumer_group       text        NOT NULL,
    topic                text        NOT NULL,
    partition            integer     NOT NULL,
    source_offset        bigint      NOT NULL,
    integration          text        NOT NULL,
    tenant               text        NOT NULL,
    key                  bytea,
    value                bytea,
    headers              jsonb       NOT NULL DEFAULT '[]',
    source_timestamp_ms  bigint,
    held_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition, source_offset)
);
CREATE INDEX held_events_by_tenant ON held_events (consumer_group, topic, partition, tenant, source_offset);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS read_api;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
CREATE VIEW read_api.sharefile_sync_integration_health AS
    SELECT integration, instance, breaker_state, changed_at, updated_at FROM sharefile_sync.integration_health;
CREATE VIEW read_api.sharefile_sync_held_events AS
    SELECT integration, tenant, count(*) AS events, min(held_at) AS oldest_held_at
    FROM sharefile_sync.held_events GROUP BY integration, tenant;
CREATE VIEW read_api.sharefile_documents AS
    SELECT document_id, tenant_id, application_id, task_id, file_name, state, attempts, item_id, folder_path, how, last_error, created_at, stored_at
    FROM sharefile_sync.documents;
GRANT SELECT ON read_api.sharefile_sync_integration_health, read_api.sharefile_sync_held_events, read_api.sharefile_documents TO brain_gateway_reader;
