-- SLA timers of tasks (flow 4): one per task state that has an SLA, created in the transaction
-- that moves the task into the state and cancelled in the one that moves it out; fired once by
-- the timer loop (any instance: rows are claimed with SKIP LOCKED).
CREATE TABLE task_timers (
    timer_id      uuid PRIMARY KEY,
    tenant_id     text        NOT NULL,
    task_id       text        NOT NULL,
    application_id text       NOT NULL,
    state         text        NOT NULL,
    state_since   timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    fired_at      timestamptz,
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (fired_at IS NULL OR cancelled_at IS NULL)
);
CREATE INDEX task_timers_due ON task_timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX task_timers_task ON task_timers (tenant_id, task_id);
GRANT SELECT, INSERT, UPDATE ON task_timers TO brain_projection_writer;

-- The staff inbox: open work (tasks not completed) with its SLA, breaches first, then by due time.
CREATE VIEW read_api.staff_inbox AS
    SELECT t.tenant_id, t.task_id, t.application_id, t.title, t.state, t.state_since, t.document_name, t.document_state,
           tm.due_at, tm.fired_at AS breached_at, t.updated_at
    FROM projection_writer.tasks t
    LEFT JOIN LATERAL (
        SELECT due_at, fired_at FROM projection_writer.task_timers x
        WHERE x.tenant_id = t.tenant_id AND x.task_id = t.task_id AND x.state = t.state AND x.cancelled_at IS NULL
        ORDER BY x.created_at DESC LIMIT 1
    ) tm ON true
    WHERE t.state <> 'completed';
GRANT SELECT ON read_api.staff_inbox TO brain_gateway_reader;
