-- The newest borrower draft ventures-sync has pushed to Ventures, per application (flow 3): an
-- older change arriving late (a replay) is not pushed over a newer one.
CREATE TABLE draft_pushes (
    application_id  text PRIMARY KEY,
    loan_id         text        NOT NULL,
    update_time_ns  bigint      NOT NULL,
    pushed_at       timestamptz NOT NULL DEFAULT now()
);
