"""A Redis outage is no verdict: the scorer pauses (back-off, /healthz says why) and resumes, losing and rejecting nothing.

Real redis-servers started per test on a port of its own (stopped and started again on that
port, with AOF), the in-memory bus for the stream.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from activestream.devstack.redis_server import LocalRedis
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.outage import FULL, UNREACHABLE, redis_outage
from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import Trainer
from activestream.schemas import Item, ModelVersion
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import SCORER_GROUP, Topics

pytestmark = pytest.mark.integration

N_FEATURES = 8


def model_version(v: int = 1) -> bytes:
    X = np.random.default_rng(v).standard_normal((60, N_FEATURES)).astype(np.float32)
    blob = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    return ModelVersion(version=v, onnx=blob, sha256=ModelVersion.digest(blob), classes=(0, 1)).encode()


def publish_items(bus: InMemoryBus, topics: Topics, start: int, n: int, width: int = N_FEATURES) -> None:
    X = np.random.default_rng(start).standard_normal((n, width)).astype(np.float32)
    for i in range(n):
        bus.publish(topics.items, Item(f"i{start + i}", X[i]).encode(binary=True), key=f"i{start + i}".encode())


def redis_in(tmp_path: Path, port: int | None = None) -> LocalRedis:
    """A redis-server with its append-only file in ``tmp_path``: started again on the same ``port``, the data as it was."""
    return LocalRedis(port, appendonly=True, data_dir=str(tmp_path / "redis")).start()


def scorer_on(server: LocalRedis, bus: InMemoryBus, topics: Topics) -> tuple[Scorer, RankedQueue]:
    # socket_timeout: a call to a Redis that stopped answering fails instead of hanging
    queue = RankedQueue(redis.Redis.from_url(server.url, socket_timeout=2), QueueKeys("outage"))
    return Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=50, commit_interval=0.0), queue


def steps_until(scorer: Scorer, cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        scorer.step(0.1)


def test_a_redis_restart_pauses_the_scorer_and_never_rejects_a_valid_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's trigger: Redis killed and restarted; the scorer dead-lettered the newest valid model ("Connection refused")."""
    server = redis_in(tmp_path)
    port = server.port
    bus, topics = InMemoryBus(), Topics("o")
    scorer, queue = scorer_on(server, bus, topics)
    try:
        publish_items(bus, topics, 0, 100)
        server.stop()  # before the scorer ever asked Redis for the namespace's width
        bus.publish(topics.models, model_version(1))
        publish_items(bus, topics, 100, 100)
        for _ in range(4):
            assert scorer.step(0.1) == 0  # paused: nothing consumed, nothing judged
        assert scorer.pause.reason is not None and "Redis unreachable" in scorer.pause.reason
        assert scorer.metrics.paused._value.get() == 1  # noqa: SLF001 - the gauge's value
        assert scorer.dead_letters == 0 and not bus.messages(topics.dead_letters)
        assert scorer.model_version == 0

        server = redis_in(tmp_path, port)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0 and scorer.model_version == 1)
        scorer.flush()
        assert scorer.pause.reason is None and scorer.metrics.paused._value.get() == 0  # noqa: SLF001
        assert scorer.dead_letters == 0 and not bus.messages(topics.dead_letters)
        assert queue.depth() == 200  # every item, none lost or refused
        assert queue.ranked_version() == 1
    finally:
        scorer.close()
        server.stop()


