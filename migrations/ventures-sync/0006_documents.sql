-- Flow 4: which application each loan belongs to (conditions name only their loan), and the
-- documents attached to Ventures conditions (one row per document: attached once).
CREATE TABLE loan_applications (
    loan_id        text PRIMARY KEY,
    application_id text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE condition_attachments (
    document_id       uuid PRIMARY KEY,
    tenant_id         text NOT NULL,
    application_id    text NOT NULL,
    loan_id           text NOT NULL,
    condition_id      text NOT NULL,
    item_id           text NOT NULL,
    -- The condition's version after the attachment; NULL when it was found already attached or
    -- closed (satisfied, waived) and left alone.
    condition_version bigint,
    outcome           text NOT NULL CHECK (outcome IN ('attached', 'already_attached', 'closed')),
    attached_at       timestamptz NOT NULL DEFAULT now()
);
