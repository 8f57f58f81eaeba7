"""How many segments a full pool keeps when small micro-batches stream in and a labeler takes the top.

    .venv/bin/python benchmarks/experiments/segment_fragmentation.py --capacity 20000 --batch 30 --rounds 12000 --labels 1
    .venv/bin/python benchmarks/experiments/segment_fragmentation.py ... --segment-rows 0   # one segment per call, never merged

A soak of the local stack (150 items/s, ~3 labels/s) saw a re-rank's time grow from 8.7 to 41 ms a version as mid-ranked
rows pinned their segments (5 live rows a segment after 40 minutes). This replays that pattern against a local
redis-server: batches of random-scored 128-d float32 rows into a capped pool, ``--labels`` of the top items labeled per
round. Five times during the run it prints the segments, the live rows a segment, Redis ``used_memory`` per pending item
and the time of two re-ranks (the first fills the segment cache, the second reads through it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `activestream` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from activestream.devstack.redis_server import LocalRedis  # noqa: E402
from activestream.rankedqueue import QueueKeys, RankedQueue  # noqa: E402
from activestream.rankedqueue.keys import SEGMENT_ROWS  # noqa: E402
from activestream.rankedqueue.pool import PoolLimits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=30, help="items per enqueue call")
    ap.add_argument("--rounds", type=int, default=12_000)
    ap.add_argument("--labels", type=int, default=1, help="top items labeled per round")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--segment-rows", type=int, default=SEGMENT_ROWS, help="QueueWriter.segment_rows (0: one segment per call)")
    args = ap.parse_args(argv)
    srv = LocalRedis(admin=True).start()
    try:
        r = redis.Redis.from_url(srv.url)
        q = RankedQueue(r, QueueKeys("frag"), pool=PoolLimits(args.capacity), segment_cache_bytes=1 << 30, segment_rows=args.segment_rows)
        rng = np.random.default_rng(0)
        streamed, add_s = 0, 0.0
        for rnd in range(args.rounds):
            ids = [f"i{streamed + j}" for j in range(args.batch)]
            streamed += args.batch
            t = time.perf_counter()
            q.add(ids, rng.random(args.batch), rng.standard_normal((args.batch, args.dim)).astype(np.float32))
            add_s += time.perf_counter() - t
            if args.labels:
                top = [m.decode() for m in r.zrevrange(q.k.pending, 0, args.labels - 1)]
                for item, _ in q.claim(top, "ann", 300.0):
                    q.mark_labeled(item, f"L-{item}")
            if rnd % max(1, args.rounds // 5) == 0 or rnd == args.rounds - 1:
                segs, depth = r.hlen(q.k.segment_width), r.zcard(q.k.pending)
                mem = int(r.info("memory")["used_memory"])
                times = []
                for col in (0, 1):
                    t = time.perf_counter()
                    q.rerank(lambda i, X, c=col: X[:, c].astype(np.float64))
                    times.append(time.perf_counter() - t)
                print(f"streamed {streamed:9,d}  pending {depth:7,d}  segments {segs:6,d}  rows/segment {depth / max(segs, 1):7.1f}  "
                      f"used_memory {mem / 2**20:6.1f} MB ({mem / max(depth, 1):5.0f} B/pending)  "
                      f"re-rank {times[0] * 1000:6.1f} / {times[1] * 1000:6.1f} ms  add {add_s * 1e6 / (rnd + 1):5.0f} us/call", flush=True)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
