"""The capped pool under a long stream (``bench throughput --sections pool``): memory, steady throughput, CPU per item.

``pool_items`` 128-d float32 items (raw layout) go to one topic in a held Kafka transaction,
produced in chunks (never all in memory); the consume-only ceiling reads that topic, then one
``activestream scorer`` process with ``ACTIVESTREAM_POOL_CAPACITY=pool_capacity`` streams it into
the pool. Sampled every half second: items streamed (the pool's counter, added as the scorer
commits), Redis ``used_memory`` and the queue depth, and the whole machine's CPU (broker, Redis,
scorer and whatever else runs: the report says what the load average was).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import Item, ModelVersion
from activestream.streams.topics import MODEL_KEY, Topics
from activestream.supervisor import stop_processes
from benchmarks import profiling
from benchmarks.consume_only import machine_cpu

CHUNK = 50_000  # items generated and produced at a time
JIFFY_US = 1e6 / os.sysconf("SC_CLK_TCK")


def produce_stream(bootstrap: str, topic: str, n: int, data: Any) -> tuple[Any, float]:
    """``n`` raw-layout items in a transaction left open (see ``throughput._produce_held``); ``(producer, items/s)``."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4().hex}", "enable.idempotence": True,
                  "acks": "all", "linger.ms": 5, "compression.type": "lz4", "partitioner": "murmur2_random",
                  "transaction.timeout.ms": 900_000})
    p.init_transactions(60)
    p.begin_transaction()
    t0 = time.perf_counter()
    for lo in range(0, n, CHUNK):
        X = data.X(min(CHUNK, n - lo))
        for j, x in enumerate(X):
            iid = f"item-{lo + j:08d}"
            while True:
                try:
                    p.produce(topic, value=Item(iid, x).encode(binary=True, raw=True), key=iid.encode())
                    break
                except BufferError:
                    p.poll(0.05)
    p.flush(300)
    rate = n / (time.perf_counter() - t0)
    os.sync()  # (the broker's dirty page cache, see throughput._produce_held)
    return p, rate


