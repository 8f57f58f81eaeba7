"""Bulk re-rank, segments and the DUMP/RESTORE path of the ranked queue, against a real redis-server."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.dump import argsort_best_first, zset_dump
from activestream.rankedqueue.keys import PARALLEL_SORT_MIN
from activestream.rankedqueue.segments import SegmentReader

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(redis_client: redis.Redis, namespace: str) -> RankedQueue:
    return RankedQueue(redis_client, QueueKeys(namespace))


def feats(n: int, d: int = 4, start: int = 0) -> np.ndarray:
    return (np.arange(start * d, (start + n) * d, dtype=np.float32).reshape(n, d)) / 7.0


def first_column(ids: object, X: np.ndarray) -> np.ndarray:
    return np.asarray(X[:, 0], dtype=np.float64)


def fill(queue: RankedQueue, n: int, batch: int = 250) -> list[str]:
    ids = [f"i{k}" for k in range(n)]
    X = feats(n)
    for lo in range(0, n, batch):  # several segments, as the scorer writes them
        queue.add(ids[lo : lo + batch], np.zeros(min(batch, n - lo)), X[lo : lo + batch])
    return ids


def test_rerank_rescores_pending_keeps_leases_and_labels_out_and_is_idempotent(queue: RankedQueue) -> None:
    ids = fill(queue, 1000)
    leased = [i for i, _ in queue.claim(ids[10:20], "ann", ttl=100, now=1000.0)]
    for i in ids[15:30]:  # some leased, some pending when labeled
        queue.mark_labeled(i, f"L-{i}")
    for i in ids[40:43]:  # dropped: skipped too often
        queue.claim([i], "ann", ttl=100, now=1000.0)
        assert queue.skip(i, "ann", max_skips=1) == 0
    expiry = {i: queue.lease_expiry(i) for i in leased[:5]}

    assert queue.rerank(first_column, version=7) == 1000 - 15 - 3 - 5  # pending after the swap: not labeled, dropped or leased

    gone = set(ids[15:30]) | set(ids[40:43])
    want = {i: float(feats(1, start=int(i[1:]))[0, 0]) for i in ids if i not in gone and i not in leased[:5]}
    assert dict(queue.ranking()) == pytest.approx(want)
    assert [i for i, _ in queue.ranking()][:3] == ["i999", "i998", "i997"]  # best first
    assert queue.n_leased(now=1000.0) == 5 and {i: queue.lease_expiry(i) for i in leased[:5]} == expiry
    assert queue.ranked_version() == 7
    before = queue.ranking()
    assert queue.rerank(first_column, version=8) == len(before)
    assert queue.ranking() == before  # same scores: nothing moves
    # Leases still expire back into the queue, labels still land, features are still there.
    assert queue.expire_leases(now=2000.0) == 5
    # Back at the score the newest re-rank gave it, not the one it was leased with (0.0).
    assert queue.score_of(leased[0]) == pytest.approx(float(feats(1, start=int(leased[0][1:]))[0, 0]))
    np.testing.assert_allclose(queue.features_of(["i500"])[0], feats(1, start=500)[0])
    assert queue.features_of([ids[15], "nope"]) == [None, None]
    assert queue.add([ids[15], ids[41]], np.ones(2), feats(2)) == 0  # labeled and dropped stay out


def test_rerank_takes_in_what_changes_while_it_runs(queue: RankedQueue) -> None:
    ids = fill(queue, 600)
    queue.claim(ids[:3], "ann", ttl=10, now=0.0)  # expired by the time the re-rank swaps
    calls = {"n": 0}

    def score_and_meddle(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:  # other clients at work during the re-rank
            queue.add(["late-1", "late-2"], np.array([5.0, 6.0]), feats(2, start=900))
            queue.claim(["i100", "i101"], "bob", ttl=100)
            queue.mark_labeled("i102", "L-102")
            queue.mark_labeled("late-2", "L-late-2")
            queue.expire_leases(now=50.0)
        return first_column(chunk_ids, X)

    n = queue.rerank(score_and_meddle, version=3)
    ranking = dict(queue.ranking())
    assert n == len(ranking) == 600 - 2 - 1 + 1
    assert ranking["late-1"] == 5.0  # enqueued meanwhile: kept at its own score
    assert "late-2" not in ranking and "i102" not in ranking  # labeled meanwhile
    assert "i100" not in ranking and queue.lease_expiry("i100") is not None  # leased meanwhile
    assert ranking["i0"] == pytest.approx(0.0) and ranking["i1"] == pytest.approx(float(feats(1, start=1)[0, 0]))  # returned, re-scored
    assert queue.skip("i100", "bob", max_skips=3) == 1  # handed back: at the new model's score
    assert queue.score_of("i100") == pytest.approx(float(feats(1, start=100)[0, 0]))


def test_one_rerank_at_a_time(queue: RankedQueue) -> None:
    fill(queue, 300)
    inner: list[object] = []

    def score(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        inner.append(queue.rerank(first_column))
        return first_column(chunk_ids, X)

    assert queue.rerank(score) == 300
    assert inner and all(r is None for r in inner)
    assert queue.rerank(first_column) == 300  # the lock is released


def test_rerank_of_an_empty_queue_and_a_failing_score(queue: RankedQueue) -> None:
    assert queue.rerank(first_column) == 0
    fill(queue, 50)

    def broken(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        queue.rerank(broken)
    assert queue.depth() == 50 and queue.rerank(first_column) == 50  # untouched, lock released
    with pytest.raises(ValueError):
        queue.rerank(lambda i, X: np.full(len(X), np.nan))


def test_segments_are_freed_with_their_last_row(queue: RankedQueue, redis_client: redis.Redis) -> None:
    queue.segment_rows = 0  # (one segment per call: a known layout)
    ids = fill(queue, 20, batch=10)
    for i in ids[:10]:
        queue.mark_labeled(i, f"L-{i}")
    segs = sorted(k.decode() for k in redis_client.scan_iter(match=f"{queue.k.segment_prefix}*"))
    assert segs == [queue.k.segment_features(2), queue.k.segment_ids(2), queue.k.segment_token(2)]  # segment 1 is gone
    assert queue.oldest_age(now=1e12) > 0
    for i in ids[10:]:
        queue.mark_labeled(i, f"L-{i}")
    assert list(redis_client.scan_iter(match=f"{queue.k.segment_prefix}*")) == []
    assert queue.oldest_age() == 0.0 and list(queue.iter_pending()) == []


def test_add_is_first_write_wins_and_pipelines(queue: RankedQueue) -> None:
    pending = queue.add_nowait(["a", "b", "a"], np.array([0.1, 0.2, 0.9]), feats(3), [{"x": 1}, {}, {"x": 2}])
    assert pending.result() == 2 and pending.result() == 2
    assert dict(queue.ranking()) == {"a": 0.1, "b": 0.2} and queue.metadata_of(["a"]) == [{"x": 1}]
    np.testing.assert_allclose(queue.features_of(["a"])[0], feats(1)[0])
    assert queue.add(["b", "c"], np.array([0.5, 0.6]), feats(2, start=5)) == 1  # a partly known batch
    np.testing.assert_allclose(queue.features_of(["c"])[0], feats(1, start=6)[0])
    with pytest.raises(ValueError):
        queue.add(["z"], np.array([np.nan]), feats(1))
    assert queue.add([], np.zeros(0), np.zeros((0, 4))) == 0


def test_writes_in_flight_on_one_writer_run_in_order(queue: RankedQueue) -> None:
    # Redis busy on another client: both writes below arrive before either runs. On separate
    # connections the later, smaller one often ran first (1 run in 3 here, 9 in 10 in a
    # review's script); on one writer they run as sent.
    busy = threading.Thread(target=queue.r.execute_command, args=("DEBUG", "SLEEP", "0.3"))
    busy.start()
    time.sleep(0.05)
    w = queue.writer()
    ids = ["x"] + [f"i{k}" for k in range(5000)]
    first = queue.add_nowait(ids, np.full(len(ids), 0.1), feats(len(ids)), conn=w)
    second = queue.add_nowait(["x"], np.array([0.9]), feats(1), conn=w)
    assert first.result() == 5001 and second.result() == 0  # the first write of "x" wins
    busy.join()
    assert dict(queue.ranking())["x"] == 0.1
    queue.release_writer(w)


def test_float16_features(redis_client: redis.Redis, namespace: str) -> None:
    q16 = RankedQueue(redis_client, QueueKeys(namespace), feature_dtype="float16")
    X = np.array([[0.1, 1e6, -3.25]], dtype=np.float32)
    q16.add(["a"], np.array([0.5]), X)
    got = q16.features_of(["a"])[0]
    assert got.dtype == np.float32 and got[0] == pytest.approx(0.1, rel=1e-3) and got[1] == 65504.0 and got[2] == -3.25
    (chunk_ids, chunk_X), = list(q16.iter_pending())
    assert chunk_ids == ["a"] and chunk_X.dtype == np.float32
    q32 = RankedQueue(redis_client, QueueKeys(namespace), feature_dtype="float32")
    with pytest.raises(redis.ResponseError, match="float16"):
        q32.add(["b"], np.array([0.5]), X)
    assert RankedQueue(redis_client, QueueKeys(namespace)).add(["b"], np.array([0.5]), X) == 1  # unset: follows the namespace


@pytest.mark.parametrize("halves", [False, True], ids=["one-sort", "two-halves"])
@pytest.mark.parametrize("lengths", [(1, 5, 63), (64, 300, 16384, 70000), (0, 2, 2)])
def test_zset_dump_restores_exactly(redis_client: redis.Redis, namespace: str, lengths: tuple[int, ...], halves: bool) -> None:
    parallel_min = 2 if halves else PARALLEL_SORT_MIN  # halves: as a large re-rank sorts, each half of the scores on its own thread
    rng = np.random.default_rng(sum(lengths))
    members = [bytes([k % 251 + 1]) * ln + str(k).encode() for k, ln in enumerate(lengths * 40)]
    members += ["ünï-çødé-✓".encode()]
    scores = rng.random(len(members))
    scores[::5] = 0.25  # ties
    scores[1] = -np.inf
    buf = np.frombuffer(b"".join(members), dtype=np.uint8)
    lens = np.array([len(m) for m in members])
    starts = np.cumsum(lens) - lens
    order = argsort_best_first(scores, parallel_min=parallel_min)
    assert (np.diff(scores[order]) <= 0).all() and sorted(order.tolist()) == list(range(len(scores)))
    key = f"{namespace}:dumped"  # (the fixture deletes the namespace's keys afterwards)
    redis_client.restore(key, 0, zset_dump(buf, starts[order], lens[order], scores[order]), replace=True)
    assert dict(redis_client.zrange(key, 0, -1, withscores=True)) == dict(zip(members, scores.tolist(), strict=True))


def test_a_rerank_with_the_segment_cache_reads_each_segment_once_and_ranks_as_without(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cached = RankedQueue(redis_client, QueueKeys(namespace), segment_cache_bytes=1 << 20, segment_rows=0)
    plain = RankedQueue(redis_client, QueueKeys(namespace))
    ids = fill(cached, 1000)  # 4 segments of 250 (segment_rows=0: one per call)
    read: list[int] = []
    real = SegmentReader.read

    def spy(self: SegmentReader, seqs: list[int], widths: dict[int, int], dtype: np.dtype, *args: Any) -> list:
        read.extend(seqs)
        return real(self, seqs, widths, dtype, *args)

    monkeypatch.setattr(SegmentReader, "read", spy)
    assert cached.rerank(first_column, version=1) == 1000 and sorted(read) == [1, 2, 3, 4]
    # Rows die (labeled; all of segment 2: freed), a lease, and a new segment since.
    for i in ids[250:500] + ids[7:9]:
        cached.mark_labeled(i, f"L-{i}")
    cached.claim([ids[20]], "ann", ttl=100)
    cached.add([f"n{k}" for k in range(50)], np.zeros(50), feats(50, start=2000))
    read.clear()
    n = cached.rerank(lambda i, X: -first_column(i, X), version=2)
    assert read == [5]  # only the new segment's rows; the others' dead rows were read afresh
    assert cached.last_rerank["cached_segments"] == 3.0 and sorted(cached.segment_cache.seqs()) == [1, 3, 4, 5]  # 2 was freed: dropped
    with_cache = cached.ranking()
    assert n == len(with_cache) == 1000 - 252 - 1 + 50 and ids[8] not in dict(with_cache) and ids[300] not in dict(with_cache)
    assert plain.rerank(first_column, version=3) == n  # the same queue, read without a cache: the same items
    assert sorted(i for i, _ in plain.ranking()) == sorted(i for i, _ in with_cache)
    assert dict(cached.ranking()) == dict(plain.ranking())


def test_the_segment_cache_forgets_a_cleared_queue(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace), segment_cache_bytes=1 << 20)
    fill(queue, 500)
    queue.rerank(first_column, version=1)
    queue.clear()  # segment numbers start again from 1 ...
    ids = [f"i{k}" for k in range(500)]
    queue.add(ids, np.zeros(500), -feats(500))  # ... with other rows under them
    queue.rerank(first_column, version=1)
    assert dict(queue.ranking()) == pytest.approx({i: -float(feats(1, start=k)[0, 0]) for k, i in enumerate(ids)})


def test_the_segment_cache_keeps_to_its_budget(redis_client: redis.Redis, namespace: str) -> None:
    one = 250 * 16 + (4 + 250 * 2 + sum(len(f"i{j}") for j in range(250))) + 2 * 250 * 8  # rows, the ids blob, row offsets and lengths
    queue = RankedQueue(redis_client, QueueKeys(namespace), segment_cache_bytes=one + one // 2, segment_rows=0)  # (4 segments of 250)
    fill(queue, 1000)
    queue.rerank(first_column, version=1)
    assert len(queue.segment_cache) == 1 and queue.segment_cache.used == one
    assert queue.rerank(lambda i, X: -first_column(i, X), version=2) == 1000
    assert [i for i, _ in queue.ranking()][:2] == ["i0", "i1"]


def test_the_segment_cache_rereads_a_segment_number_that_names_other_rows(redis_client: redis.Redis, namespace: str) -> None:
    k = QueueKeys(namespace)
    queue = RankedQueue(redis_client, k, segment_cache_bytes=1 << 20, segment_rows=0)
    ids = fill(queue, 1000)  # segments 1-4 (segment_rows=0: one per call)
    queue.rerank(first_column, version=1)
    # Redis rolls back (a crash with AOF every second, a failover): segments 3 and 4 are lost,
    # the segment counter goes back, and the next write takes number 3 again, other rows.
    lost = ids[500:]
    redis_client.hset(k.meta, "segseq", 2)
    for seq in (3, 4):
        redis_client.delete(k.segment_features(seq), k.segment_ids(seq), k.segment_dead(seq), k.segment_token(seq))
        for key in (k.segment_width, k.segment_live):
            redis_client.hdel(key, seq)
        redis_client.zrem(k.segment_time, seq)
    redis_client.hdel(k.featloc, *lost)
    redis_client.zrem(k.pending, *lost)
    fresh = [f"c{j}" for j in range(250)]
    queue.add(fresh, np.zeros(250), -feats(250))
    queue.rerank(first_column, version=2)
    ranking = dict(queue.ranking())
    assert set(ranking) == set(ids[:500]) | set(fresh)  # no ghost of the lost rows, every new one
    assert ranking["c3"] == pytest.approx(-float(feats(1, start=3)[0, 0]))
    held = queue.segment_cache.peek(3)
    assert held is None or held.ids.tobytes().startswith(b"c0")
