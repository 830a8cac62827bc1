-- Flow 4: the tasks of an application, one per Ventures condition (task id = condition id),
-- projected from the condition's changes and the document's progress. Either may arrive first
-- (three topics): a row is created by whichever comes first and completed by the others.
CREATE TABLE tasks (
    tenant_id          text        NOT NULL,
    task_id            text        NOT NULL,
    application_id     text        NOT NULL,
    loan_id            text        NOT NULL,
    condition_id       text        NOT NULL,
    title              text        NOT NULL DEFAULT '',
    state              text        NOT NULL CHECK (state IN ('open', 'awaiting_upload', 'pending_review', 'completed')),
    state_since        timestamptz NOT NULL,
    -- The condition as Ventures last said (version 0: not seen yet).
    condition_status   text,
    condition_version  bigint      NOT NULL DEFAULT 0,
    condition_item_id  text,
    -- The latest upload and how far it got: received (ingested), stored (in ShareFile).
    document_id        uuid,
    document_name      text,
    document_state     text CHECK (document_state IN ('received', 'stored')),
    document_item_id   text,
    document_at        timestamptz,
    rejection_reason   text,
    -- One more with every change applied: the event_log version of the task.
    revision           bigint      NOT NULL DEFAULT 0,
    correlation_id     text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, task_id)
);
CREATE INDEX tasks_application ON tasks (tenant_id, application_id);
GRANT SELECT, INSERT, UPDATE ON tasks TO brain_projection_writer;

CREATE VIEW read_api.tasks AS
    SELECT tenant_id, task_id, application_id, loan_id, condition_id, title, state, state_since, condition_status,
           condition_version, document_id, document_name, document_state, document_item_id, document_at,
           rejection_reason, revision, correlation_id, updated_at
    FROM projection_writer.tasks;
GRANT SELECT ON read_api.tasks TO brain_gateway_reader;
