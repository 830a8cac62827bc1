-- Dead letters an operator has dealt with (replayed, parked or discarded), with their topic and
-- age, published to the gateway so that its dead-letter figures (and the alert on old dead
-- letters) count only those still waiting for someone.
CREATE TABLE handled (
    dead_letter_id    text PRIMARY KEY,
    topic             text        NOT NULL,
    dead_lettered_at  timestamptz NOT NULL,
    how               text        NOT NULL CHECK (how IN ('replayed', 'parked', 'discarded')),
    at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handled_topic ON handled (topic, dead_lettered_at);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS read_api;
CREATE VIEW read_api.dead_letters_handled AS
    SELECT dead_letter_id, topic, dead_lettered_at, how, at FROM dlq_replayer.handled;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
GRANT SELECT ON read_api.dead_letters_handled TO brain_gateway_reader;
