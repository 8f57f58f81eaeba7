"""The segments' bookkeeping under a random mix of queue operations, checked after every one (real redis-server).

Appends, merges, compaction, evictions (by rank and by age), leases, labels, skips, expiries, reservoir promotions and
re-ranks through the segment cache interleave at random on a small pool with small segments; after each operation
every live row is its item's, the counts and indexes agree, and labeled ids keep their tombstones.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import PoolLimits

pytestmark = pytest.mark.integration


def row(j: int) -> np.ndarray:
    return np.array([j, j + 0.25, j + 0.5], np.float32)


def rerank_score(ids: object, X: np.ndarray) -> np.ndarray:
    return (X[:, 0] * 0.618) % 1.0


def check(r: redis.Redis, k: QueueKeys, labeled: set[str], step: int) -> None:
    widths = {s.decode(): int(w) for s, w in r.hgetall(k.segment_width).items()}
    live = {s.decode(): int(v) for s, v in r.hgetall(k.segment_live).items()}
    times = {s.decode() for s in r.zrange(k.segment_time, 0, -1)}
    assert set(widths) == set(live) == times, step
    fl = {a.decode(): b.decode() for a, b in r.hgetall(k.featloc).items()}
    for s, width in widths.items():
        blob, f, d = r.get(k.segment_ids(s)), r.get(k.segment_features(s)), r.get(k.segment_dead(s)) or b""
        assert blob is not None and f is not None, (step, s)
        n = int.from_bytes(blob[:4], "little")
        lens, pos, ids = np.frombuffer(blob, "<u2", n, 4), 4 + 2 * n, []
        for ln in lens.tolist():
            ids.append(blob[pos : pos + ln].decode())
            pos += ln
        bits = np.unpackbits(np.frombuffer(d, np.uint8)) if d else np.zeros(0, np.uint8)
        assert not bits[n:].any(), (step, s, "a dead bit past the row count")
        dead = np.zeros(n, bool)
        dead[: min(n, len(bits))] = bits[:n].astype(bool)
        assert len(f) == n * width, (step, s)
        X = np.frombuffer(f, np.float32).reshape(n, -1)
        for i, item in enumerate(ids):
            if not dead[i]:
                assert fl.get(item) == f"{s}:{i}", (step, "a live row that is not its id's", s, i, item, fl.get(item))
                np.testing.assert_array_equal(X[i], row(int(item[1:])))
        assert live[s] == int((~dead).sum()), (step, s)
    held = {m.decode() for m in r.zrange(k.pending, 0, -1)} | {m.decode() for m in r.zrange(k.leased, 0, -1)}
    assert all(fl.get(item, "") != "" for item in held), (step, "a pending or leased item without a row")
    assert all(fl.get(item) == "" for item in labeled), (step, "a labeled id got a location")


@pytest.mark.parametrize("max_age", [0.0, 40.0])
def test_segments_stay_consistent_through_a_random_mix_of_operations(redis_client: redis.Redis, namespace: str, max_age: float) -> None:
    k = QueueKeys(namespace)
    q = RankedQueue(redis_client, k, pool=PoolLimits.of(60, 0.1, max_age), segment_rows=16, segment_cache_bytes=1 << 22)
    rng = np.random.default_rng(0)
    labeled: set[str] = set()
    nxt, t = 0, 1_000_000.0
    for step in range(1200):
        t += float(rng.choice([0.01, 0.5, 3.0, 7.0]))
        op = rng.random()
        if op < 0.45:
            m = int(rng.choice([1, 1, 2, 3, 5, 40]))
            ids = [f"s{nxt + j}" for j in range(m)]
            nxt += m
            if rng.random() < 0.2 and nxt > 50:  # some sent again (maybe evicted since)
                ids += [f"s{int(x)}" for x in rng.integers(0, nxt - m, 3)]
            q.add(ids, rng.random(len(ids)), np.stack([row(int(i[1:])) for i in ids]), now=t)
        elif op < 0.6:
            top = q.ranking()[-3:]
            if top:
                q.claim([i for i, _ in top], "ann", 30.0, now=t)
        elif op < 0.7:
            held = q.leased_by("ann")
            if held:
                item = held[int(rng.integers(len(held)))]
                if q.mark_labeled(item, f"L-{item}"):
                    labeled.add(item)
        elif op < 0.75:
            held = q.leased_by("ann")
            if held:
                q.skip(held[0], "ann", 2, now=t)
        elif op < 0.8:
            q.expire_leases(now=t)
        elif op < 0.85 and max_age:
            q.evict_older_than(max_age, now=t)
        elif op < 0.9:
            members = q.reservoir_ids([0, 1])
            if members:
                q.promote(members)
        elif op < 0.93:
            q.rerank(rerank_score, version=step)
            for item, score in q.ranking():
                assert score == pytest.approx(float((np.float32(int(item[1:])) * 0.618) % 1.0), abs=1e-9), (step, item)
        check(redis_client, k, labeled, step)
    if not max_age:
        assert redis_client.hget(k.meta, "mergeseq") is not None  # (merges happened)
