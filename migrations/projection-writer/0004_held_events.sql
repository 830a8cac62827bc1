-- Events of switched-off tenants (capability flags), parked in offset order per partition until
-- the tenant is switched on again; the partition's worker then handles them before new events of
-- that tenant (brain_runtime::flags). The gateway sees counts only.
CREATE TABLE held_events (
    consumer_group       text        NOT NULL,
    topic                text        NOT NULL,
    partition            integer     NOT NULL,
    source_offset        bigint      NOT NULL,
    integration          text        NOT NULL,
    tenant               text        NOT NULL,
    key                  bytea,
    value                bytea,
    headers              jsonb       NOT NULL DEFAULT '[]',
    source_timestamp_ms  bigint,
    held_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition, source_offset)
);
CREATE INDEX held_events_by_tenant ON held_events (consumer_group, topic, partition, tenant, source_offset);
GRANT SELECT, INSERT, DELETE ON held_events TO brain_projection_writer;

CREATE VIEW read_api.projection_writer_held_events AS
    SELECT integration, tenant, count(*) AS events, min(held_at) AS oldest_held_at
    FROM projection_writer.held_events GROUP BY integration, tenant;
GRANT SELECT ON read_api.projection_writer_held_events TO brain_gateway_reader;
