-- projection-writer's own schema (search_path = projection_writer).

-- Which events this service has applied: written in the same transaction as the effect.
CREATE TABLE processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The console read model of a loan application (Brain-owned fields only).
CREATE TABLE applications (
    application_id          text PRIMARY KEY,
    tenant_id               text        NOT NULL,
    loan_id                 text        NOT NULL,
    loan_number             text        NOT NULL,
    loan_type               text        NOT NULL,
    ventures_status         text        NOT NULL,
    status_changed_at       timestamptz NOT NULL,
    amount_requested_cents  bigint      NOT NULL,
    amount_approved_cents   bigint,
    version                 bigint      NOT NULL,
    source_updated_at       timestamptz NOT NULL,
    source_occurred_at      timestamptz NOT NULL,
    projected_at            timestamptz NOT NULL DEFAULT now(),
    last_event_id           uuid        NOT NULL,
    correlation_id          text        NOT NULL
);
CREATE INDEX applications_tenant ON applications (tenant_id, status_changed_at DESC);

-- The audit log: one row per applied change, append-only, free of PII (ids and statuses only).
CREATE TABLE event_log (
    id              bigserial PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    tenant_id       text        NOT NULL,
    entity_type     text        NOT NULL,
    entity_id       text        NOT NULL,
    version         bigint      NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id  text        NOT NULL,
    causation_id    text,
    producer        text        NOT NULL,
    change          jsonb       NOT NULL,
    UNIQUE (entity_type, entity_id, version)
);
CREATE INDEX event_log_entity ON event_log (entity_type, entity_id, id);

CREATE FUNCTION event_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only';
END $$;
CREATE TRIGGER event_log_no_update_delete BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_is_append_only();
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_is_append_only();

-- Roles are cluster-wide: create them once, tolerating a concurrent creator.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_projection_writer') THEN
        CREATE ROLE brain_projection_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- The service runs as brain_projection_writer: no UPDATE, DELETE or TRUNCATE on event_log.
GRANT USAGE ON SCHEMA projection_writer TO brain_projection_writer;
GRANT SELECT, INSERT, UPDATE ON applications, processed_events TO brain_projection_writer;
GRANT SELECT, INSERT ON event_log TO brain_projection_writer;
GRANT USAGE ON SEQUENCE event_log_id_seq TO brain_projection_writer;

-- The read model published for the gateway: a view in read_api, readable by its read-only role.
CREATE SCHEMA IF NOT EXISTS read_api;
CREATE VIEW read_api.applications AS
    SELECT application_id, tenant_id, loan_id, loan_number, loan_type, ventures_status,
           status_changed_at, amount_requested_cents, amount_approved_cents, version,
           source_occurred_at, projected_at, correlation_id
    FROM projection_writer.applications;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
GRANT SELECT ON read_api.applications TO brain_gateway_reader;
