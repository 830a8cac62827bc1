-- Flow 6: the messages of an application's conversation as Brain projected them back into
-- Firestore: accepted (sent) or rejected, the recipient's receipts (delivered, read; never
-- backwards) and the Teams relay of staff messages that asked for it. A row is created by the
-- message's first event, or by its relay outcome if that comes first (status then still NULL).
CREATE TABLE messages (
    tenant_id         text        NOT NULL,
    application_id    text        NOT NULL,
    message_id        text        NOT NULL,
    sender_role       text,
    author_id         text,
    status            text CHECK (status IN ('sent', 'delivered', 'read', 'rejected', 'deleted')),
    rejection_code    text,
    rejection_reason  text,
    sent_at           timestamptz,
    delivered_at      timestamptz,
    read_at           timestamptz,
    relay_requested   boolean     NOT NULL DEFAULT false,
    relay_status      text CHECK (relay_status IN ('pending', 'relayed', 'failed', 'skipped')),
    relay_message_id  text,
    relay_web_url     text,
    relay_reason      text,
    -- The update time (ns) of the app's last write applied: older writes change nothing.
    version           bigint      NOT NULL DEFAULT 0,
    revision          bigint      NOT NULL DEFAULT 0,
    correlation_id    text        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, application_id, message_id)
);
GRANT SELECT, INSERT, UPDATE ON messages TO brain_projection_writer;

CREATE VIEW read_api.messages AS
    SELECT tenant_id, application_id, message_id, sender_role, author_id, status, rejection_code, rejection_reason,
           sent_at, delivered_at, read_at, relay_requested, relay_status, relay_message_id, relay_web_url, relay_reason,
           version, revision, updated_at
    FROM projection_writer.messages;
GRANT SELECT ON read_api.messages TO brain_gateway_reader;
