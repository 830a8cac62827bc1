-- qbo-mirror: the client companies (realms) it mirrors, their QBO bills, invoices and accounts,
-- the append-only transaction log, and the outbox of entity-changed events. Every applied change
-- writes its mirror row, its log row, the aggregates and its outbox event in one transaction.

CREATE TABLE realms (
    realm_id           text PRIMARY KEY,
    tenant_id          text        NOT NULL,
    advisor_id         text        NOT NULL,
    company_name       text,
    -- AES-256-GCM sealed (nonce | ciphertext | tag), bound to the realm id; the key is TOKEN_KEY.
    refresh_token      bytea       NOT NULL,
    state              text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
    state_reason       text,
    -- The next CDC's changedSince; NULL: a full (paged query) sync is due.
    cdc_since          timestamptz,
    next_sync_at       timestamptz NOT NULL DEFAULT now(),
    sync_requested_at  timestamptz,
    last_synced_at     timestamptz,
    last_error         text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX realms_due ON realms (next_sync_at) WHERE state = 'active';
CREATE INDEX realms_advisor ON realms (tenant_id, advisor_id);

CREATE TABLE processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE bills (
    realm_id       text        NOT NULL,
    id             text        NOT NULL,
    sync_token     bigint      NOT NULL,
    last_updated   timestamptz NOT NULL,
    deleted        boolean     NOT NULL DEFAULT false,
    vendor_id      text,
    vendor_name    text,
    doc_number     text,
    txn_date       date,
    due_date       date,
    total_cents    bigint      NOT NULL DEFAULT 0,
    balance_cents  bigint      NOT NULL DEFAULT 0,
    account_ids    text[]      NOT NULL DEFAULT '{}',
    account_names  text[]      NOT NULL DEFAULT '{}',
    -- Hygiene issues known from the bill itself (overdue and duplicates are decided when read).
    issues         text[]      NOT NULL DEFAULT '{}',
    raw            jsonb       NOT NULL,
    PRIMARY KEY (realm_id, id)
);
CREATE INDEX bills_open_by_due ON bills (due_date, balance_cents DESC) WHERE balance_cents > 0 AND NOT deleted;
CREATE INDEX bills_with_issues ON bills (realm_id) WHERE cardinality(issues) > 0 AND NOT deleted;
CREATE INDEX bills_by_doc ON bills (realm_id, vendor_id, doc_number) WHERE NOT deleted AND doc_number IS NOT NULL;

CREATE TABLE invoices (
    realm_id       text        NOT NULL,
    id             text        NOT NULL,
    sync_token     bigint      NOT NULL,
    last_updated   timestamptz NOT NULL,
    deleted        boolean     NOT NULL DEFAULT false,
    customer_id    text,
    customer_name  text,
    doc_number     text,
    txn_date       date,
    due_date       date,
    total_cents    bigint      NOT NULL DEFAULT 0,
    balance_cents  bigint      NOT NULL DEFAULT 0,
    raw            jsonb       NOT NULL,
    PRIMARY KEY (realm_id, id)
);

CREATE TABLE accounts (
    realm_id               text        NOT NULL,
    id                     text        NOT NULL,
    sync_token             bigint      NOT NULL,
    last_updated           timestamptz NOT NULL,
    deleted                boolean     NOT NULL DEFAULT false,
    name                   text,
    account_type           text,
    current_balance_cents  bigint      NOT NULL DEFAULT 0,
    active                 boolean     NOT NULL DEFAULT true,
    raw                    jsonb       NOT NULL,
    PRIMARY KEY (realm_id, id)
);

-- Open amounts per due date, kept with every applied change, so the digest sums a few rows per
-- client instead of every open bill and invoice.
CREATE TABLE open_by_due (
    realm_id       text    NOT NULL,
    entity         text    NOT NULL CHECK (entity IN ('Bill', 'Invoice')),
    due_date       date    NOT NULL,
    balance_cents  bigint  NOT NULL,
    documents      integer NOT NULL,
    PRIMARY KEY (realm_id, entity, due_date)
);

-- Non-deleted bills per (realm, vendor, doc number): more than one is a duplicate.
CREATE TABLE bill_doc_numbers (
    realm_id    text    NOT NULL,
    vendor_id   text    NOT NULL,
    doc_number  text    NOT NULL,
    bills       integer NOT NULL,
    PRIMARY KEY (realm_id, vendor_id, doc_number)
);

-- One row per applied change: the entity's old and new state. Never updated or deleted.
CREATE TABLE transaction_log (
    id            bigserial PRIMARY KEY,
    realm_id      text        NOT NULL,
    entity        text        NOT NULL,
    entity_id     text        NOT NULL,
    sync_token    bigint      NOT NULL,
    last_updated  timestamptz NOT NULL,
    operation     text        NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    old           jsonb,
    new           jsonb,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (realm_id, entity, entity_id, last_updated, sync_token)
);
CREATE INDEX transaction_log_recent ON transaction_log (realm_id, recorded_at);
CREATE FUNCTION transaction_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transaction_log is append-only';
END $$;
CREATE TRIGGER transaction_log_append_only BEFORE UPDATE OR DELETE ON transaction_log
    FOR EACH ROW EXECUTE FUNCTION transaction_log_is_append_only();

-- Entity-changed events written with the change, published (then deleted) by the outbox relay.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    key         text        NOT NULL,
    event       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The gateway's advisor views read through these.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS read_api;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
CREATE VIEW read_api.qbo_realms AS
    SELECT realm_id, tenant_id, advisor_id, company_name, state, state_reason, last_synced_at, last_error FROM qbo_mirror.realms;
CREATE VIEW read_api.qbo_bills AS
    SELECT realm_id, id, last_updated, deleted, vendor_id, vendor_name, doc_number, txn_date, due_date, total_cents, balance_cents, account_names, issues FROM qbo_mirror.bills;
CREATE VIEW read_api.qbo_accounts AS
    SELECT realm_id, id, deleted, name, account_type, current_balance_cents, active FROM qbo_mirror.accounts;
CREATE VIEW read_api.qbo_open_by_due AS
    SELECT realm_id, entity, due_date, balance_cents, documents FROM qbo_mirror.open_by_due;
CREATE VIEW read_api.qbo_bill_doc_numbers AS
    SELECT realm_id, vendor_id, doc_number, bills FROM qbo_mirror.bill_doc_numbers;
CREATE VIEW read_api.qbo_transaction_log AS
    SELECT realm_id, entity, entity_id, operation, recorded_at FROM qbo_mirror.transaction_log;
GRANT SELECT ON read_api.qbo_realms, read_api.qbo_bills, read_api.qbo_accounts, read_api.qbo_open_by_due,
    read_api.qbo_bill_doc_numbers, read_api.qbo_transaction_log TO brain_gateway_reader;
