-- Flow 4's staff actions on tasks: assignment (the per-staff inbox), a request for a document
-- (awaiting_upload with a note) and the rejection of the document under review (back to
-- awaiting_upload with the reason, until a different document is attached in Ventures).
ALTER TABLE tasks
    ADD COLUMN assignee          text,
    ADD COLUMN upload_requested  boolean NOT NULL DEFAULT false,
    ADD COLUMN request_note      text,
    ADD COLUMN rejected_item_id  text;
ALTER TABLE tasks DROP CONSTRAINT tasks_document_state_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_document_state_check CHECK (document_state IN ('received', 'stored', 'rejected'));
CREATE INDEX tasks_assignee ON tasks (tenant_id, assignee) WHERE state <> 'completed';

CREATE OR REPLACE VIEW read_api.tasks AS
    SELECT tenant_id, task_id, application_id, loan_id, condition_id, title, state, state_since, condition_status,
           condition_version, document_id, document_name, document_state, document_item_id, document_at,
           rejection_reason, revision, correlation_id, updated_at, assignee, request_note
    FROM projection_writer.tasks;

-- The staff inbox, now with whose work it is (NULL: unassigned).
CREATE OR REPLACE VIEW read_api.staff_inbox AS
    SELECT t.tenant_id, t.task_id, t.application_id, t.title, t.state, t.state_since, t.document_name, t.document_state,
           tm.due_at, tm.fired_at AS breached_at, t.updated_at, t.assignee
    FROM projection_writer.tasks t
    LEFT JOIN LATERAL (
        SELECT due_at, fired_at FROM projection_writer.task_timers x
        WHERE x.tenant_id = t.tenant_id AND x.task_id = t.task_id AND x.state = t.state AND x.cancelled_at IS NULL
        ORDER BY x.created_at DESC LIMIT 1
    ) tm ON true
    WHERE t.state <> 'completed';
