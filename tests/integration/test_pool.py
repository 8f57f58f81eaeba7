"""The capped pool and the random reservoir against a real redis-server (rankedqueue.pool, lua/add.lua)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from activestream.labeling.control_picks import ControlPicker
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import PoolLimits, sampling_keys
from activestream.schemas import Item
from activestream.scorer.service import Scorer
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


def capped(client: redis.Redis, namespace: str, capacity: int, reservoir: int = 0, max_age: float | None = None) -> RankedQueue:
    return RankedQueue(client, QueueKeys(namespace), pool=PoolLimits(capacity, reservoir, max_age))


def feats(n: int, d: int = 3) -> np.ndarray:
    return np.arange(n * d, dtype=np.float32).reshape(n, d)


def stored_rows(q: RankedQueue) -> int:
    """Rows whose segment is still stored, dead ones included."""
    return sum(int.from_bytes((q.r.get(q.k.segment_ids(s.decode())) or bytes(4))[:4], "little") for s in q.r.hkeys(q.k.segment_live))


def test_full_pool_takes_only_what_outranks_its_lowest_and_forgets_the_evicted(redis_client: redis.Redis, namespace: str) -> None:
    q = capped(redis_client, namespace, 5)
    assert q.add(list("abcde"), np.array([0.1, 0.2, 0.3, 0.4, 0.5]), feats(5), [{"m": i} for i in range(5)]) == 5
    assert q.skip("a", "ann", max_skips=3) == 1  # a skip record, which must go with the item
    assert q.add(["low"], np.array([0.05]), feats(1)) == 0  # below the lowest: rejected, not remembered
    assert q.known(["low"]) == [False] and q.r.hget(q.k.featloc, "low") is None
    assert q.add(["y"], np.array([0.35]), feats(1), [{"m": 9}]) == 1
    assert q.depth() == 5
    assert sorted(i for i, _ in q.ranking()) == ["b", "c", "d", "e", "y"]
    # the evicted item leaves nothing behind: no featloc (not even a tombstone), metadata, skip records
    assert q.r.hget(q.k.featloc, "a") is None and q.metadata_of(["a"]) == [{}] and q.features_of(["a"]) == [None]
    assert q.r.hget(q.k.skips, "a") is None and not q.r.exists(q.k.skippers_prefix + "a") and q.skipped_by("ann", ["a"]) == [False]
    assert q.pool_stats()["evicted"] == 1
    # an equal score does not outrank (the lowest is now 0.2)
    assert q.add(["tie"], np.array([0.2]), feats(1)) == 0
    # the evicted id sent again is decided afresh: with a better score it enters
    assert q.add(["a"], np.array([0.9]), feats(1)) == 1
    assert q.score_of("a") == pytest.approx(0.9) and "b" not in dict(q.ranking())
    np.testing.assert_array_equal(q.features_of(["a"])[0], [0, 1, 2])
    # a redelivered batch changes nothing
    before = (q.ranking(), q.pool_stats())
    assert q.add(["a", "y", "low"], np.array([0.9, 0.35, 0.05]), feats(3)) == 0
    assert q.ranking() == before[0] and q.pool_stats()["evicted"] == before[1]["evicted"]
    assert q.thresholds().pool == pytest.approx(0.3)


def test_within_one_batch_the_best_win_and_rows_of_the_pushed_out_are_not_stored(redis_client: redis.Redis, namespace: str) -> None:
    q = capped(redis_client, namespace, 3)
    conn = q.writer()
    try:
        p = q.add_nowait([f"i{j}" for j in range(10)], np.arange(10) / 10, feats(10), conn=conn)
        assert p.result() == 3
    finally:
        q.release_writer(conn)
    assert sorted(i for i, _ in q.ranking()) == ["i7", "i8", "i9"]
    assert p.rejected == 7 and p.evicted == 0 and p.thresholds is not None and p.thresholds.pool == pytest.approx(0.7)
    assert q.r.hlen(q.k.featloc) == 3 and stored_rows(q) == 3


def test_a_segment_mostly_evicted_is_compacted_and_its_rows_freed(redis_client: redis.Redis, namespace: str) -> None:
    q = capped(redis_client, namespace, 20)
    q.add([f"o{j}" for j in range(20)], np.arange(20) / 100, feats(20), [{"j": j} for j in range(20)])
    for j in range(2):  # 2 of its 20 rows evicted: 18 live, more than seven eighths
        q.add([f"n{j}"], np.array([0.5 + j / 100]), feats(1))
    assert stored_rows(q) == 20 + 2
    q.add(["n2"], np.array([0.9]), feats(1))  # 17 of 20 live: compacted (the dead rows cut off)
    assert stored_rows(q) == 17 + 3 and q.depth() == 20
    for j in range(3, 20):  # the survivors keep their rows, metadata and scores
        np.testing.assert_array_equal(q.features_of([f"o{j}"])[0], feats(20)[j])
        assert q.metadata_of([f"o{j}"]) == [{"j": j}] and q.score_of(f"o{j}") == pytest.approx(j / 100)
    assert q.oldest_age() > 0 and len(q.stored_widths()) == 1


def test_rows_are_stored_best_first_and_a_segment_losing_its_last_rows_is_cut_short_in_place(redis_client: redis.Redis, namespace: str) -> None:
    # A full pool evicts its lowest-ranked items, so with each segment's rows stored best first its dead rows are
    # its last ones: compaction cuts the strings short, keeps the segment (number, age) and moves no row.
    q = capped(redis_client, namespace, 20)
    scores = np.random.default_rng(3).permutation(20) / 100
    q.add([f"o{j}" for j in range(20)], scores, feats(20), [{"j": j} for j in range(20)])
    (seq,) = [s.decode() for s in q.r.hkeys(q.k.segment_live)]
    locs = {f"o{j}": q.r.hget(q.k.featloc, f"o{j}").decode() for j in range(20)}  # type: ignore[union-attr]
    assert [locs[f"o{j}"] for j in np.argsort(-scores)] == [f"{seq}:{r}" for r in range(20)]  # best first
    token, age = q.r.get(q.k.segment_token(seq)), q.r.zscore(q.k.segment_time, seq)
    q.add(["n0", "n1", "n2"], np.array([0.5, 0.6, 0.7]), feats(3))  # the three lowest go: 17 of 20 live, compacted
    survivors = [f"o{j}" for j in range(20) if scores[j] >= 0.03]
    assert seq in {s.decode() for s in q.r.hkeys(q.k.segment_live)} and stored_rows(q) == 17 + 3
    assert q.r.get(q.k.segment_token(seq)) != token and q.r.zscore(q.k.segment_time, seq) == age
    assert not q.r.exists(q.k.segment_dead(seq))
    assert {i: q.r.hget(q.k.featloc, i).decode() for i in survivors} == {i: locs[i] for i in survivors}  # type: ignore[union-attr]
    for i in survivors:
        j = int(i[1:])
        np.testing.assert_array_equal(q.features_of([i])[0], feats(20)[j])
        assert q.metadata_of([i]) == [{"j": j}] and q.score_of(i) == pytest.approx(scores[j])


def test_a_segment_with_a_labeled_row_near_its_front_is_only_cut_short(redis_client: redis.Redis, namespace: str) -> None:
    # Labelers take the top items, a best-first segment's first rows: when cutting off the evicted last rows leaves at
    # most an eighth of the rest dead, nothing moves; the labeled row's dead bit stays, those cut off go.
    q = capped(redis_client, namespace, 16)
    q.segment_rows = 0  # (one segment per call: segment 1 holds the o<j> alone)
    q.add([f"o{j}" for j in range(16)], np.linspace(0.9, 0.1, 16), feats(16))  # row j is o<j>
    q.promote(["o0"])
    assert q.claim(["o0"], "ann", 300.0)
    q.mark_labeled("o0", "l0")
    q.add(["n0"], np.array([0.95]), feats(1))  # full again
    q.add(["n1", "n2"], np.array([2.0, 2.1]), feats(2))  # o15 and o14 evicted: 13 of 16 live
    seg = q.k.segment_ids(1)
    assert int.from_bytes(q.r.get(seg)[:4], "little") == 14 and stored_rows(q) == 14 + 1 + 2  # type: ignore[index]
    assert [q.r.hget(q.k.featloc, f"o{j}") for j in range(1, 14)] == [f"1:{j}".encode() for j in range(1, 14)]
    assert q.r.get(q.k.segment_dead(1)) == bytes([0b10000000, 0])  # row 0 dead, nothing past row 13
    assert q.rerank(lambda ids, X: X[:, 0] / 100, version=1) == 16
    got = dict(q.ranking())
    assert set(got) == {*(f"o{j}" for j in range(1, 14)), "n0", "n1", "n2"}
    for j in range(1, 14):
        assert got[f"o{j}"] == pytest.approx(feats(16)[j][0] / 100)


def test_compaction_in_place_moves_the_live_rows_after_the_first_dead_one(redis_client: redis.Redis, namespace: str) -> None:
    # Labels kill rows anywhere (and a re-rank reorders what evictions take): the live rows past the first dead
    # one close up, get their new locations, and a re-rank (through its segment cache) reads exactly them.
    q = capped(redis_client, namespace, 14)
    q.segment_cache_bytes, q.segment_rows = 1 << 20, 0  # (one segment per call: the o<j> alone in theirs)
    q.add([f"o{j}" for j in range(14)], np.linspace(0.9, 0.1, 14), feats(14))  # stored in this order (best first)
    assert q.rerank(lambda ids, X: X[:, 0] / 100, version=1) == 14  # (cached) the ranking is now the reverse: o0 lowest
    for j in (2, 5):
        q.promote([f"o{j}"])
        assert q.claim([f"o{j}"], "ann", 300.0)
        q.mark_labeled(f"o{j}", f"l{j}")
    q.add(["n0", "n1", "n2"], np.array([2.0, 2.1, 2.2]), feats(3))  # 2 free places; o0 (row 0) evicted: 11 of 14 live
    live = [f"o{j}" for j in range(1, 14) if j not in (2, 5)]
    (seq, _) = sorted((s.decode() for s in q.r.hkeys(q.k.segment_live)), key=int)
    assert stored_rows(q) == 11 + 3 and q.r.hget(q.k.featloc, "o0") is None
    assert [q.r.hget(q.k.featloc, i).decode() for i in live] == [f"{seq}:{r}" for r in range(11)]  # type: ignore[union-attr]
    assert q.r.hget(q.k.featloc, "o2") == b""  # (a labeled item's tombstone stays)
    for i in live:
        np.testing.assert_array_equal(q.features_of([i])[0], feats(14)[int(i[1:])])
    assert q.rerank(lambda ids, X: 1.0 - X[:, 0] / 100, version=2) == 14
    got = dict(q.ranking())
    assert set(got) == {*live, "n0", "n1", "n2"}
    for i in live:
        assert got[i] == pytest.approx(1.0 - feats(14)[int(i[1:])][0] / 100)


def test_a_rerank_reads_each_segment_whole_while_a_full_pool_compacts_it(redis_url: str, namespace: str) -> None:
    # Segments change in place under a running re-rank: every row it scores must be read with its own id (the
    # features hold the id's number) and every item pending throughout must be in its ranking.
    n, cap = 30_000, 2000
    writer = capped(redis.Redis.from_url(redis_url), namespace, cap)
    reader = capped(redis.Redis.from_url(redis_url), namespace, cap)
    reader.segment_cache_bytes = 1 << 24
    order = np.random.default_rng(4).permutation(n)
    stream(writer, 4 * cap, 500, order[: 4 * cap])  # full, and compacting
    done, errors, reranks = threading.Event(), [], [0]

    def check(ids: Sequence[str], X: np.ndarray) -> np.ndarray:
        nums = np.array([int(i[1:]) for i in ids], dtype=np.float32)
        if not np.array_equal(X[:, 0], nums) or not np.array_equal(X[:, 1], nums):
            errors.append(f"rows read with other ids: {[i for i, x in zip(ids, X[:, 0], strict=True) if x != int(i[1:])][:5]}")
        return nums / n

    def rerank_loop() -> None:
        while not done.is_set():
            try:
                if reader.rerank(check, version=reranks[0] + 1) is not None:
                    reranks[0] += 1
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append(repr(exc))
                return

    t = threading.Thread(target=rerank_loop)
    t.start()
    try:
        for lo in range(4 * cap, n, 500):
            pos = order[lo : lo + 500]
            writer.add([f"s{i}" for i in pos], np.random.default_rng(lo).random(len(pos)), np.repeat(pos[:, None], 2, axis=1).astype(np.float32))
    finally:
        done.set()
        t.join()
    assert not errors, errors[:3]
    assert reranks[0] >= 2 and writer.depth() == cap
    assert reader.rerank(check, version=10**6) == cap and not errors
    for i, s in reader.ranking():
        assert s == pytest.approx(int(i[1:]) / n)


def test_a_segment_compacted_between_a_reranks_two_reads_is_read_as_it_is_now(redis_client: redis.Redis, namespace: str) -> None:
    # A cached re-rank reads every segment's token and dead rows first, then the segments it has no copy of.
    # A compaction in between moves rows: the dead rows read first no longer match them, and a live item
    # taken for dead would leave the queue at the swap.
    q = capped(redis_client, namespace, 15)
    q.segment_cache_bytes = 1 << 20
    q.add([f"o{j}" for j in range(15)], np.linspace(0.9, 0.1, 15), feats(15))  # segment 1, best first: row j is o<j>
    for j in (3, 4):  # rows 3 and 4 dead
        q.promote([f"o{j}"])
        assert q.claim([f"o{j}"], "ann", 300.0)
        q.mark_labeled(f"o{j}", f"l{j}")
    q.add(["n0", "n00"], np.array([0.95, 0.96]), feats(2))  # full again
    read = q._reader.read
    calls = []

    def compact_first(*args: Any, **kwargs: Any) -> Any:
        if not calls:  # o14 (the lowest) is evicted: 12 of 15 rows live, the rows past row 4 move up two
            assert q.add(["n1"], np.array([2.0]), feats(1)) == 1 and q.r.hget(q.k.featloc, "o5") == b"1:3"
        calls.append(1)
        return read(*args, **kwargs)

    q._reader.read = compact_first  # type: ignore[method-assign]
    assert q.rerank(lambda ids, X: X[:, 0] / 100, version=1) == 15
    assert calls and {i for i, _ in q.ranking()} == {*(f"o{j}" for j in range(14) if j not in (3, 4)), "n0", "n00", "n1"}


def test_cap_holds_with_two_writers_at_once(redis_url: str, namespace: str) -> None:
    cap, n_batches, batch = 1000, 20, 500
    rng = np.random.default_rng(7)
    scores = {w: rng.random((n_batches, batch)) for w in range(2)}
    errors: list[BaseException] = []
    rejected = [0, 0]  # (Redis counts rejections only as a scorer's offsets commit: see Admission)

    def write(w: int) -> None:
        try:
            q = capped(redis.Redis.from_url(redis_url), namespace, cap)
            for b in range(n_batches):
                ids = [f"w{w}-{b}-{j}" for j in range(batch)]
                p = q.add_nowait(ids, scores[w][b], np.full((batch, 4), w, dtype=np.float32), [{"w": w}] * batch)
                p.result()
                rejected[w] += p.rejected
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    q = capped(redis.Redis.from_url(redis_url), namespace, cap)
    all_scores = np.sort(np.concatenate([scores[0].ravel(), scores[1].ravel()]))[::-1]
    got = np.sort([s for _, s in q.ranking()])[::-1]
    assert q.depth() == cap
    np.testing.assert_allclose(got, all_scores[:cap])  # exactly the best `cap` of the 20,000
    # nothing per item outgrows the pool: locations, metadata and live rows are the pending items'
    assert q.r.hlen(q.k.featloc) == cap and q.r.hlen(q.k.metadata) == cap
    assert sum(int(v) for v in q.r.hvals(q.k.segment_live)) == cap
    st = q.pool_stats()
    assert st["evicted"] + sum(rejected) == 2 * n_batches * batch - cap


def test_a_full_pool_decides_a_batch_with_commands_per_key_not_per_item(redis_client: redis.Redis, namespace: str) -> None:
    # The enqueue script used to run some twenty commands per item a full pool took (the lowest pending
    # item, then the eviction's HGETs, SETBIT, HDELs, SMEMBERS... and a GET of a whole segment index to
    # learn its row count): the cost of the pool was Redis's, per item. Now a batch costs commands per key
    # and per segment touched, and decides the same: the best `cap` of everything sent, the reservoir the
    # smallest sampling keys of every id offered, the survivors' rows intact through compaction.
    cap, res, batch = 2000, 200, 500
    q = capped(redis_client, namespace, cap, res)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((cap + batch, 4)).astype(np.float32)
    ids = [f"x{j}" for j in range(cap + batch)]
    scores = np.concatenate([rng.uniform(0.0, 0.5, cap), rng.uniform(0.5, 1.0, batch)])
    for lo in range(0, cap, batch):  # full: four segments of 500
        q.add(ids[lo : lo + batch], scores[lo : lo + batch], X[lo : lo + batch])
    before = total_calls(redis_client)
    conn = q.writer()
    try:
        p = q.add_nowait(ids[cap:], scores[cap:], X[cap:], conn=conn)
        assert p.result() == batch
    finally:
        q.release_writer(conn)
    calls = total_calls(redis_client) - before - 1  # (the EVAL itself)
    assert calls < batch // 2, calls  # (14,182 before, 119 now)
    assert (p.evicted, p.rejected) == (batch, 0) and q.pool_stats()["evicted"] == batch
    best = np.argsort(-scores, kind="stable")[:cap]
    assert {i for i, _ in q.ranking()} == {ids[j] for j in best}
    got = q.features_of([ids[j] for j in best])
    for j, row in zip(best, got, strict=True):  # (the four old segments lost a quarter of their rows each: compacted)
        np.testing.assert_array_equal(row, X[j])
    assert stored_rows(q) == cap and q.r.hlen(q.k.featloc) == cap
    keys = sampling_keys(ids)
    assert {m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)} == {ids[j] for j in np.argsort(keys)[:res]}
    assert q.r.hlen(q.k.reservoir_rows) == res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_decide_as_the_best_cap_of_everything_sent(redis_client: redis.Redis, namespace: str, seed: int) -> None:
    # Random batches with ids sent again (pending: nothing changes; evicted: decided afresh) and twice in
    # one batch (the first counts), against a reference model: after each batch the pool is the best `cap`
    # of its pending items and the batch's new ids, the counts say who left, and the reservoir is the
    # smallest sampling keys of every id ever offered. (Continuous random scores: no ties.)
    rng = np.random.default_rng(seed)
    cap, res = int(rng.integers(5, 60)), int(rng.integers(1, 30))
    q = capped(redis_client, namespace, cap, res)
    pending: dict[str, float] = {}
    rows: dict[str, np.ndarray] = {}
    offered: set[str] = set()
    fresh = 0
    for _ in range(60):
        ids = []
        for _ in range(int(rng.integers(1, 40))):
            again = fresh > 0 and rng.random() < 0.3
            ids.append(f"i{int(rng.integers(0, fresh))}" if again else f"i{fresh}")
            fresh += 0 if again else 1
        s, X = rng.random(len(ids)), rng.standard_normal((len(ids), 3)).astype(np.float32)
        p = q.add_nowait(ids, s, X)
        p.result()
        first: dict[str, int] = {}
        for j, i in enumerate(ids):
            first.setdefault(i, j)
        offered |= set(first)
        new = {i: float(s[j]) for i, j in first.items() if i not in pending}
        keep = dict(sorted({**pending, **new}.items(), key=lambda kv: -kv[1])[:cap])
        assert (p.evicted, p.rejected) == (len(set(pending) - set(keep)), len(set(new) - set(keep)))
        rows.update({i: X[first[i]] for i in set(new) & set(keep)})
        pending = keep
        assert dict(q.ranking()).keys() == pending.keys()
    for i, row in zip(pending, q.features_of(list(pending)), strict=True):
        np.testing.assert_array_equal(row, rows[i])
    ordered = sorted(offered)
    assert {m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)} == {ordered[j] for j in np.argsort(sampling_keys(ordered))[:res]}
    assert sum(int(v) for v in q.r.hvals(q.k.segment_live)) == q.r.hlen(q.k.featloc) == len(pending)


def test_max_age_evicts_old_pending_items_but_not_leased_ones(redis_client: redis.Redis, namespace: str) -> None:
    q = capped(redis_client, namespace, 100, max_age=50.0)
    now = q.now()
    q.add(["old1", "old2", "old3"], np.array([0.9, 0.8, 0.7]), feats(3), now=now - 100)
    q.add(["new"], np.array([0.1]), feats(1), now=now)
    assert q.claim(["old2"], "ann", 300.0) == [("old2", pytest.approx(0.8))]
    assert q.evict_older_than(50.0, now=now) == 2
    assert sorted(i for i, _ in q.ranking()) == ["new"] and q.lease_holder("old2") == "ann"
    assert q.r.hget(q.k.featloc, "old1") is None and q.pool_stats()["age_evicted"] == 2
    assert q.evict_older_than(50.0, now=now) == 0  # the leased one's segment is passed over, not evicted
    assert q.add(["old1"], np.array([0.5]), feats(1)) == 1  # decided afresh


def stream(q: RankedQueue, n: int, batch: int, order: np.ndarray) -> None:
    """Items ``s<i>`` whose score grows with their position ``i`` (drift: the pool keeps only late ones), sent in ``order``."""
    for lo in range(0, n, batch):
        pos = order[lo : lo + batch]
        q.add([f"s{i}" for i in pos], pos / n, np.repeat(pos[:, None], 2, axis=1).astype(np.float32))


def test_reservoir_is_a_uniform_sample_of_the_stream_not_of_the_survivors(redis_url: str, namespace: str) -> None:
    n, cap, res = 20_000, 2000, 1000
    q = capped(redis.Redis.from_url(redis_url), namespace, cap, res)
    stream(q, n, 1000, np.arange(n))
    members = [m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)]
    assert len(members) == res and q.depth() == cap
    pos = np.array([int(m[1:]) for m in members])
    # Uniform over the stream: chi-square over 10 equal position bins (expected 100 each). The sampling keys
    # are a fixed keyed hash of the ids, so this is deterministic; the bound is the 0.1% critical value of
    # chi-square with 9 degrees of freedom (27.88). The pool by contrast holds only the last 10% (drift).
    counts = np.bincount(pos * 10 // n, minlength=10)
    chi2 = float(((counts - res / 10) ** 2 / (res / 10)).sum())
    assert chi2 < 27.88, counts
    assert min(int(i[1:]) for i, _ in q.ranking()) >= n - cap
    st = q.pool_stats()
    assert st["reservoir"] == res and st["reservoir_replaced"] > 0
    # order and writer do not matter: the same items sent shuffled, into another namespace, give the same sample
    q2 = capped(redis.Redis.from_url(redis_url), namespace + "b", cap, res)
    stream(q2, n, 700, np.random.default_rng(3).permutation(n))
    assert sorted(m.decode() for m in q2.r.zrange(q2.k.reservoir, 0, -1)) == sorted(members)
    q2.clear()


def test_control_picks_come_from_the_reservoir_evicted_members_included(redis_client: redis.Redis, namespace: str) -> None:
    n, cap, res = 2000, 100, 50
    q = capped(redis_client, namespace, cap, res)
    stream(q, n, 500, np.arange(n))
    members = {m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)}
    picker = ControlPicker(q, 1.0, np.random.default_rng(0))
    got = picker.pick(20, "ann", 300.0, q.now())
    assert len(got) == 20 and {i for i, _ in got} <= members
    assert any(int(i[1:]) < n - cap for i, _ in got)  # items the pool had evicted (or never took)
    for i, s in got:  # leased with their row, score and metadata from the reservoir
        assert q.lease_holder(i) == "ann" and q.control_holder(i) == "ann"
        np.testing.assert_array_equal(q.features_of([i])[0], [int(i[1:])] * 2)
        assert s == pytest.approx(int(i[1:]) / n)


def test_a_rerank_of_a_capped_compacted_pool_keeps_exactly_its_items(redis_client: redis.Redis, namespace: str) -> None:
    n, cap = 3000, 50
    q = capped(redis_client, namespace, cap)
    stream(q, n, 250, np.random.default_rng(1).permutation(n))
    before = {i for i, _ in q.ranking()}
    assert q.depth() == cap and stored_rows(q) <= 8 * cap // 7 + 3 * 250  # compaction kept the dead rows few
    assert q.rerank(lambda ids, X: 1.0 - X[:, 0] / n, version=1) == cap
    after = dict(q.ranking())
    assert set(after) == before
    for i, s in after.items():  # the re-rank read every survivor's own row
        assert s == pytest.approx(1.0 - int(i[1:]) / n, abs=1e-6)  # (rows are float32)
    assert q.thresholds().pool == pytest.approx(min(after.values()))


def total_calls(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k != "cmdstat_info")


def test_the_scorer_sends_redis_nothing_for_items_below_its_threshold(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.scorer.admission import Admission
    from activestream.scorer.batches import BatchCounts
    from activestream.scorer.metrics import ScorerMetrics

    q = capped(redis_client, namespace, 10)
    q.add([f"a{j}" for j in range(10)], np.linspace(0.5, 0.9, 10), feats(10))
    adm = Admission(q, ScorerMetrics.create(CollectorRegistry(), namespace))
    adm.refresh()
    assert adm.thresholds.pool == pytest.approx(0.5)
    counts = BatchCounts(scored=100)
    before = total_calls(redis_client)
    ids, scores, X, metas = adm.filter([f"b{j}" for j in range(100)], np.linspace(0.0, 0.6, 100), feats(100), [{}] * 100, counts)
    assert total_calls(redis_client) == before  # (a second's refresh has not come due)
    assert len(ids) == len(X) == len(metas) == 17 and (scores > 0.5).all()
    assert (counts.streamed, counts.rejected, counts.scored) == (100, 83, 17)


def test_scorer_counts_add_up_with_the_pool(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics = InMemoryBus(), Topics("p")
    n = 1500
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    for i in range(n):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    for i in range(0, 300, 3):  # ids sent again: taken (duplicates) or decided afresh
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    bus.publish(topics.items, b'{"id": "bad", "features": [1, 2]}', key=b"bad")  # (a dead letter: read, never offered to the pool)
    q = capped(redis_client, namespace, 200, 20)
    scorer = Scorer(bus, q, topics, batch_size=50, n_features=8)
    scorer.run(burst=True, timeout=0.0)
    scorer.close()
    m, st = scorer.metrics, q.pool_stats()
    read, scored, dup = m.items_read._value.get(), m.items_scored._value.get(), m.items_duplicate._value.get()
    rejected = m.pool_rejections._value.get()
    assert read == n + 100 + 1 == scored + dup + rejected + scorer.dead_letters  # every record in exactly one outcome
    assert st["read"] == read and st["streamed"] == read - 1 and st["rejected"] == rejected  # (no id twice in one batch here)
    assert q.depth() == 200 and st["evicted"] == scored - 200 and m.pool_evictions._value.get() == st["evicted"]
    assert st["reservoir"] == 20 and m.reservoir_replacements._value.get() == st["reservoir_replaced"] > 0


def test_control_picks_walk_the_reservoir_in_key_order_past_labeled_members(redis_client: redis.Redis, namespace: str) -> None:
    n, cap, res = 2000, 100, 50
    q = capped(redis_client, namespace, cap, res)
    stream(q, n, 500, np.arange(n))
    by_key = [m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)]
    for j, item in enumerate(by_key[:6]):  # the strategy labeled some of the smallest keys (promoted, leased, labeled)
        if j % 2 == 0:
            q.promote([item])
            assert q.claim([item], "ranked", 300.0)
            q.mark_labeled(item, f"l{j}")
    picker = ControlPicker(q, 1.0, np.random.default_rng(0))
    got = [i for i, _ in picker.pick(5, "ann", 300.0, q.now())]
    assert got == [by_key[1], by_key[3], by_key[5], by_key[6], by_key[7]]  # the labeled members stay in the reservoir, passed over
    assert [m.decode() for m in q.r.zrange(q.k.reservoir, 0, -1)] == by_key
    assert [i for i, _ in picker.pick(2, "bob", 300.0, q.now())] == by_key[8:10]  # (leased ones are passed over too)


def test_add_names_a_length_that_does_not_match_the_items_capped_or_not(redis_client: redis.Redis, namespace: str) -> None:
    for q in (RankedQueue(redis_client, QueueKeys(namespace)), capped(redis_client, namespace + "c", 5, 2)):
        with pytest.raises(ValueError, match="add\\(\\) got 3 metadata objects for 2 items"):
            q.add(["a", "b"], np.array([0.1, 0.2]), feats(2), [{}, {}, {}])
        with pytest.raises(ValueError, match="add\\(\\) got 1 sampling keys for 2 items"):
            q.add_nowait(["a", "b"], np.array([0.1, 0.2]), feats(2), sampling=np.array([0.5]))
        assert q.depth() == 0
    capped(redis_client, namespace + "c", 5, 2).clear()


def test_a_label_for_an_item_evicted_after_its_lease_ran_out_says_so(redis_client: redis.Redis, namespace: str) -> None:
    # (an audit: such a label was refused as "already labeled, dropped or never scored", which it was none of)
    from activestream.labeling.service import LabelService, UnknownItem

    q = capped(redis_client, namespace, 2)
    q.add(["a", "b"], np.array([0.9, 0.8]), feats(2))
    service = LabelService(q, InMemoryBus(), Topics(namespace), lease_ttl=0.05)
    (leased,) = service.lease(1, "bob")
    time.sleep(0.2)  # the lease runs out: the item is pending again, and the lowest when better ones arrive
    q.expire_leases()
    assert q.add(["c", "d"], np.array([0.95, 0.97]), feats(2)) == 2 and q.depth() == 2
    with pytest.raises(UnknownItem, match="evicted from the capped pool after its lease ran out: answer within ACTIVESTREAM_LEASE_TTL"):
        service.submit(leased.id, labeler_id="bob", label=1)


def test_a_control_walk_that_ran_out_says_so_once(redis_client: redis.Redis, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    # (a drift audit: a small pool's reservoir of 150 was all labeled at ~190 labels; control picks stopped and the live
    # estimates froze, and nothing said why)
    from activestream.labeling.control_picks import ControlPicker

    q = capped(redis_client, namespace, 10, 2)
    q.add([f"i{j}" for j in range(10)], np.linspace(0, 1, 10), np.eye(10, 3, dtype=np.float32))
    picker = ControlPicker(q, 1.0, np.random.default_rng(0))
    now = q.now()
    assert len(picker.pick(2, "ann", 60.0, now)) == 2  # (the reservoir's two members)
    for item in q.leased_by("ann"):
        q.mark_labeled(item, f"L-{item}")
    with caplog.at_level("WARNING", logger="activestream.labeling.control_picks"):
        assert picker.pick(2, "bob", 60.0, now) == [] and picker.pick(1, "bob", 60.0, now) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "activestream.labeling.control_picks"]
    assert lines == ["2 control pick(s) wanted, none left: the random reservoir's 2 member(s) are labeled or out with labelers (raise "
                     "ACTIVESTREAM_RESERVOIR_SHARE); control labels, the live estimates and auto-accept's calibration wait for new items"]
