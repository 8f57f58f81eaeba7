"""Where one scorer's time goes, with the queue write and without it (an experiment, not the product).

Needs the phase timers of ``o1_write_upper_bound.patch`` (see ``README.md`` here): apply it to
a scratch clone and run this with that clone first on ``PYTHONPATH`` (and ``PYTHONSAFEPATH=1``,
so that ``python -m`` in the scorer processes does not put the current directory first)::

    git clone -q . /tmp/o1 && git -C /tmp/o1 apply benchmarks/experiments/o1_write_upper_bound.patch
    PYTHONSAFEPATH=1 PYTHONPATH=/tmp/o1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/experiments/scorer_phases.py 2000000

Starts its own Kafka broker and redis-server (or uses ``KAFKA_BOOTSTRAP_SERVERS`` /
``REDIS_URL``), produces N raw 128-d items to a 2-partition topic, then times one
``activestream scorer --burst`` over them twice: writing each batch to Redis as the patch
does (two strings per batch), then with ``EXP_NOWRITE=1`` (scored, nothing written). Each
run prints the scorer's per-item microseconds in each phase.
"""

from __future__ import annotations

import subprocess
import sys
import time

from activestream.schemas import Item
from activestream.streams.topics import MODEL_KEY, Topics
from benchmarks.throughput import Synthetic, _bus, _cli, _env, _prefix, _produce_held, fit_version, services


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2_000_000
    data = Synthetic(128, 10, 0)
    X = data.X(n)
    mv, _ = fit_version(X[:5000], data.y(X[:5000]), 1)
    ids = [f"item-{i:07d}" for i in range(n)]
    payloads = [Item(i, x).encode(raw=True) for i, x in zip(ids, X, strict=True)]
    with services() as sv:
        bus = _bus(sv)
        try:
            for extra in ({}, {"EXP_NOWRITE": "1"}):
                prefix = _prefix("p")
                topics = Topics(prefix)
                bus.ensure_topics(topics.all())
                bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
                bus.flush()
                txn, _ = _produce_held(sv, topics.items, payloads, [i.encode() for i in ids])
                txn.commit_transaction(60)
                t0 = time.perf_counter()
                env = _env(sv, prefix) | extra  # (as is: _env's settings become ACTIVESTREAM_* names)
                p = subprocess.run(_cli("scorer", "--burst", "--batch-size", "1000"), env=env, capture_output=True, text=True)
                phases = [line for line in p.stderr.splitlines() if "PHASES" in line or "consumed" in line] or p.stderr.splitlines()[-5:]
                print("no write" if extra else "O(1) write", f"wall {time.perf_counter() - t0:.2f}s", *phases, sep="\n  ", flush=True)
        finally:
            bus.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
