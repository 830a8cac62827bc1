"""The peer of `make bench` figure (3): the straightforward Python consumer a team would write for
the job Brain's runtime does in figure (2).

confluent-kafka `Consumer` + `AvroDeserializer` (schema registry) + psycopg 3. Per message, in one
PostgreSQL transaction: the processed-event record and one upsert. Commit-after-effect: automatic
offset storing is off, the offset is stored only after the transaction commits, and stored offsets
are committed by the client every second and on close (the same discipline as Brain's runtime).

Reads exactly --count records from the earliest offset in a new group, then prints one JSON line:
{"records": N, "seconds": S, "records_per_sec": R}, timed from the first record to the last effect.
"""

import argparse
import json
import sys
import time
import uuid

import psycopg
from confluent_kafka import Consumer
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "registry", "dsn", "schema", "topic", "group"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
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
            # As Brain's runtime sets them (group joins are faster on the dev broker).
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 2000,
        }
    )
    consumer.subscribe([args.topic])
    handled, first, last_seen = 0, None, time.monotonic()
    with psycopg.connect(args.dsn, autocommit=True, options=f"-c search_path={args.schema}") as conn:
        while handled < args.count:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last_seen > args.idle_timeout:
                    print(f"peer: no record for {args.idle_timeout} s after {handled}", file=sys.stderr)
                    return 1
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
        seconds = time.perf_counter() - first
    consumer.close()
    print(json.dumps({"records": handled, "seconds": seconds, "records_per_sec": handled / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
