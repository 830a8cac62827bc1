-- graph-calendar (flow 5): staff availability kept fresh from Microsoft Graph, the free slots
-- Brain computes from it, and one record per meeting with its Graph ids, join link and ICS.

-- The staff whose calendars are offered (GRAPH_CALENDAR__STAFF is upserted here at start-up;
-- rows may be added by hand too). Freshness: refreshed_at is when the last getSchedule that
-- succeeded was asked; refresh_error says why the latest one failed, if it did.
CREATE TABLE staff (
    staff_id                 text PRIMARY KEY,
    tenant_id                text        NOT NULL,
    active                   boolean     NOT NULL DEFAULT true,
    slot_minutes             integer     NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240),
    refreshed_at             timestamptz,
    horizon_end              timestamptz,
    refresh_error            text,
    refresh_failed_at        timestamptz,
    subscription_id          text,
    subscription_expires_at  timestamptz,
    subscription_error       text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Busy time: from Graph's getSchedule (source graph, replaced by each refresh) and from the
-- meetings Brain booked (source meeting, until the meeting is cancelled).
CREATE TABLE busy_intervals (
    staff_id    text        NOT NULL REFERENCES staff (staff_id),
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL CHECK (end_at > start_at),
    status      text        NOT NULL,
    source      text        NOT NULL CHECK (source IN ('graph', 'meeting')),
    meeting_id  uuid
);
CREATE INDEX busy_intervals_by_staff ON busy_intervals (staff_id, start_at);
CREATE UNIQUE INDEX busy_intervals_of_meetings ON busy_intervals (meeting_id) WHERE source = 'meeting';

-- Free time: working hours minus busy time, as maximal windows; a slot is a grid-aligned part
-- of a window (the grid is the staff member's slot_minutes).
CREATE TABLE free_slots (
    staff_id  text        NOT NULL REFERENCES staff (staff_id),
    start_at  timestamptz NOT NULL,
    end_at    timestamptz NOT NULL CHECK (end_at > start_at),
    PRIMARY KEY (staff_id, start_at)
);

CREATE TABLE meetings (
    meeting_id          uuid PRIMARY KEY,
    tenant_id           text        NOT NULL,
    staff_id            text        NOT NULL,
    booking_command_id  uuid        NOT NULL,
    -- Graph's transactionId of the create, derived from the booking command's id.
    transaction_id      text        NOT NULL,
    application_id      text,
    requested_by        text        NOT NULL,
    subject             text        NOT NULL,
    attendee_email      text        NOT NULL,
    attendee_name       text,
    start_at            timestamptz NOT NULL,
    end_at              timestamptz NOT NULL CHECK (end_at > start_at),
    state               text        NOT NULL CHECK (state IN ('pending', 'booked', 'conflict', 'failed', 'cancelled')),
    graph_event_id      text,
    ical_uid            text,
    join_url            text,
    web_link            text,
    organizer_email     text,
    -- The invitation as Brain renders it (RFC 5545), with its METHOD and SEQUENCE.
    sequence            integer     NOT NULL DEFAULT 0,
    ics                 text,
    ics_method          text,
    -- Why the meeting is in conflict or failed (shown on the console).
    error               text,
    -- Creates sent to Graph so far: a later try first looks for the event by its transactionId.
    create_attempts     integer     NOT NULL DEFAULT 0,
    resends             integer     NOT NULL DEFAULT 0,
    version             bigint      NOT NULL DEFAULT 0,
    correlation_id      text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meetings_booked_by_staff ON meetings (staff_id, start_at) WHERE state = 'booked';

-- The commands handled (book, cancel, resend): a redelivered one only republishes the outcome.
CREATE TABLE meeting_commands (
    command_id    uuid PRIMARY KEY,
    meeting_id    uuid        NOT NULL,
    action        text        NOT NULL,
    outcome       text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);

-- The Graph circuit breaker of each instance, and the events of tenants whose `graph`
-- capability is switched off (brain_runtime::breaker, brain_runtime::flags).
CREATE TABLE integration_health (
    integration    text        NOT NULL,
    instance       text        NOT NULL,
    breaker_state  text        NOT NULL CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    changed_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration, instance)
);

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

-- The gateway's read-only views.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brain_gateway_reader') THEN
        CREATE ROLE brain_gateway_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS read_api;
GRANT USAGE ON SCHEMA read_api TO brain_gateway_reader;
CREATE VIEW read_api.calendar_staff AS
    SELECT staff_id, tenant_id, active, slot_minutes, refreshed_at, horizon_end, refresh_error, refresh_failed_at
    FROM graph_calendar.staff;
CREATE VIEW read_api.calendar_free_slots AS
    SELECT f.staff_id, s.tenant_id, f.start_at, f.end_at
    FROM graph_calendar.free_slots f JOIN graph_calendar.staff s USING (staff_id);
CREATE VIEW read_api.calendar_meetings AS
    SELECT meeting_id, tenant_id, staff_id, application_id, requested_by, subject, attendee_email, attendee_name, start_at, end_at,
           state, graph_event_id, ical_uid, join_url, web_link, sequence, ics, ics_method, error, create_attempts, resends, version,
           correlation_id, created_at, updated_at
    FROM graph_calendar.meetings;
CREATE VIEW read_api.graph_calendar_integration_health AS
    SELECT integration, instance, breaker_state, changed_at, updated_at FROM graph_calendar.integration_health;
CREATE VIEW read_api.graph_calendar_held_events AS
    SELECT integration, tenant, count(*) AS events, min(held_at) AS oldest_held_at
    FROM graph_calendar.held_events GROUP BY integration, tenant;
GRANT SELECT ON read_api.calendar_staff, read_api.calendar_free_slots, read_api.calendar_meetings,
    read_api.graph_calendar_integration_health, read_api.graph_calendar_held_events TO brain_gateway_reader;
