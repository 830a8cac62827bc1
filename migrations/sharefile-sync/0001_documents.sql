-- sharefile-sync's effect ledger: one row per document (the DocumentUploaded event id); a
-- document is uploaded into ShareFile at most once, and a redelivered event republishes the
-- stored outcome instead of copying again.
CREATE TABLE documents (
    document_id    uuid PRIMARY KEY,
    tenant_id      text        NOT NULL,
    application_id text        NOT NULL,
    task_id        text        NOT NULL,
    file_name      text        NOT NULL,
    -- copying: under way (or interrupted); stored: in ShareFile with the right MD5.
    state          text        NOT NULL CHECK (state IN ('copying', 'stored')),
    attempts       integer     NOT NULL DEFAULT 1,
    item_id        text,
    folder_id      text,
    folder_path    text,
    stored_name    text,
    md5_hex        text,
    size           bigint,
    -- uploaded: this service uploaded it; found: an earlier attempt's upload was found by name.
    how            text CHECK (how IN ('uploaded', 'found')),
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    stored_at      timestamptz
);

-- Folder ids by path, so a folder is looked up (or created) once.
CREATE TABLE folders (
    path       text PRIMARY KEY,
    folder_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