def test_an_idle_scorer_sees_redis_go_and_come_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (an ops fault day: with no item flowing the scorer asked Redis nothing, so a dead Redis went unseen: /healthz ok,
    # the paused gauge 0, the queue gauges frozen; now it asks (a PING) every IDLE_PING_SECONDS)
    from activestream.scorer.service import IDLE_PING_SECONDS

    server = redis_in(tmp_path)
    port = server.port
    bus, topics = InMemoryBus(), Topics("idle")
    scorer, queue = scorer_on(server, bus, topics)
    try:
        publish_items(bus, topics, 0, 50)
        steps_until(scorer, lambda: queue.depth() == 50)
        server.stop()
        deadline = time.monotonic() + IDLE_PING_SECONDS + 10
        while scorer.trouble() is None and time.monotonic() < deadline:
            scorer.step(0.2)
        assert scorer.trouble() is not None and "Redis unreachable" in scorer.trouble(), scorer.trouble()
        assert scorer.metrics.paused._value.get() == 1  # noqa: SLF001 - the gauge's value (ActivestreamScorerPaused)
        # (an ops audit: the queue gauges stayed at their last values, a frozen age that looked fine: now not known)
        scorer.refresh_gauges()
        assert math.isnan(scorer.metrics.queue_depth._value.get()) and math.isnan(scorer.metrics.oldest_pending_age._value.get())  # noqa: SLF001
        server = redis_in(tmp_path, port)
        steps_until(scorer, lambda: scorer.trouble() is None)
        scorer.refresh_gauges()
        assert scorer.metrics.paused._value.get() == 0 and queue.depth() == 50 == scorer.metrics.queue_depth._value.get()  # noqa: SLF001
    finally:
        scorer.close()
        server.stop()


def test_a_redis_outage_mid_stream_loses_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Writes in flight when Redis dies are dropped and read again from the committed offsets after it is back."""
    server = redis_in(tmp_path)
    port = server.port
    bus, topics = InMemoryBus(), Topics("m")
    scorer, queue = scorer_on(server, bus, topics)
    try:
        publish_items(bus, topics, 0, 500)
        for _ in range(4):
            scorer.step(0.0)  # some batches written, some in flight
        server.stop()
        publish_items(bus, topics, 500, 200)
        for _ in range(3):
            scorer.step(0.0)
        assert scorer.pause.reason is not None
        server = redis_in(tmp_path, port)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0)
        scorer.flush()
        assert queue.depth() == 700 and scorer.dead_letters == 0
        assert scorer.metrics.pauses.labels(reason=UNREACHABLE)._value.get() == 1  # noqa: SLF001 - one pause, however long
    finally:
        scorer.close()
        server.stop()


def test_redis_at_maxmemory_pauses_the_scorer_with_back_pressure_and_it_resumes(redis_client: redis.Redis) -> None:
    """Redis full (maxmemory, noeviction): OOM replies pause consumption instead of crash-looping; freed memory resumes it."""
    server = LocalRedis(admin=True).start()  # (CONFIG SET maxmemory)
    bus, topics = InMemoryBus(), Topics("f")
    scorer, queue = scorer_on(server, bus, topics)
    admin = redis.Redis.from_url(server.url)
    try:
        publish_items(bus, topics, 0, 100, width=64)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0)
        scorer.flush()
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", str(used + 200_000))  # room for a few more batches, not for 3,000 items
        publish_items(bus, topics, 100, 3000, width=64)
        deadline = time.monotonic() + 30
        while scorer.pause.reason is None:
            assert time.monotonic() < deadline, "the scorer never paused"
            scorer.step(0.0)
        assert FULL in scorer.pause.reason
        # Read again after the pause, records the queue already took need no write (the enqueue script
        # writes nothing for known ids) and go through; the first batch with a new item is refused.
        for _ in range(20):
            if scorer.step(0.0) == 0:
                break
        lag = bus.lag(topics.items, topics.group(SCORER_GROUP))
        assert lag > 0 and scorer.dead_letters == 0
        for _ in range(3):
            assert scorer.step(0.0) == 0  # still full: consumption stays paused, the lag does not move
        assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == lag
        # (A batch of ids the queue holds may go through between two refusals: a pause, a resumption, a pause.)
        assert scorer.metrics.pauses.labels(reason=FULL)._value.get() >= 1  # noqa: SLF001
        assert scorer.metrics.paused._value.get() == 1  # noqa: SLF001

        admin.config_set("maxmemory", "0")  # memory freed (labelers drained the queue, or the operator raised the limit)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0)
        scorer.flush()
        assert scorer.pause.reason is None and scorer.metrics.paused._value.get() == 0  # noqa: SLF001
        assert queue.depth() == 3100 and scorer.dead_letters == 0
    finally:
        scorer.close()
        admin.close()
        server.stop()


def test_outages_are_told_from_real_errors() -> None:
    assert redis_outage(redis.ConnectionError("Connection refused")) is not None
    assert redis_outage(redis.TimeoutError("Timeout reading from socket")) is not None
    assert redis_outage(redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))[0] == FULL  # type: ignore[index]
    script = "Error running script (call to f_1): @user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'."
    assert redis_outage(redis.ResponseError(script))[0] == FULL  # type: ignore[index]
    assert redis_outage(redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")) is None
    assert redis_outage(ValueError("bad")) is None


def test_the_dispatcher_waits_out_a_redis_restart_and_acknowledges_every_label(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.rankedqueue.outage import RedisPause
    from activestream.schemas import Label

    server = redis_in(tmp_path)
    port = server.port
    bus, topics = InMemoryBus(), Topics("d")
    queue = RankedQueue(redis.Redis.from_url(server.url, socket_timeout=2), QueueKeys("dispatch"))
    X = np.random.default_rng(0).standard_normal((20, N_FEATURES)).astype(np.float32)
    queue.add([f"i{i}" for i in range(20)], np.linspace(0, 1, 20), X)
    d = Dispatcher(queue, bus, topics, max_outstanding=20)
    pause = RedisPause(what="dispatching")
    try:
        assert pause.run(lambda: d.step(0.0), d.recover) == 20  # all 20 out with the labelers
        server.stop()
        for i in range(20):
            bus.publish(topics.labels, Label(f"i{i}", f"l{i}", "ann", label=1, features=X[i]).encode())
        for _ in range(3):
            assert pause.run(lambda: d.step(0.0), d.recover) == 0  # waits; does not exit, does not drop the labels
        assert pause.reason is not None and "Redis unreachable" in pause.reason
        server = redis_in(tmp_path, port)
        deadline = time.monotonic() + 30
        while queue.n_leased_by(d.owner) > 0:
            assert time.monotonic() < deadline, "labels were not acknowledged after Redis came back"
            pause.run(lambda: d.step(0.0), d.recover)
        assert pause.reason is None and d.metrics.acked._value.get() == 20  # noqa: SLF001 - every label, once
    finally:
        server.stop()


def test_skips_read_again_after_a_redis_outage_mid_batch_count_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (an audit: the batch read again after the outage counted its first half's skips twice on the dispatcher's
    # metric, 15 for 10, and recorded the group's pass on them again, as if it had happened then)
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.rankedqueue.outage import RedisPause
    from activestream.schemas import Skip

    server = redis_in(tmp_path)
    port = server.port
    bus, topics = InMemoryBus(), Topics("s")
    n = 10
    queue = RankedQueue(redis.Redis.from_url(server.url, socket_timeout=2), QueueKeys("skips"))
    queue.add([f"i{k}" for k in range(n)], np.linspace(1, 0, n), np.eye(n, N_FEATURES, dtype=np.float32))
    d = Dispatcher(queue, bus, topics, max_outstanding=n)
    pause = RedisPause(what="dispatching")
    real, calls = queue.skip_outcome, [0]

    def skip_outcome(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == n // 2 + 1:  # Redis goes away half-way through the batch (a real stop of the server)
            server.stop()
        return real(*args, **kwargs)

    try:
        assert d.dispatch() == n
        for k in range(n):  # the labeler passes on every item
            bus.publish(topics.skips, Skip(f"i{k}", "ann").encode(), key=f"i{k}".encode())
        queue.skip_outcome = skip_outcome  # type: ignore[method-assign]
        assert pause.run(lambda: d.acknowledge(0.0), d.recover) == 0 and pause.reason is not None
        server = redis_in(tmp_path, port)
        passed = queue.r.zrange(queue.k.passed(d.owner), 0, -1, withscores=True)
        assert len(passed) == n // 2
        deadline = time.monotonic() + 30
        while pause.run(lambda: d.acknowledge(0.0), d.recover) or pause.reason is not None:
            assert time.monotonic() < deadline, pause.reason
        assert sorted(int(v) for v in queue.r.hvals(queue.k.skips)) == [1] * n  # (the queue counts each labeler once)
        assert d.metrics.skipped._value.get() == n  # noqa: SLF001
        again = dict(queue.r.zrange(queue.k.passed(d.owner), 0, -1, withscores=True))
        assert len(again) == n and all(again[item] == when for item, when in passed)  # the first passes keep their time
    finally:
        server.stop()


def test_a_hung_redis_pauses_the_scorer_as_a_refusing_one_does() -> None:
    """A Redis that stops answering (SIGSTOP: swapping, a stuck host) is an outage: the services' queue bounds each call
    (the scorer's and the dispatcher's had no timeout and blocked, /healthz saying all was well)."""
    import os
    import signal

    from activestream.config import Settings
    from activestream.wiring import REDIS_TIMEOUT, make_queue

    assert REDIS_TIMEOUT <= 60
    server = LocalRedis().start()
    bus, topics = InMemoryBus(), Topics("hung")
    queue = make_queue(Settings(redis_url=server.url, namespace="hung"), socket_timeout=1.0)
    assert queue.r.connection_pool.connection_kwargs["socket_timeout"] == 1.0
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=50, commit_interval=0.0)
    assert server.proc is not None
    try:
        publish_items(bus, topics, 0, 100)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0)
        scorer.flush()
        assert queue.depth() == 100
        os.kill(server.proc.pid, signal.SIGSTOP)
        publish_items(bus, topics, 100, 50)
        t0 = time.monotonic()
        for _ in range(3):
            scorer.step(0.0)
        assert scorer.pause.reason is not None and "Timeout" in scorer.pause.reason and time.monotonic() - t0 < 20
        os.kill(server.proc.pid, signal.SIGCONT)
        steps_until(scorer, lambda: bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0)
        scorer.flush()
        assert queue.depth() == 150 and scorer.pause.reason is None
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        scorer.close()
        server.stop()
