"""The consume-only ceiling of the scorer benchmark, in a process of its own (like each scorer).

confluent-kafka with its default settings consumes ``TOPIC`` in ``consume(BATCH)`` calls,
touching each record's value and nothing else; prints one JSON object with the steady-state
rate (records between 10% and 90% of ``N``), and over that window the whole machine's CPU
busy share (the broker included) and the cores this process used (librdkafka's threads
included)::

    python benchmarks/consume_only.py BOOTSTRAP TOPIC N [BATCH]
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over every core, from /proc/stat (zeros where there is none)."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    return float(sum(v) - v[3] - v[4]), float(sum(v))


def main(argv: list[str]) -> int:
    from confluent_kafka import Consumer

    bootstrap, topic, n = argv[0], argv[1], int(argv[2])
    batch = int(argv[3]) if len(argv) > 3 else 1000
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-consume-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, samples, cpu = 0, [], {}
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
                for mark in (0.1, 0.9):  # the machine's and this process's CPU over the same window as the rate
                    if mark not in cpu and got >= mark * n:
                        cpu[mark] = (*machine_cpu(), time.process_time(), time.perf_counter())
    finally:
        c.close()
    a = next((s for s in samples if s[1] >= 0.1 * n), None)
    b = next((s for s in samples if s[1] >= 0.9 * n), None)
    rate = (b[1] - a[1]) / (b[0] - a[0]) if a and b and b[0] > a[0] else None
    overall = got / (samples[-1][0] - samples[0][0]) if len(samples) > 1 and samples[-1][0] > samples[0][0] else None
    busy = cores = None
    if len(cpu) == 2 and cpu[0.9][1] > cpu[0.1][1]:
        busy = (cpu[0.9][0] - cpu[0.1][0]) / (cpu[0.9][1] - cpu[0.1][1])
        cores = (cpu[0.9][2] - cpu[0.1][2]) / (cpu[0.9][3] - cpu[0.1][3])  # this process, librdkafka's threads included
    print(json.dumps({"items_per_s": rate, "consumed": got, "overall_items_per_s": overall, "machine_cpu_busy_fraction": busy,
                      "process_cpu_cores": cores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
