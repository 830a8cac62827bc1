-- One copy per consumer under test (schemas bench_runtime and bench_peer), so they never share rows.

-- The processed-event record, as in every Brain service (`brain_runtime::db::record_processed`).
CREATE TABLE processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The one row each event upserts: the loan's latest status, newer versions only.
CREATE TABLE loans (
    application_id  text        PRIMARY KEY,
    loan_id         text        NOT NULL,
    status          text        NOT NULL,
    version         bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
