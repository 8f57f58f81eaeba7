"""Redis's CPU per item streamed through a full capped pool, without Kafka or a scorer process (an experiment).

Streams ``N`` random items (128-d float32, ids ``item-<batch>-<j>``, uniform scores, batches of 1,000)
through a pool of ``CAPACITY`` with a reservoir of a tenth of it, on a redis-server of its own. Each batch
is filtered first by the thresholds the last enqueue answered, as the scorer's admission does, so Redis sees
what a scorer would send. Once the pool is full it measures, per item streamed: Redis's CPU (``INFO cpu``),
each command's time inside the enqueue script (``INFO commandstats``), and the peak ``used_memory`` over the
``used_memory`` at the fill. Prints JSON::

    .venv/bin/python benchmarks/experiments/pool_redis_cost.py 1500000 300000

``LUA_DIR=dir`` reads the queue's Lua scripts from ``dir`` instead of the package (to time another version
of them against the same Python side); meta fields starting ``x_`` (counters an experimental script may
keep) are printed too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import redis

if os.environ.get("LUA_DIR"):
    import activestream.rankedqueue.scripts as scripts

    scripts._read = lambda name: (Path(os.environ["LUA_DIR"]) / f"{name}.lua").read_text(encoding="utf-8")

from activestream.devstack.redis_server import LocalRedis
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import PoolLimits, sampling_keys_of_bytes

BATCH = 1000


def main(n: int, capacity: int) -> dict[str, object]:
    srv = LocalRedis().start()
    try:
        r = redis.Redis.from_url(srv.url)
        q = RankedQueue(r, QueueKeys("bench"), pool=PoolLimits(capacity, capacity // 10, None))
        rng = np.random.default_rng(0)
        X = rng.standard_normal((BATCH, 128)).astype(np.float32)

        def cpu() -> float:
            info = r.info("cpu")
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

        pool_thr, res_thr = -np.inf, np.inf
        at_full: tuple[float, dict, int, float, int] | None = None
        for b in range(n // BATCH):
            ids = [f"item-{b}-{j}" for j in range(BATCH)]
            s = rng.random(BATCH)
            if at_full is None and q.depth() >= capacity:
                at_full = (cpu(), r.info("commandstats"), b, time.perf_counter(), int(r.info("memory")["used_memory"]))
            keep = s > pool_thr
            if res_thr < np.inf:
                keep |= sampling_keys_of_bytes([i.encode() for i in ids]) < res_thr
            else:
                keep[:] = True
            idx = np.flatnonzero(keep)
            if len(idx) == 0:
                continue
            p = q.add_nowait([ids[j] for j in idx], s[idx], X[idx])
            p.result()
            if p.thresholds is not None:
                pool_thr, res_thr = p.thresholds.pool, p.thresholds.reservoir
        if at_full is None:
            raise SystemExit("the pool never filled: stream more items than the capacity")
        c0, stats0, b0, t0, mem_full = at_full
        c1, stats1, t1 = cpu(), r.info("commandstats"), time.perf_counter()
        after = (n // BATCH - b0) * BATCH
        out: dict[str, object] = {
            "items_after_full": after,
            "redis_cpu_us_per_item": (c1 - c0) / after * 1e6,
            "wall_s": t1 - t0,
            "evicted": q.pool_stats()["evicted"],
            "depth": q.depth(),
        }
        for name, v in stats1.items():
            usec = v["usec"] - stats0.get(name, {}).get("usec", 0)
            calls = v["calls"] - stats0.get(name, {}).get("calls", 0)
            if usec > 0.01 * (c1 - c0) * 1e6:
                out[name] = {"us_per_item": round(usec / after, 3), "calls_per_item": round(calls / after, 4)}
        mem = r.info("memory")
        out["peak_over_full_memory"] = int(mem["used_memory_peak"]) / mem_full
        out["segments"] = r.hlen(q.k.segment_live)
        out["meta"] = {k.decode(): v.decode() for k, v in r.hgetall(q.k.meta).items() if k.startswith(b"x_")}
        return out
    finally:
        srv.stop()


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2])), indent=1))
