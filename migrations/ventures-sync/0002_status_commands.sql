-- The status-change commands ventures-sync has sent to Ventures (flow 2): the version each was
-- sent at is fixed the first time, so a redelivered command repeats the very same request (same
-- Idempotency-Key, same body) and Ventures answers it from its idempotency store.
CREATE TABLE status_commands (
    command_id        uuid PRIMARY KEY,
    application_id    text        NOT NULL,
    loan_id           text        NOT NULL,
    expected_version  bigint      NOT NULL,
    first_sent_at     timestamptz NOT NULL DEFAULT now()
);
