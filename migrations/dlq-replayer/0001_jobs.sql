-- dlq-replayer's own schema (search_path = dlq_replayer): the audit of replay jobs and of the
-- dead letters operators set aside.

-- One replay (or dry run): who, when, which filter, and what came of it.
CREATE TABLE jobs (
    job_id       uuid PRIMARY KEY,
    operator     text        NOT NULL,
    filter       jsonb       NOT NULL,
    dry_run      boolean     NOT NULL,
    rate_limit   double precision,
    state        text        NOT NULL CHECK (state IN ('running', 'finished', 'failed')),
    matched      bigint      NOT NULL DEFAULT 0,
    sent         bigint      NOT NULL DEFAULT 0,
    skipped      bigint      NOT NULL DEFAULT 0,
    failed       bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    note         text
);

-- What a job did with each dead letter; `sent` rows are written once the broker acknowledged the
-- re-published message, so a resumed job never sends them again.
CREATE TABLE job_items (
    job_id          uuid        NOT NULL REFERENCES jobs (job_id),
    dead_letter_id  text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('sent', 'skipped', 'failed')),
    reason          text,
    at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, dead_letter_id)
);
CREATE INDEX job_items_sent ON job_items (dead_letter_id) WHERE outcome = 'sent';

-- Dead letters set aside: parked (held until unparked) or discarded (never replayed), with why.
CREATE TABLE dispositions (
    dead_letter_id  text PRIMARY KEY,
    action          text        NOT NULL CHECK (action IN ('parked', 'discarded')),
    reason          text        NOT NULL,
    operator        text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);

-- Every park, unpark and discard, append-only.
CREATE TABLE disposition_log (
    id              bigserial PRIMARY KEY,
    dead_letter_id  text        NOT NULL,
    action          text        NOT NULL,
    reason          text        NOT NULL,
    operator        text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
