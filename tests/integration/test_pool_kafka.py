"""The capped pool with scorer processes on a real Kafka broker and a real Redis: two at once, and one SIGKILLed mid-batch."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from activestream.rankedqueue import RankedQueue
from activestream.schemas import Item
from tests.integration.test_distributed import Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

CAP = 300


@pytest.fixture
def stack(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(kafka_bootstrap, redis_url, tmp_path, ACTIVESTREAM_POOL_CAPACITY=str(CAP), ACTIVESTREAM_RESERVOIR_SHARE="0.1")
    yield s
    s.stop()


def publish(bus: object, stack: Stack, n: int, d: int = 8, start: int = 0) -> None:
    """Publish items ``s{start}`` .. ``s{start + n - 1}`` with random features."""
    rng = np.random.default_rng(start)
    X = rng.normal(size=(n, d)).astype(np.float32)
    for i in range(n):
        bus.publish(stack.topics.items, Item(f"s{start + i}", X[i]).encode(binary=True), key=f"s{start + i}".encode())  # type: ignore[attr-defined]
    bus.flush()  # type: ignore[attr-defined]


def settled(q: RankedQueue, n: int) -> bool:
    """Every record streamed was counted (the scorers count what they wrote before they commit it) and the pool is at its cap."""
    return q.pool_stats()["streamed"] >= n and q.depth() == CAP


def assert_pool_exact(q: RankedQueue, n: int) -> None:
    st = q.pool_stats()
    assert st["streamed"] == st["read"] == n, st  # each record counted once (counted before its offset commits, not again when read again)
    assert q.depth() == CAP and q.n_leased() == 0
    # nothing per item is left of what the pool turned away or evicted
    assert q.r.hlen(q.k.featloc) == CAP
    assert sum(int(v) for v in q.r.hvals(q.k.segment_live)) == CAP
    assert q.r.zcard(q.k.reservoir) == q.r.hlen(q.k.reservoir_rows) == round(0.1 * CAP)
    assert st["evicted"] > 0 and st["rejected"] > 0


def test_the_cap_holds_with_two_scorers_writing_at_once(stack: Stack, kafka_bus_factory: Callable[..., object]) -> None:
    n = 4000
    bus = kafka_bus_factory(prefix=stack.prefix, partitions=2)
    bus.ensure_topics(stack.topics.all())  # type: ignore[attr-defined]
    try:
        stack.start_scorers(2)
        publish(bus, stack, n)
        depth_seen = []

        def watch() -> bool:
            depth_seen.append(stack.queue.depth())
            return settled(stack.queue, n)

        wait_for(watch, 90, 0.02, what="every record counted")
        time.sleep(1.0)
        assert max(depth_seen) <= CAP, max(depth_seen)  # never over the cap while both wrote
        assert_pool_exact(stack.queue, n)
        assert st_identity(stack.queue, n)
    except AssertionError:
        print(stack.logs(), stack.queue.pool_stats(), stack.queue.depth())
        raise


def st_identity(q: RankedQueue, n: int) -> bool:
    """Without a crash every record is pending, evicted or rejected exactly once."""
    st = q.pool_stats()
    return bool(q.depth() + st["evicted"] + st["rejected"] == n)


def test_a_scorer_sigkilled_mid_batch_and_restarted_leaves_the_cap_and_counts_exact(
    stack: Stack, kafka_bus_factory: Callable[..., object]
) -> None:
    chunk = 100_000  # a second or more of work: the counters move at each commit (every 0.2 s), not per batch
    bus = kafka_bus_factory(prefix=stack.prefix, partitions=2)
    bus.ensure_topics(stack.topics.all())  # type: ignore[attr-defined]
    n = 0
    try:
        # Kill at the first commit into a chunk. Should a fast machine have worked through the whole chunk by then, the
        # kill did not land mid-stream: publish another chunk and kill the next scorer in it (a few tries at most).
        for _ in range(4):
            publish(bus, stack, chunk, start=n)
            n += chunk
            p = stack.start("scorer", "--batch-size", "25")
            before = n - chunk
            wait_for(lambda before=before: stack.queue.pool_stats()["streamed"] > before, 90, interval=0.005, what="scorer mid-stream")
            p.send_signal(signal.SIGKILL)
            p.wait()
            assert stack.queue.depth() <= CAP
            if stack.queue.pool_stats()["streamed"] < n:
                break
        assert stack.queue.pool_stats()["streamed"] < n, "every scorer finished before it was killed: nothing tested"
        stack.start("scorer", "--batch-size", "25")
        wait_for(lambda: settled(stack.queue, n), 120, what="every record counted")
        time.sleep(2.0)  # let any redelivered tail settle
        assert_pool_exact(stack.queue, n)
    except AssertionError:
        print(stack.logs(), stack.queue.pool_stats(), stack.queue.depth())
        raise
