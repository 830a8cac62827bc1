-- The console's status-change commands (flow 2) as projection-writer sees them: the request from
-- the gateway and, once Ventures answered, the outcome. Either may arrive first (two topics); the
-- row takes the fields of both and `state` only moves from pending to applied or rejected.
CREATE TABLE status_commands (
    command_id      uuid PRIMARY KEY,
    tenant_id       text        NOT NULL,
    application_id  text        NOT NULL,
    loan_id         text        NOT NULL,
    to_status       text        NOT NULL,
    from_status     text,
    app_version     bigint,
    force           boolean,
    reason          text,
    actor_subject   text,
    actor_role      text,
    state           text        NOT NULL CHECK (state IN ('pending', 'applied', 'rejected')),
    reason_code     text,
    rejection       text,
    applied_version bigint,
    requested_at    timestamptz,
    resolved_at     timestamptz,
    correlation_id  text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_commands_application ON status_commands (application_id, requested_at DESC);

GRANT SELECT, INSERT, UPDATE ON status_commands TO brain_projection_writer;

CREATE VIEW read_api.status_commands AS
    SELECT command_id, tenant_id, application_id, loan_id, to_status, from_status, app_version, force,
           reason, actor_subject, actor_role, state, reason_code, rejection, applied_version, requested_at, resolved_at,
           correlation_id, updated_at
    FROM projection_writer.status_commands;
GRANT SELECT ON read_api.status_commands TO brain_gateway_reader;
