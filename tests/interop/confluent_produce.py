"""Confluent's Python client writes LoanStatusChanged records that Brain must be able to read.

Produces COUNT records to TOPIC with confluent-kafka's SerializingProducer and AvroSerializer,
which auto-registers schemas/ventures.loan.status-changed.v1.avsc in Brain's schema registry
under TOPIC-value (topic-name strategy) and frames each record in the Confluent wire format.
Keys are the application ids (plain UTF-8 strings). Timestamps are given as datetimes, so
fastavro's timestamp-millis conversion is part of what is tested.

Prints every delivered record as a JSON line {"key": ..., "value": {...}} with timestamps as epoch
milliseconds, in the order sent, for tests/it/interop.rs to compare with what Brain decodes.
Exits non-zero (reason on stderr) if any record is not acknowledged within 30 s.

Usage: confluent_produce.py BOOTSTRAP REGISTRY_URL TOPIC COUNT
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from confluent_kafka import SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import StringSerializer

SCHEMA = Path(__file__).resolve().parents[2] / "schemas/ventures.loan.status-changed.v1.avsc"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def record(i: int) -> dict:
    """Record i, varied enough to cover nulls, both union branches, large and negative longs and
    non-ASCII text."""
    millis = 1_767_225_600_123 + i * 60_001  # 2026-01-01T00:00:00.123Z onwards, odd millis
    at = EPOCH + timedelta(milliseconds=millis)
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "occurred_at": at,
        "tenant_id": "tenant-ü",
        "correlation_id": f"corr-{i}",
        "causation_id": None if i % 2 == 0 else f"cause-{i}",
        "producer": "confluent-python",
        "application_id": f"app-{i:03d}",
        "version": 2**40 + i,
        "source_seq": -i if i % 5 == 0 else i * 7,
        "loan": {
            "loan_id": f"L-{i}",
            "loan_number": f"2026-{i:04d}",
            "loan_type": ["504", "7A", "Commercial"][i % 3],
            "status": "Approved — final" if i % 4 == 0 else "Open",
            "status_changed_at": at - timedelta(milliseconds=1),
            "borrower_entity_id": f"B-{i}",
            "amount_requested_cents": 12_500_000 + i,
            "amount_approved_cents": None if i % 3 == 0 else 9_000_000_000 + i,
            "updated_at": at + timedelta(milliseconds=1),
        },
    }


def as_json(value):
    """The value with datetimes as epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def main() -> None:
    bootstrap, registry_url, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    registry = SchemaRegistryClient({"url": registry_url})
    producer = SerializingProducer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 30_000,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": AvroSerializer(registry, SCHEMA.read_text()),
        }
    )
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(f"{msg.key()}: {err}")

    records = [record(i) for i in range(count)]
    for r in records:
        producer.produce(topic, key=r["application_id"], value=r, on_delivery=on_delivery)
    pending = producer.flush(35)
    if pending or failures:
        sys.exit(f"{pending} records undelivered, {len(failures)} failed: {failures[:3]}")
    for r in records:
        print(json.dumps({"key": r["application_id"], "value": as_json(r)}))


if __name__ == "__main__":
    main()