def bench_pool(sv: Any, cfg: Any, data: Any, mv: ModelVersion, log: Callable[[str], None], *, tools: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    """The pool section: see the module doc. Keys as issue 21 names them.

    ``tools``: the throughput harness's helpers ``bus``, ``cli``, ``delete_topics``, ``env``, ``consume_only``
    (passed in: this module must not import the harness, which imports it).
    """
    _bus, _cli, _delete_topics, _env, consume_only = (tools[k] for k in ("bus", "cli", "delete_topics", "env", "consume_only"))
    n, cap = cfg.pool_items, cfg.pool_capacity
    prefix = f"bp{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    bus = _bus(sv)
    q = RankedQueue(redis.Redis.from_url(sv.redis_url), QueueKeys(prefix))
    out: dict[str, Any] = {"pool_capacity": cap, "pool_items_streamed": None, "batch_size": cfg.batch_size, "layout": "raw", "n_features": 128,
                           "loadavg_start": os.getloadavg()}
    try:
        bus.ensure_topics(topics.all())
        bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
        bus.flush()
        txn, out["produce_items_per_s"] = produce_stream(sv.kafka, topics.items, n, data)
        txn.commit_transaction(120)
        log(f"  produced {n:,} items at {out['produce_items_per_s']:,.0f}/s")
        co = consume_only(sv, topics.items, n, cfg.batch_size)
        out["consume_only_items_per_s"] = co.get("items_per_s")
        busy = co.get("machine_cpu_busy_fraction")
        out["machine_cpu_us_per_item_consume_only"] = (busy * os.cpu_count() * 1e6 / co["items_per_s"]  # type: ignore[operator]
                                                       if busy is not None and co.get("items_per_s") else None)
        cores = co.get("process_cpu_cores")
        out["consume_only_process_cpu_us_per_item"] = cores * 1e6 / co["items_per_s"] if cores is not None and co.get("items_per_s") else None
        log(f"  consume-only: {out['consume_only_items_per_s']} items/s, {out['machine_cpu_us_per_item_consume_only']} us machine CPU per item")
        base_mem = int(q.r.info("memory")["used_memory"])
        env = _env(sv, prefix, pool_capacity=str(cap))
        # (t, streamed, used_memory, depth, machine busy jiffies, scorer process CPU s, Redis CPU s)
        samples: list[tuple[float, int, int, int, float, float, float]] = []
        with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
            logf = Path(tmp) / "scorer.log"
            with logf.open("wb") as fh:
                proc = subprocess.Popen(_cli("scorer", "--batch-size", str(cfg.batch_size)), env=env, stdout=fh, stderr=subprocess.STDOUT)
            t0 = time.perf_counter()
            deadline = time.monotonic() + cfg.pool_timeout
            at_full: dict[str, Any] | None = None  # Redis's commandstats once the pool is full, and the streamed count then
            spy = None
            while time.monotonic() < deadline and proc.poll() is None:
                st = q.pool_stats()
                samples.append((time.perf_counter() - t0, st["streamed"], int(q.r.info("memory")["used_memory"]), q.depth(), machine_cpu()[0],
                                process_cpu(proc.pid), redis_cpu(q.r)))
                if at_full is None and samples[-1][3] >= cap:
                    at_full = {"streamed": st["streamed"], "stats": q.r.info("commandstats")}
                    if cfg.profile_dir:  # where the scorer's time goes with the pool full
                        Path(cfg.profile_dir).mkdir(parents=True, exist_ok=True)
                        spy = profiling.start(proc.pid, Path(cfg.profile_dir) / "pool-scorer.txt")
                if st["streamed"] >= n:
                    break
                time.sleep(0.5)
            if at_full is not None:
                out["redis_commands_per_item_after_full"] = command_costs(at_full["stats"], q.r.info("commandstats"),
                                                                          q.pool_stats()["streamed"] - at_full["streamed"])
            if spy is not None:
                problem = profiling.stop(spy)
                raw = Path(cfg.profile_dir) / "pool-scorer.txt"
                out["scorer_profile_after_full"] = {"error": problem} if problem else profiling.summarize(raw.read_text())
            stop_processes([proc], timeout=60)
            tail = logf.read_text(errors="replace")[-2000:]
        st = q.pool_stats()
        out["pool_items_streamed"] = st["streamed"]
        out["pool_stats"] = st
        full = next((k for k, s in enumerate(samples) if s[3] >= cap), None)
        if full is None or samples[-1][1] <= samples[full][1]:
            out["error"] = f"the pool never filled or nothing streamed after it did; scorer log tail: {tail}"
            return out
        a, b = samples[full], samples[-1]
        out["seconds_to_fill"] = a[0]
        out["redis_used_memory_at_full_bytes"] = a[2]
        out["redis_used_memory_before_bytes"] = base_mem
        out["redis_bytes_per_pending_item"] = (a[2] - base_mem) / cap
        out["redis_used_memory_peak_after_full_bytes"] = max(s[2] for s in samples[full:])
        out["memory_bound_bytes"] = 1.15 * cap * out["redis_bytes_per_pending_item"] + base_mem
        out["depth_after_full"] = sorted({s[3] for s in samples[full:]})[:5]
        out["scorer_steady_items_per_s"] = (b[1] - a[1]) / (b[0] - a[0])
        out["machine_cpu_us_per_item_scorer"] = (b[4] - a[4]) * JIFFY_US / (b[1] - a[1])
        # The machine's figure holds whatever else ran (other users' processes too); these two do not.
        out["scorer_process_cpu_us_per_item"] = (b[5] - a[5]) * 1e6 / (b[1] - a[1])
        out["redis_cpu_us_per_item"] = (b[6] - a[6]) * 1e6 / (b[1] - a[1])
        if out["consume_only_items_per_s"]:
            out["scorer_vs_consume_only"] = out["scorer_steady_items_per_s"] / out["consume_only_items_per_s"]
        step = max(1, len(samples) // 100)
        out["memory_curve"] = [{"t_s": round(s[0], 1), "streamed": s[1], "used_memory": s[2], "depth": s[3]} for s in samples[::step]]
        out["loadavg_end"] = os.getloadavg()
        log(f"  pool of {cap:,} full after {a[0]:.0f}s at {a[2] / 2**20:.0f} MiB ({out['redis_bytes_per_pending_item']:.0f} B/item); "
            f"steady {out['scorer_steady_items_per_s']:,.0f} items/s, peak {out['redis_used_memory_peak_after_full_bytes'] / 2**20:.0f} MiB, "
            f"{out['machine_cpu_us_per_item_scorer']:.1f} us machine CPU per item")
        return out
    finally:
        q.clear()
        _delete_topics(bus, prefix)
        bus.close()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * JIFFY_US / 1e6


def command_costs(before: dict[str, Any], after: dict[str, Any], items: int) -> dict[str, Any]:
    """Redis's work per streamed item between two ``INFO commandstats``: calls and microseconds per item, by command.

    Commands a script runs count under their own names (and under ``evalsha``/``fcall`` too).
    """
    out: dict[str, Any] = {}
    for name, a in after.items():
        b = before.get(name, {"calls": 0, "usec": 0})
        calls, usec = a["calls"] - b["calls"], a["usec"] - b["usec"]
        if calls and items:
            out[name.removeprefix("cmdstat_")] = {"calls_per_item": calls / items, "us_per_item": usec / items, "us_per_call": usec / calls}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["us_per_item"]))


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def depth_is_cap(out: dict[str, Any]) -> bool:
    """After the pool first filled, every depth sampled was the capacity."""
    return bool(np.all(np.array(out.get("depth_after_full") or [0]) == out["pool_capacity"]))
