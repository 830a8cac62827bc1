-- The state of each projection-writer instance's Firestore circuit breaker, refreshed every few
-- seconds, published to the gateway (GET /api/v1/health/sync) through a read-only view.
CREATE TABLE integration_health (
    integration    text        NOT NULL,
    instance       text        NOT NULL,
    breaker_state  text        NOT NULL CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    changed_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration, instance)
);
GRANT SELECT, INSERT, UPDATE ON integration_health TO brain_projection_writer;

CREATE VIEW read_api.projection_writer_integration_health AS
    SELECT integration, instance, breaker_state, changed_at, updated_at FROM projection_writer.integration_health;
GRANT SELECT ON read_api.projection_writer_integration_health TO brain_gateway_reader;
