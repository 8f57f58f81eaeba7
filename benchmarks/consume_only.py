"""The consume-only ceiling of the scorer benchmark, in a process of its own (like each scorer).

confluent-kafka with its default settings consumes ``TOPIC`` in ``consume(BATCH)`` calls,
touching each record's value and nothing else; prints one JSON object with the steady-state
rate (records between 10% and 90% of ``N``)::

    python benchmarks/consume_only.py BOOTSTRAP TOPIC N [BATCH]
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def main(argv: list[str]) -> int:
    from confluent_kafka import Consumer

    bootstrap, topic, n = argv[0], argv[1], int(argv[2])
    batch = int(argv[3]) if len(argv) > 3 else 1000
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-consume-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, samples = 0, []
    deadline = time.monotonic() + 300
    try:
        while got < n and time.monotonic() < deadline:
            msgs = c.consume(batch, 1.0)
            for m in msgs:
                if m.error() is None:
                    m.value()
                    got += 1
            if msgs:
                samples.append((time.perf_counter(), got))
    finally:
        c.close()
    a = next((s for s in samples if s[1] >= 0.1 * n), None)
    b = next((s for s in samples if s[1] >= 0.9 * n), None)
    rate = (b[1] - a[1]) / (b[0] - a[0]) if a and b and b[0] > a[0] else None
    overall = got / (samples[-1][0] - samples[0][0]) if len(samples) > 1 and samples[-1][0] > samples[0][0] else None
    print(json.dumps({"items_per_s": rate, "consumed": got, "overall_items_per_s": overall}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
