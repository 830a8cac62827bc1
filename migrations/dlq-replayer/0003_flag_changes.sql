-- Every capability-flag and panic-mode change (the compacted flags topic keeps only the latest per
-- key): who, when, why. Written by the operator commands and by `dlq-replayer serve`, which follows
-- the flags topic so automatic panic-mode switches are recorded too; the change id makes both
-- writes one row.
CREATE TABLE flag_changes (
    change_id    uuid        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('flag', 'panic')),
    integration  text        NOT NULL,
    tenant       text,
    state        text        NOT NULL,
    actor        text        NOT NULL,
    reason       text        NOT NULL,
    changed_at   timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flag_changes_by_time ON flag_changes (changed_at DESC);

-- The history, for the gateway's admin API (the role and read_api exist since 0002).
CREATE VIEW read_api.flag_changes AS
    SELECT change_id, kind, integration, tenant, state, actor, reason, changed_at FROM dlq_replayer.flag_changes;
GRANT SELECT ON read_api.flag_changes TO brain_gateway_reader;
