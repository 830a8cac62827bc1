-- firestore-change-listener's own schema (search_path = firestore_change_listener).

-- Each watched document as of the last change event the broker acknowledged: its update time
-- (the version changes are deduplicated by) and its fields (what the next change is compared
-- with). Written only after the event is acknowledged, so a restart re-emits at most the changes
-- that were not yet acknowledged, under the same event ids.
CREATE TABLE documents (
    path            text PRIMARY KEY,
    target          text        NOT NULL,
    update_time_ns  bigint      NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    fields          jsonb       NOT NULL,
    emitted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_target ON documents (target);

-- Per listen target: the resume token Firestore gave with the last consistent snapshot that was
-- fully emitted, so a restart asks only for what changed since (the emulator ignores it and
-- sends everything, which the documents table then deduplicates).
CREATE TABLE targets (
    target        text PRIMARY KEY,
    resume_token  bytea,
    read_time_ns  bigint,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
