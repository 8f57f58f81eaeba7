"""The one contract every ranked-queue configuration must pass, against a real redis-server.

Like ``tests/integration/test_bus_contract.py`` (one suite, every ``Bus`` adapter) and river's
``checks/``: each check below runs under every queue configuration the code has a real
branch for:

- the stored feature dtype (``float32``, ``float16``: other row bytes, clipping);
- the re-rank's segment cache (off, on: segments read once and kept, liveness read afresh);
- the enqueue path (``add`` on a pooled connection, ``add_nowait`` pipelined on one writer
  connection, as the scorer sends);
- how a re-rank writes its ranking (``RESTORE`` of a DUMP payload, or plain ``ZADD``\\ s when
  the server refuses the payload).

Feature values are multiples of 1/2 below 2048, exact in float16 too, so every
configuration must give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class QueueConfig:
    """One way the queue can be set up (see the module docstring)."""

    name: str
    feature_dtype: str = "float32"
    segment_cache_bytes: int = 0
    writer_conn: bool = False  # enqueue with add_nowait on one writer connection
    restore: bool = True  # False: the server refuses RESTORE, the re-rank falls back to ZADDs


CONFIGS = [
    QueueConfig("float32"),
    QueueConfig("float16", feature_dtype="float16"),
    QueueConfig("float32-cache", segment_cache_bytes=1 << 20),
    QueueConfig("float16-cache", feature_dtype="float16", segment_cache_bytes=1 << 20),
    QueueConfig("float32-writer-conn", writer_conn=True),
    QueueConfig("float32-zadd-fallback", restore=False),
    QueueConfig("float16-cache-writer-conn-zadd-fallback", feature_dtype="float16", segment_cache_bytes=1 << 20, writer_conn=True, restore=False),
]

Add = Callable[..., int]


@pytest.fixture(params=CONFIGS, ids=[c.name for c in CONFIGS])
def config(request: pytest.FixtureRequest) -> QueueConfig:
    config: QueueConfig = request.param
    return config


@pytest.fixture
def queue(redis_client: redis.Redis, namespace: str, config: QueueConfig, monkeypatch: pytest.MonkeyPatch) -> RankedQueue:
    if not config.restore:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise redis.ResponseError("DUMP payload version or checksum are wrong")

        monkeypatch.setattr(redis_client, "restore", refuse)
    return RankedQueue(redis_client, QueueKeys(namespace), feature_dtype=config.feature_dtype, segment_cache_bytes=config.segment_cache_bytes)


@pytest.fixture
def add(queue: RankedQueue, config: QueueConfig) -> Iterator[Add]:
    """Enqueue as the configuration does: ``add``, or ``add_nowait`` on one writer connection."""
    if not config.writer_conn:
        yield queue.add
        return
    conn = queue.writer()

    def add_on_writer(ids: Sequence[str], scores: Any, features: np.ndarray, metadata: Any = None, *, now: float | None = None) -> int:
        return queue.add_nowait(ids, np.asarray(scores, dtype=np.float64), features, metadata, now=now, conn=conn).result()

    try:
        yield add_on_writer
    finally:
        queue.release_writer(conn)


def feats(n: int, d: int = 3, start: int = 0) -> np.ndarray:
    """(n, d) float32 rows, exact in float16: row k is ``[k*d, k*d + 1, ...] / 2``."""
    return np.arange(start * d, (start + n) * d, dtype=np.float32).reshape(n, d) / 2


def first_column(ids: object, X: np.ndarray) -> np.ndarray:
    return np.asarray(X[:, 0], dtype=np.float64)


def fill(add: Add, n: int, batch: int = 50, prefix: str = "i") -> list[str]:
    """``n`` items in several segments (as the scorer writes them), all scored 0."""
    ids = [f"{prefix}{k}" for k in range(n)]
    X = feats(n)
    for lo in range(0, n, batch):
        assert add(ids[lo : lo + batch], np.zeros(min(batch, n - lo)), X[lo : lo + batch]) == min(batch, n - lo)
    return ids


def snapshot(queue: RankedQueue) -> dict[str, Any]:
    """What a redelivery or a no-op must leave as it was."""
    r, k = queue.r, queue.k
    return {
        "ranking": queue.ranking(),
        "leased": r.zrange(k.leased, 0, -1, withscores=True),
        "owners": r.hgetall(k.lease_owner),
        "featloc": r.hgetall(k.featloc),
        "labeled": r.smembers(k.labeled),
        "dropped": r.smembers(k.dropped),
        "seg_live": r.hgetall(k.segment_live),
        "seg_width": r.hgetall(k.segment_width),
        "metadata": r.hgetall(k.metadata),
    }


# --------------------------------------------------------------------------- enqueue


def test_add_is_idempotent_by_id(queue: RankedQueue, add: Add) -> None:
    assert add(["a", "b", "c"], np.array([0.1, 0.9, 0.5]), feats(3), [{}, {"t": 1}, {}]) == 3
    assert add(["a", "b", "c"], np.array([0.7, 0.2, 0.3]), feats(3, start=10)) == 0  # the first write wins
    assert add(["d", "d"], np.array([0.4, 0.8]), feats(2, start=20)) == 1  # a duplicate within a batch too
    assert add(["a", "e"], np.array([0.6, 0.6]), feats(2, start=30)) == 1  # a partly known batch
    assert dict(queue.ranking()) == {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.4, "e": 0.6}
    got = queue.features_of(["a", "c", "d", "e", "nope"])
    np.testing.assert_array_equal(got[0], feats(1, start=0)[0])
    np.testing.assert_array_equal(got[1], feats(1, start=2)[0])
    np.testing.assert_array_equal(got[2], feats(1, start=20)[0])  # the first row of "d"
    np.testing.assert_array_equal(got[3], feats(1, start=31)[0])  # only the new row was kept
    assert got[4] is None and all(f is not None and f.dtype == np.float32 for f in got[:4])
    assert queue.metadata_of(["b", "a"]) == [{"t": 1}, {}]
    assert add([], np.zeros(0), np.zeros((0, 3), np.float32)) == 0
    with pytest.raises(ValueError):
        add(["z"], np.array([np.nan]), feats(1))


def test_rank_order_is_best_first(queue: RankedQueue, add: Add) -> None:
    add(["a", "b", "c", "d", "e"], np.array([0.1, 0.9, 0.5, -1.0, 0.7]), feats(5))
    assert [i for i, _ in queue.ranking()] == ["b", "e", "c", "a", "d"]
    assert queue.top(2) == [("b", 0.9), ("e", 0.7)] and queue.top(2, offset=2) == [("c", 0.5), ("a", 0.1)]
    assert queue.members_at([4, 0, 9]) == ["d", "b"]  # past the end: left out
    assert queue.score_of("c") == 0.5 and queue.score_of("nope") is None
    assert queue.depth() == 5 and queue.n_scored() == 4  # -1: could not be scored
    assert sorted(queue.pending_ids()) == ["a", "b", "c", "d", "e"]
    queue.rescore(["a", "b"], np.array([2.0, 0.0]))
    assert [i for i, _ in queue.top(2)] == ["a", "e"]


def test_redelivered_adds_change_nothing(queue: RankedQueue, add: Add) -> None:
    ids = fill(add, 120)
    scores = np.linspace(0.0, 1.0, 120)
    queue.rescore(ids, scores)
    queue.claim(ids[:5], "ann", ttl=100, now=1000.0)
    for i in ids[5:10]:
        queue.mark_labeled(i, f"L-{i}")
    queue.skip(ids[10], "ann", max_skips=1)  # dropped
    before = snapshot(queue)
    for lo in range(0, 120, 50):  # the whole stream again, as Kafka redelivers it
        assert add(ids[lo : lo + 50], np.full(min(50, 120 - lo), 9.0), feats(min(50, 120 - lo), start=500)) == 0
    assert snapshot(queue) == before


# --------------------------------------------------------------------------- leases


def test_claim_leases_for_ttl_and_expiry_hands_back(queue: RankedQueue, add: Add) -> None:
    add(["a", "b", "c"], np.array([0.1, 0.9, 0.5]), feats(3))
    assert queue.claim(["b", "zzz"], "ann", ttl=10, now=1000.0) == [("b", 0.9)]
    assert queue.lease_expiry("b") == 1010.0 and queue.score_of("b") is None
    assert queue.claim(["b"], "bob", ttl=10, now=1000.0) == []  # leased already
    assert queue.lease_holder("b", now=1005.0) == "ann" and queue.lease_holder("b", now=1010.0) is None
    assert queue.n_leased_by("ann") == 1 and queue.n_leased(now=1005.0) == 1
    assert queue.add(["b"], np.array([0.3]), feats(1)) == 0  # a leased item is not enqueued again
    assert queue.expire_leases(now=1009.0) == 0
    assert queue.expire_leases(now=1011.0) == 1
    assert queue.score_of("b") == 0.9 and queue.lease_expiry("b") is None and queue.n_leased_by("ann") == 0
    # max_held: the cap counts what the labeler holds already.
    assert [i for i, _ in queue.claim(["a", "b", "c"], "ann", ttl=10, now=2000.0, max_held=2)] == ["a", "b"]
    assert queue.claim(["c"], "ann", ttl=10, now=2000.0, max_held=2) == []


def test_skip_counts_each_labeler_once_and_drops_at_max_skips(queue: RankedQueue, add: Add) -> None:
    add(["a", "b"], np.array([0.5, 0.4]), feats(2))
    queue.claim(["a"], "ann", ttl=10)
    assert queue.skip("a", "mallory", max_skips=2) == -2  # not the holder: ann keeps the lease
    assert queue.lease_holder("a") == "ann"
    assert [queue.skip("a", "ann", max_skips=2) for _ in range(3)] == [1, 1, 1]  # a retried skip is one opinion
    assert queue.score_of("a") == 0.5 and queue.n_leased() == 0 and queue.skipped_by("ann", ["a", "b"]) == [True, False]
    assert [i for i, _ in queue.top_for("ann", 5)] == ["b"] and [i for i, _ in queue.top_for("bob", 5)] == ["a", "b"]
    queue.claim(["a"], "bob", ttl=10)
    assert queue.skip("a", "bob", max_skips=2) == 0  # the second labeler: dropped
    assert queue.depth() == 1 and queue.features_of(["a"]) == [None] and queue.r.sismember(queue.k.dropped, "a")
    assert queue.skipped_by("ann", ["a"]) == [False]  # the skip records left with it
    assert queue.skip("nope", "ann", max_skips=2) == -1


def test_a_group_lease_records_passes_not_skips_of_the_holder(queue: RankedQueue, add: Add) -> None:
    add(["a", "b"], np.array([0.5, 0.4]), feats(2))
    queue.claim(["a"], "grp", ttl=10, now=100.0)
    assert queue.skip("a", "ann", max_skips=3, holder="grp", now=100.0) == 1
    assert queue.passed_on("grp", ["a", "b"], passed_since=50.0) == [True, False]
    assert [i for i, _ in queue.top_for("grp", 5, passed_since=50.0)] == ["b"]
    assert [i for i, _ in queue.top_for("grp", 5, passed_since=150.0)] == ["a", "b"]  # passed before then: offered again
    queue.forget_passed("grp", before=101.0)
    assert queue.passed_on("grp", ["a"], passed_since=0.0) == [False]


def test_mark_labeled_removes_for_good(queue: RankedQueue, add: Add) -> None:
    add(["a", "b", "c"], np.array([0.3, 0.2, 0.1]), feats(3), [{"x": 1}, {}, {}])
    queue.claim(["a"], "ann", ttl=10)
    assert queue.mark_labeled("a", "L1") is True  # leased
    assert queue.mark_labeled("b", "L2") is True  # pending
    assert queue.mark_labeled("a", "L1") is False and queue.is_label_id_known("L1")
    assert queue.is_labeled("a") and queue.is_labeled("b") and not queue.is_labeled("c")
    assert queue.n_labeled() == 2 and queue.n_leased() == 0 and queue.n_leased_by("ann") == 0 and queue.pending_ids() == ["c"]
    assert queue.features_of(["a", "b"]) == [None, None] and queue.metadata_of(["a"]) == [{}]
    assert queue.add(["a", "b"], np.array([0.99, 0.99]), feats(2)) == 0  # never queued again


def test_unclaim_hands_back_untouched(queue: RankedQueue, add: Add) -> None:
    add(["a", "b"], np.array([0.5, 0.4]), feats(2))
    queue.claim(["a"], "ann", ttl=10, control=True)
    assert queue.control_holder("a") == "ann"
    assert queue.unclaim("a", "bob") is False and queue.lease_holder("a") == "ann"  # only the holder may
    assert queue.unclaim("a", "ann") is True and queue.unclaim("a", "ann") is False
    assert queue.score_of("a") == 0.5 and queue.skipped_by("ann", ["a"]) == [False]  # no skip counted
    assert queue.control_holder("a") is None and queue.n_leased_by("ann") == 0
    assert [i for i, _ in queue.top_for("ann", 2)] == ["a", "b"]


# --------------------------------------------------------------------------- re-rank


def test_rerank_reorders_and_keeps_leased_items(queue: RankedQueue, add: Add) -> None:
    ids = fill(add, 300)
    leased = [i for i, _ in queue.claim(ids[10:15], "ann", ttl=100, now=1000.0)]
    expiry = {i: queue.lease_expiry(i) for i in leased}
    for i in ids[20:25]:
        queue.mark_labeled(i, f"L-{i}")
    want = {i: float(feats(1, start=k)[0, 0]) for k, i in enumerate(ids) if i not in leased and i not in ids[20:25]}

    assert queue.rerank(first_column, version=7) == 290
    assert dict(queue.ranking()) == want and [i for i, _ in queue.top(2)] == ["i299", "i298"]
    assert {i: queue.lease_expiry(i) for i in leased} == expiry and queue.n_leased(now=1000.0) == 5
    assert queue.ranked_version() == 7 and queue.last_rerank["rows"] == 295.0  # leased rows are scored too
    before = queue.ranking()
    assert queue.rerank(first_column, version=8) == 290 and queue.ranking() == before  # same scores: nothing moves
    assert queue.rerank(lambda i, X: -first_column(i, X), version=9) == 290
    assert [i for i, _ in queue.top(2)] == ["i0", "i1"]
    assert queue.expire_leases(now=2000.0) == 5
    assert queue.score_of(leased[0]) == -float(feats(1, start=int(leased[0][1:]))[0, 0])  # at the newest model's score


def test_rerank_takes_in_what_changes_while_it_runs(queue: RankedQueue, add: Add) -> None:
    fill(add, 200)
    calls = {"n": 0}

    def score_and_meddle(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:  # other clients at work during the re-rank
            queue.add(["late"], np.array([5.0]), feats(1, start=900))
            queue.claim(["i100"], "bob", ttl=100)
            queue.mark_labeled("i102", "L-102")
            assert queue.rerank(first_column) is None  # one re-rank at a time
        return first_column(chunk_ids, X)

    assert queue.rerank(score_and_meddle, version=3) == 200 + 1 - 2
    ranking = dict(queue.ranking())
    assert ranking["late"] == 5.0 and "i100" not in ranking and "i102" not in ranking
    assert queue.lease_holder("i100") == "bob"
    assert queue.rerank(first_column) == 199  # the lock is released


def test_rerank_failure_leaves_the_queue_as_it_was(queue: RankedQueue, add: Add) -> None:
    assert queue.rerank(first_column) == 0
    fill(add, 60)
    before = queue.ranking()

    def broken(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        queue.rerank(broken)
    with pytest.raises(ValueError):
        queue.rerank(lambda i, X: np.full(len(X), np.nan))
    assert queue.ranking() == before and queue.rerank(first_column) == 60  # untouched, lock released


def test_repeated_reranks_see_dead_rows_and_new_segments(queue: RankedQueue, add: Add, redis_client: redis.Redis, namespace: str) -> None:
    ids = fill(add, 200)
    queue.rerank(first_column, version=1)
    for i in ids[50:100] + ids[3:5]:  # a whole segment dies (freed) and two rows of another
        queue.mark_labeled(i, f"L-{i}")
    fill(add, 30, prefix="n")
    assert queue.rerank(lambda i, X: -first_column(i, X), version=2) == 200 - 52 + 30
    plain = RankedQueue(redis_client, QueueKeys(namespace))  # no cache, fresh client: reads everything
    got = dict(queue.ranking())
    assert plain.rerank(lambda i, X: -first_column(i, X), version=3) == len(got)
    assert dict(plain.ranking()) == got and "i3" not in got and "i60" not in got and "n0" in got


# --------------------------------------------------------------------------- storage and counts


def test_features_round_trip(queue: RankedQueue, add: Add) -> None:
    ids = fill(add, 130)
    queue.claim(ids[:3], "ann", ttl=100)
    seen: dict[str, np.ndarray] = {}
    for chunk_ids, X in queue.iter_pending(chunk=40):
        assert X.dtype == np.float32 and len(chunk_ids) == len(X) <= 40
        seen.update(zip(chunk_ids, X, strict=True))
    assert sorted(seen) == sorted(ids[3:])  # leased items are not pending
    np.testing.assert_array_equal(seen["i77"], feats(1, start=77)[0])
    sample_ids, X = queue.sample(10, np.random.default_rng(0))
    assert sample_ids == queue.sample(10, np.random.default_rng(0))[0] and len(set(sample_ids)) == 10
    np.testing.assert_array_equal(X, feats(130)[[int(i[1:]) for i in sample_ids]])
    big = np.array([[0.5, 1e6, -1e6]], dtype=np.float32)
    add(["big"], np.array([0.0]), big)
    clipped = 65504.0 if queue.get_meta("feature_dtype") == "float16" else 1e6
    np.testing.assert_array_equal(queue.features_of(["big"])[0], [0.5, clipped, -clipped])


def test_width_bookkeeping(queue: RankedQueue, add: Add) -> None:
    assert queue.ensure_n_features(3) == 3 and queue.ensure_n_features(5) == 3  # the first one wins
    assert queue.stored_widths() == []
    fill(add, 20)
    add(["w0", "w1"], np.zeros(2), np.ones((2, 5), np.float32))  # a scorer with another width (mixed)
    assert queue.stored_widths() == [3, 5]
    widths: list[int] = []

    def score(chunk_ids: object, X: np.ndarray) -> np.ndarray:
        widths.append(X.shape[1])  # one width per model call
        return first_column(chunk_ids, X)

    assert queue.rerank(score) == 22 and sorted(set(widths)) == [3, 5]
    queue.mark_labeled("w0", "L0")
    queue.skip("w1", "ann", max_skips=1)  # dropped: its segment is freed too
    assert queue.stored_widths() == [3]
    assert queue.agree_meta("feature_dtype", "float64") == queue.get_meta("feature_dtype")  # fixed by the first writer


def test_counts(queue: RankedQueue, add: Add) -> None:
    assert (queue.depth(), queue.n_waiting(), queue.n_leased(), queue.n_labeled(), queue.oldest_age()) == (0, 0, 0, 0, 0.0)
    add(["a", "b", "c", "d"], np.array([0.4, 0.3, 0.2, -1.0]), feats(4), now=100.0)
    queue.claim(["a"], "ann", ttl=10, now=1000.0)
    queue.claim(["b"], "grp", ttl=100, now=1000.0)
    assert queue.depth() == 2 and queue.n_scored() == 1
    assert (queue.n_waiting(now=1005.0), queue.n_leased(now=1005.0)) == (2, 2)
    assert (queue.n_waiting(now=1011.0), queue.n_leased(now=1011.0)) == (3, 1)  # a lease that ran out is waiting
    assert (queue.n_leased_by("ann"), queue.n_leased_by("grp")) == (1, 1)
    assert queue.oldest_age(now=130.0) == 30.0
    queue.mark_labeled("b", "L-b")
    assert queue.n_labeled() == 1 and queue.n_leased_by("grp") == 0
    assert queue.expire_leases(now=1011.0) == 1 and queue.depth() == 3 and queue.n_leased_by("ann") == 0


def test_segments_are_freed_with_their_last_row(queue: RankedQueue, add: Add) -> None:
    queue.segment_rows = 0  # (one segment per call: a known layout)
    ids = fill(add, 20, batch=10)
    for i in ids[:10]:
        queue.mark_labeled(i, f"L-{i}")
    left = sorted(k.decode() for k in queue.r.scan_iter(match=f"{queue.k.segment_prefix}*"))
    assert left == [queue.k.segment_features(2), queue.k.segment_ids(2), queue.k.segment_token(2)]
    queue.claim(ids[10:12], "ann", ttl=10)
    for j, i in enumerate(ids[10:]):
        if j % 2:
            queue.mark_labeled(i, f"L-{i}")
        else:
            queue.skip(i, "ann", max_skips=1)
    assert list(queue.r.scan_iter(match=f"{queue.k.segment_prefix}*")) == []
    assert queue.oldest_age() == 0.0 and list(queue.iter_pending()) == [] and queue.stored_widths() == []


def test_clear_empties_the_namespace_and_starts_over(queue: RankedQueue, add: Add, redis_client: redis.Redis, namespace: str) -> None:
    other = RankedQueue(redis_client, QueueKeys(f"{namespace}-other"))
    other.add(["x"], np.array([0.5]), feats(1))
    fill(add, 60)
    queue.rerank(first_column, version=1)
    queue.clear()
    assert list(redis_client.scan_iter(match=f"{queue.k.prefix}:{namespace}:*")) == []
    assert other.depth() == 1  # another namespace is left alone
    ids = fill(add, 60)  # segment numbers start again, with other rows under them
    queue.rescore(ids, np.zeros(60))
    assert queue.rerank(lambda i, X: -first_column(i, X)) == 60
    assert queue.top(1) == [("i0", 0.0)] and queue.ranked_version() == 0
    other.clear()
