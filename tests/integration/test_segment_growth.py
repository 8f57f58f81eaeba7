"""Segments grow by appends and merges (lua/fn_segment_write.lua) against a real redis-server.

Without them a scorer's small micro-batches each made a segment, and a full pool whose labelers take the top and whose
evictions take the bottom kept a segment for every few mid-ranked items: its memory per pending item and a re-rank's
time grew with the items streamed (a 40-minute soak: re-rank 8.7 -> 41 ms a version).
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.keys import SEGMENT_OPEN_SECONDS, SEGMENT_ROWS
from activestream.rankedqueue.pool import PoolLimits
from tests.integration.test_pool import stored_rows

pytestmark = pytest.mark.integration

D = 4


def rows_of(nums: np.ndarray) -> np.ndarray:
    """Each item's row holds its number, so a row read back names the item it belongs to."""
    return np.repeat(np.asarray(nums, dtype=np.float32)[:, None], D, axis=1) + np.arange(D, dtype=np.float32) / 10


def numbered(nums: np.ndarray) -> list[str]:
    return [f"s{int(j)}" for j in nums]


def by_number(ids: object, X: np.ndarray) -> np.ndarray:
    """A re-rank's score, a function of the item's number read from its row, in [0, 1) as the stream's scores are."""
    return (X[:, 0].astype(np.float64) * 0.6180339887) % 1.0


def check_rows(q: RankedQueue) -> None:
    """Every pending item's stored row is its own, and the live counts add up to the items the segments hold."""
    pending = [i for i, _ in q.ranking()]
    got = q.features_of(pending)
    np.testing.assert_array_equal(np.stack(got), rows_of(np.array([int(i[1:]) for i in pending])))
    leased = q.r.zcard(q.k.leased)
    assert sum(int(v) for v in q.r.hvals(q.k.segment_live)) == len(pending) + leased


def test_a_full_pool_fed_small_batches_while_labelers_take_the_top_keeps_few_segments(redis_client: redis.Redis, namespace: str) -> None:
    cap, batch, rounds = 3000, 20, 1500
    q = RankedQueue(redis_client, QueueKeys(namespace), pool=PoolLimits(cap), segment_cache_bytes=1 << 24)
    rng = np.random.default_rng(0)
    segments, stored = [], []
    for rnd in range(rounds):
        nums = np.arange(rnd * batch, (rnd + 1) * batch)
        q.add(numbered(nums), rng.random(batch), rows_of(nums))
        (top, _), = q.ranking()[-1:]
        assert q.claim([top], "ann", 300.0)
        q.mark_labeled(top, f"L-{top}")
        if rnd % 300 == 299:
            segments.append(q.r.hlen(q.k.segment_width))
            stored.append(stored_rows(q) / q.depth())
            assert q.rerank(by_number, version=rnd) == q.depth()  # (through the segment cache)
            got = dict(q.ranking())
            np.testing.assert_allclose([got[i] for i in got], by_number(None, rows_of(np.array([int(i[1:]) for i in got]))))
    assert q.depth() == cap - 1  # (full, less the last label)
    check_rows(q)
    # Merges keep the segments' average above an eighth of SEGMENT_ROWS: at most about 8 x pending / SEGMENT_ROWS of them,
    # plus a few the sweep has not reached yet: a bound that does not grow with the items streamed (one segment per batch: 1,500).
    assert max(segments) <= cap // (SEGMENT_ROWS // 8) + 8, segments
    # Rows stored per pending item: the dead ones a compaction leaves (an eighth at most) and the labeled ones.
    assert max(stored) <= 1.15, stored


def test_sparse_segments_merge_and_every_moved_row_stays_its_items(redis_client: redis.Redis, namespace: str) -> None:
    # Small segments (64 rows) so that evictions leave many sparse ones: their live rows move to merge segments, leased
    # ones too, and a re-rank through its cache, the features read back and a lease's label all find each item's own row.
    cap, batch = 400, 6
    q = RankedQueue(redis_client, QueueKeys(namespace), pool=PoolLimits(cap), segment_cache_bytes=1 << 24, segment_rows=64)
    rng = np.random.default_rng(1)
    leased: list[str] = []
    labeled: list[str] = []
    for rnd in range(1500):
        nums = np.arange(rnd * batch, (rnd + 1) * batch)
        q.add(numbered(nums), rng.random(batch), rows_of(nums))
        (top, _), = q.ranking()[-1:]
        assert q.claim([top], "ann", 3600.0)
        if rnd % 50 == 0:  # a lease held across merges, answered later
            leased.append(top)
        else:  # labeled now: a dead row, which no merge may move
            q.mark_labeled(top, f"L-{top}")
            labeled.append(top)
        if rnd % 250 == 249:
            assert q.rerank(by_number, version=rnd) == q.depth()
            got = dict(q.ranking())
            np.testing.assert_allclose([got[i] for i in got], by_number(None, rows_of(np.array([int(i[1:]) for i in got]))))
            check_rows(q)
    assert q.r.hget(q.k.meta, "mergeseq") is not None  # (merges happened)
    assert q.r.hlen(q.k.segment_width) * 64 <= 8 * cap + 64 * 8  # (about 8 x pending / 64, and a few the sweep has not reached)
    np.testing.assert_array_equal(np.stack(q.features_of(leased)), rows_of(np.array([int(i[1:]) for i in leased])))
    for i in leased:
        q.mark_labeled(i, f"L-{i}")
    check_rows(q)
    assert set(q.r.hmget(q.k.featloc, labeled)) == {b""}  # (their tombstones: never enqueued again)


