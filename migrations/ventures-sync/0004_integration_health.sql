-- The state of each ventures-sync instance's Ventures circuit breaker, refreshed every few
-- seconds, published to the gateway (GET /api/v1/health/sync) through a read-only view.
CREATE TABLE integration_health (
    integration    text        NOT NULL,
    instance       text        NOT NULL,
    breaker_state  text        NOT NULL CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    changed_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration, instance)
);

-- The read-only role and schema may not exist yet if projection-writer has not migrated.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS read_api;
CREATE VIEW read_api.integration_health AS
    SELECT integration, instance, breaker_state, changed_at, updated_at FROM ventures_sync.integration_health;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
GRANT SELECT ON read_api.integration_health TO brain_gateway_reader;
