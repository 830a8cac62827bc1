"""Confluent's Python client reads LoanStatusChanged records that Brain wrote.

Consumes COUNT records from TOPIC (a new consumer group, from the earliest offset) with
confluent-kafka's Consumer and decodes each value with its AvroDeserializer, which fetches the
writer schema from Brain's schema registry by the id in the Confluent wire-format frame.

Prints every record as a JSON line {"key": ..., "schema_id": ..., "value": {...}} in the order
read, with timestamps as epoch milliseconds and schema_id taken from the frame, for
tests/it/interop.rs to compare with what Brain sent. Exits non-zero (reason on stderr) if COUNT
records do not arrive within TIMEOUT_S seconds (default 60) or one does not decode.

Usage: confluent_consume.py BOOTSTRAP REGISTRY_URL TOPIC COUNT [TIMEOUT_S]
"""

import json
import struct
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def as_json(value):
    """The value with datetimes (fastavro's timestamp-millis) as epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def main() -> None:
    bootstrap, registry_url, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout_s = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"confluent-interop-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    read = 0
    try:
        while read < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    sys.exit(f"fatal consumer error: {msg.error()}")
                print(f"consumer error (continuing): {msg.error()}", file=sys.stderr)
                continue
            raw = msg.value()
            magic, schema_id = struct.unpack(">bI", raw[:5])
            if magic != 0:
                sys.exit(f"offset {msg.offset()}: magic byte {magic}, expected 0")
            value = deserialize(raw, SerializationContext(msg.topic(), MessageField.VALUE))
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            print(json.dumps({"key": key, "schema_id": schema_id, "value": as_json(value)}), flush=True)
            read += 1
    finally:
        consumer.close()
    if read < count:
        sys.exit(f"read {read} of {count} records from {topic} within {timeout_s} s")


if __name__ == "__main__":
    main()