def test_rows_written_while_a_rerank_runs_go_to_a_new_segment_and_are_ranked(redis_client: redis.Redis, namespace: str) -> None:
    # The swap takes the items of segments newer than its snapshot: rows appended to an older one meanwhile would
    # leave the queue with it (an append with no lock check lost them).
    q = RankedQueue(redis_client, QueueKeys(namespace))
    q.add(numbered(np.arange(10)), np.zeros(10), rows_of(np.arange(10)))
    late = np.arange(10, 15)

    def score(ids: object, X: np.ndarray) -> np.ndarray:
        if q.depth() == 10:
            assert q.add(numbered(late), np.full(5, 100.0), rows_of(late)) == 5
        return by_number(ids, X)

    assert q.rerank(score, version=1) == 15
    got = dict(q.ranking())
    assert set(got) == set(numbered(np.arange(15)))
    assert q.r.hlen(q.k.segment_width) == 2
    check_rows(q)
    q.add(numbered(np.arange(15, 17)), np.zeros(2), rows_of(np.arange(15, 17)))  # no re-rank now: appended
    assert q.r.hlen(q.k.segment_width) == 2
    check_rows(q)


def test_the_newest_segment_takes_appends_only_while_it_is_open(redis_client: redis.Redis, namespace: str) -> None:
    q = RankedQueue(redis_client, QueueKeys(namespace))
    t0 = q.now()
    for j, dt in enumerate([0.0, 1.0, SEGMENT_OPEN_SECONDS - 0.5]):
        q.add([f"s{j}"], np.zeros(1), rows_of(np.array([j])), now=t0 + dt)
    assert q.r.hlen(q.k.segment_width) == 1
    q.add(["s3"], np.zeros(1), rows_of(np.array([3])), now=t0 + SEGMENT_OPEN_SECONDS + 0.5)  # closed: a new one
    assert q.r.hlen(q.k.segment_width) == 2
    assert q.oldest_age(now=t0 + 100) == pytest.approx(100)  # (a segment's time is its first row's)
    check_rows(q)


def test_with_a_max_age_the_open_window_is_a_tenth_of_it_and_nothing_merges(redis_client: redis.Redis, namespace: str) -> None:
    q = RankedQueue(redis_client, QueueKeys(namespace), pool=PoolLimits(100, 0, 2.0))
    t0 = q.now()
    q.add(["a"], np.zeros(1), rows_of(np.array([0])), now=t0)
    q.add(["b"], np.zeros(1), rows_of(np.array([1])), now=t0 + 0.1)  # within 0.2 s: appended
    q.add(["c"], np.zeros(1), rows_of(np.array([2])), now=t0 + 0.5)  # past it: a new segment
    assert q.r.hlen(q.k.segment_width) == 2
    for j in range(3, 40):  # sparse segments everywhere, none merged: a merged segment's rows would age as its oldest
        q.add([f"s{j}"], np.zeros(1), rows_of(np.array([j])), now=t0 + j)
    assert q.r.hget(q.k.meta, "mergeseq") is None
    assert q.evict_older_than(2.0, now=t0 + 2.05) == 2  # a and b (b at most a tenth of the max age early)
    assert q.evict_older_than(2.0, now=t0 + 2.6) == 1
    check_rows(q)


def test_iter_pending_yields_each_item_once_while_merges_move_rows(redis_client: redis.Redis, namespace: str) -> None:
    # (the reviewer's case: rows of segments already read moved into the merge segment, read later: 120 yielded twice)
    k = QueueKeys(namespace)
    layout, scorer = RankedQueue(redis_client, k, segment_rows=0), RankedQueue(redis_client, k)
    for j in range(600):  # 600 one-row segments
        layout.add([f"s{j}"], np.zeros(1), rows_of(np.array([j])))
    scorer.add(["s10000"], np.zeros(1), rows_of(np.array([10_000])))  # a first merge: the merge segment exists
    it = layout.iter_pending(chunk=1)
    seen = list(next(it)[0])
    for j in range(1, 60):  # enqueues (and merges) while the reader is part-way
        scorer.add([f"s{10_000 + j}"], np.zeros(1), rows_of(np.array([10_000 + j])))
    for ids, X in it:
        seen += ids
        np.testing.assert_array_equal(X, rows_of(np.array([int(i[1:]) for i in ids])))
    assert len(seen) == len(set(seen))
    assert {f"s{j}" for j in range(600)} <= set(seen)


def test_a_write_past_the_cap_neither_appends_nor_merges(redis_client: redis.Redis, namespace: str) -> None:
    # The labeling side promotes reservoir members and queues audit items past the cap; its settings may lack the
    # scorer's max age, and a merge there gave young rows an old segment's time: the scorer then evicted them early.
    k = QueueKeys(namespace)
    scorer = RankedQueue(redis_client, k, pool=PoolLimits(100, 0, 60.0))
    labeling = RankedQueue(redis_client, k, pool=PoolLimits(100))
    t0 = scorer.now() - 100
    scorer.add(["s0"], np.zeros(1), rows_of(np.array([0])), now=t0)  # 100 s old
    scorer.add(["s1", "s2"], np.zeros(2), rows_of(np.array([1, 2])), now=t0 + 90)  # 10 s old
    scorer.add(["s3"], np.zeros(1), rows_of(np.array([3])), now=t0 + 99)
    labeling.add_past_cap(["s4"], np.zeros(1), rows_of(np.array([4])))  # (an audit item)
    assert redis_client.hlen(k.segment_width) == 4
    assert scorer.evict_older_than(60.0) == 1
    assert sorted(i for i, _ in scorer.ranking()) == ["s1", "s2", "s3", "s4"]
    check_rows(scorer)
