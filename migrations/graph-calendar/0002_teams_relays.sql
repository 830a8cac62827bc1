-- Flow 6: the Teams relay of staff messages that asked for it (relayToTeams), one row per
-- message, which is the effect ledger: Graph has no idempotency key for channel messages, so a
-- message posted before (post_attempts > 0 with no outcome recorded) is first looked for in the
-- channel by its marker, and posted again only when it is not there.
CREATE TABLE teams_relays (
    tenant_id         text        NOT NULL,
    application_id    text        NOT NULL,
    message_id        text        NOT NULL,
    -- Put in the posted content: how an earlier post is recognised.
    marker            text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('pending', 'relayed', 'failed', 'skipped')),
    team_id           text,
    channel_id        text,
    teams_message_id  text,
    web_url           text,
    reason            text,
    post_attempts     integer     NOT NULL DEFAULT 0,
    -- Posts that failed in Graph (5xx, network): RELAY_ATTEMPTS of them and the relay gives up.
    failures          integer     NOT NULL DEFAULT 0,
    first_attempt_at  timestamptz,
    correlation_id    text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, application_id, message_id)
);
