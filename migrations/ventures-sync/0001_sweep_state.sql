-- Where the downstream sweep of the Ventures change feed has got to, per Ventures connection.
CREATE TABLE sweep_state (
    source      text PRIMARY KEY,
    cursor      text,
    last_seq    bigint,
    resyncs     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
