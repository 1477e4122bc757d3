#!/usr/bin/env python3
"""Print ALM's metric changes as they happen: a Kafka consumer of `alm.metrics.changed`.

    pip install kafka-python
    python examples/subscriber.py --bootstrap kafka:9092 --group my-app

Each record is one change, keyed by work id, its value the JSON of
schemas/metric_changed.schema.json (docs/changes.md). The consumer group remembers where it
is: offsets are committed after each batch is handled, so a restart resumes there and nothing
is skipped. Delivery is at least once: after a crash the last batch comes again, so changes
are deduplicated by `event_id` (here in memory; a real application keeps the ids it applied,
or applies changes idempotently). Fields this script does not know are ignored, as the
contract asks: newer revisions of the event only add fields.
"""

import argparse
import json
import uuid
from collections import OrderedDict

from kafka import KafkaConsumer

NAMESPACE = uuid.UUID("3f0c5d4e-6a1b-5c2d-9e8f-7a6b5c4d3e2f")  # of event_id, docs/changes.md


def event_id(change: dict) -> str:
    """The change's id; events older than the field get it computed the documented way."""
    if "event_id" in change:
        return change["event_id"]
    return str(uuid.uuid5(NAMESPACE, f"{change['work_id']}|{change['source']}|{change['at']}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="alm.metrics.changed")
    parser.add_argument("--group", default="alm-example-subscriber")
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at the oldest change kept"
    )
    args = parser.parse_args()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,  # commit only what was handled
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        value_deserializer=lambda raw: json.loads(raw),
    )
    seen: OrderedDict[str, None] = OrderedDict()  # recent event ids, for redeliveries
    print(f"listening to {args.topic} as group {args.group}", flush=True)
    try:
        while True:
            batches = consumer.poll(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    change = record.value
                    eid = event_id(change)
                    if eid in seen:
                        continue  # delivered again after a restart: already handled
                    seen[eid] = None
                    if len(seen) > 100_000:
                        seen.popitem(last=False)
                    deltas = " ".join(f"{k} {v:+d}" for k, v in sorted(change["delta"].items()))
                    print(
                        f"{change['at']} {change['work_id']} {change['source']}: {deltas} "
                        f"(now {change['current']}, event {eid})",
                        flush=True,
                    )
            if batches:
                consumer.commit()  # after the batch is handled: at least once
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
