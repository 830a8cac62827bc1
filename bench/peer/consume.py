"""The peers of `make bench` figure (3): the Python consumers a team would write for the job Brain's
runtime does in figure (2), one record at a time (--batch-size 1) or in batches (--batch-size 500).

confluent-kafka `Consumer` + `AvroDeserializer` (schema registry) + psycopg 3. Commit-after-effect
in both: automatic offset storing is off, offsets are stored only after the transaction that made
their effect commits, and stored offsets are committed by the client every second and on close
(the same discipline as Brain's runtime).

- One at a time: per message, in one PostgreSQL transaction, the processed-event record and one
  upsert.
- Batched: `consume(num_messages=N)`, then for the whole batch one transaction with the same two
  set-wise statements as Brain's (bench/src/throughput.rs `apply_effect`): the processed-event
  records of every event id (`INSERT ... SELECT unnest(...) RETURNING`), then one `UNNEST` upsert
  of the newest fresh version of each loan; then the offsets of the batch are stored.

Reads exactly --count records from the earliest offset in a new group, then prints one JSON line:
{"records": N, "seconds": S, "records_per_sec": R}, timed from the first record to the last effect.
"""

import argparse
import json
import sys
import time
import uuid

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

RECORD_PROCESSED = (
    "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
)
# The same statement as bench/src/throughput.rs UPSERT.
UPSERT = """INSERT INTO loans (application_id, loan_id, status, version) VALUES (%s, %s, %s, %s)
     ON CONFLICT (application_id) DO UPDATE SET loan_id = EXCLUDED.loan_id, status = EXCLUDED.status,
         version = EXCLUDED.version, updated_at = now()
     WHERE loans.version < EXCLUDED.version"""
# The same statements as bench/src/throughput.rs RECORD_PROCESSED_MANY and UPSERT_MANY.
RECORD_PROCESSED_MANY = """INSERT INTO processed_events (consumer, event_id)
     SELECT %s, id FROM unnest(%s::uuid[]) AS t(id)
     ON CONFLICT DO NOTHING RETURNING event_id"""
UPSERT_MANY = """INSERT INTO loans (application_id, loan_id, status, version)
     SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
     ON CONFLICT (application_id) DO UPDATE SET loan_id = EXCLUDED.loan_id, status = EXCLUDED.status,
         version = EXCLUDED.version, updated_at = now()
     WHERE loans.version < EXCLUDED.version"""


def one_at_a_time(args, consumer, deserialize, conn):
    handled, first, last_seen = 0, None, time.monotonic()
    while handled < args.count:
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last_seen > args.idle_timeout:
                print(f"peer: no record for {args.idle_timeout} s after {handled}", file=sys.stderr)
                return handled, None
            continue
        last_seen = time.monotonic()
        if msg.error():
            print(f"peer: consumer error: {msg.error()}", file=sys.stderr)
            continue
        if first is None:
            first = time.perf_counter()
        event = deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        with conn.transaction():
            inserted = conn.execute(RECORD_PROCESSED, (args.group, uuid.UUID(event["event_id"])))
            if inserted.rowcount == 1:
                loan = event["loan"]
                conn.execute(UPSERT, (event["application_id"], loan["loan_id"], loan["status"], event["version"]))
        consumer.store_offsets(msg)
        handled += 1
    return handled, first


def batched(args, consumer, deserialize, conn):
    handled, first, last_seen = 0, None, time.monotonic()
    while handled < args.count:
        # Up to batch-size messages; returns early (after 5 ms, Brain's linger) with fewer.
        msgs = consumer.consume(num_messages=args.batch_size, timeout=0.005 if first else 0.5)
        good = []
        for m in msgs:
            if m.error():
                print(f"peer: consumer error: {m.error()}", file=sys.stderr)
            else:
                good.append(m)
        msgs = good
        if not msgs:
            if time.monotonic() - last_seen > args.idle_timeout:
                print(f"peer: no record for {args.idle_timeout} s after {handled}", file=sys.stderr)
                return handled, None
            continue
        last_seen = time.monotonic()
        if first is None:
            first = time.perf_counter()
        events = [deserialize(m.value(), SerializationContext(m.topic(), MessageField.VALUE)) for m in msgs]
        ids = [uuid.UUID(e["event_id"]) for e in events]
        with conn.transaction():
            fresh = {row[0] for row in conn.execute(RECORD_PROCESSED_MANY, (args.group, ids))}
            newest = {}
            for event, event_id in zip(events, ids):
                if event_id in fresh:
                    app = event["application_id"]
                    if app not in newest or event["version"] > newest[app]["version"]:
                        newest[app] = event
            rows = list(newest.values())
            conn.execute(
                UPSERT_MANY,
                (
                    [e["application_id"] for e in rows],
                    [e["loan"]["loan_id"] for e in rows],
                    [e["loan"]["status"] for e in rows],
                    [e["version"] for e in rows],
                ),
            )
        # The next offset of each partition in the batch, stored after the commit.
        ends = {}
        for m in msgs:
            ends[(m.topic(), m.partition())] = m.offset() + 1
        consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()])
        handled += len(msgs)
    return handled, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "registry", "dsn", "schema", "topic", "group"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    args = parser.parse_args()

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            # As Brain's runtime sets them.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([args.topic])
    run = batched if args.batch_size > 1 else one_at_a_time
    with psycopg.connect(args.dsn, autocommit=True, options=f"-c search_path={args.schema}") as conn:
        handled, first = run(args, consumer, deserialize, conn)
        if first is None:
            return 1
        seconds = time.perf_counter() - first
    consumer.close()
    print(json.dumps({"records": handled, "seconds": seconds, "records_per_sec": handled / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
