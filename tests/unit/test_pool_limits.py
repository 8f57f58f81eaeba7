"""Pure parts of the capped pool: limits from the settings, thresholds, sampling keys."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from activestream.config import Settings
from activestream.rankedqueue.leases import smallest
from activestream.rankedqueue.pool import SAMPLING_SEED, PoolLimits, SamplingKeyCache, Thresholds, best_first, sampling_keys


def test_limits_from_the_settings() -> None:
    s = Settings()
    assert (s.pool_capacity, s.pool_max_age, s.reservoir_share) == (1_000_000, 0.0, 0.1)
    assert PoolLimits.of(s.pool_capacity, s.reservoir_share, s.pool_max_age) == PoolLimits(1_000_000, 100_000, None)
    assert PoolLimits.of(0, 0.5, 30.0) == PoolLimits(None, 0, 30.0)  # 0: no cap, and no reservoir without one
    # (an audit: a share that rounded to no member, 0.1 of 4 or 0.001 of 500, silently left the control to the pending items)
    assert [PoolLimits.of(c, share, 0).reservoir for c, share in [(4, 0.1), (500, 0.001), (25, 0.1), (500, 0.0)]] == [1, 1, 2, 0]


@pytest.mark.parametrize(("name", "raw"), [("POOL_CAPACITY", "-1"), ("POOL_MAX_AGE", "-5"), ("RESERVOIR_SHARE", "1"), ("POOL_MAX_AGE", "inf")])
def test_out_of_range_settings_are_refused(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=f"ACTIVESTREAM_{name}"):
        Settings.from_env({f"ACTIVESTREAM_{name}": raw})


def test_a_negative_capacity_is_told_what_zero_means() -> None:
    with pytest.raises(ValueError, match=r"ACTIVESTREAM_POOL_CAPACITY=-1: expected an integer >= 0 \(0: no cap\)"):
        Settings.from_env({"ACTIVESTREAM_POOL_CAPACITY": "-1"})


def test_thresholds_keep_what_beats_either() -> None:
    t = Thresholds.parse(b"0.5", b"0.25", True)
    scores, keys = np.array([0.4, 0.6, 0.5, 0.1]), np.array([0.9, 0.9, 0.9, 0.2])
    assert t.wanted(scores, keys).tolist() == [False, True, False, True]  # an equal score does not outrank
    assert Thresholds.parse(b"", b"", True) == Thresholds(-math.inf, math.inf)  # nothing full: send everything
    assert Thresholds.parse(b"0.5", b"", False).reservoir == 0.0  # no reservoir: keys never pass


def test_sampling_keys_are_stable_and_uniform() -> None:
    ids = [f"item-{i}" for i in range(100_000)]
    u = sampling_keys(ids)
    assert ((u >= 0) & (u < 1)).all() and sampling_keys(ids[:3]).tolist() == u[:3].tolist()
    # deciles of 100,000 keys: each within 3% of 10,000 (the binomial sd is 95)
    counts = np.bincount((u * 10).astype(int), minlength=10)
    assert np.abs(counts - 10_000).max() < 300, counts


def test_sampling_keys_are_the_keyed_blake2b_of_the_id() -> None:
    # Reservoirs already in Redis hold keys computed this way: a faster computation must give the same ones.
    ids = ["item-1", "é-2", "x" * 300]
    want = [(int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, key=SAMPLING_SEED).digest(), "little") >> 11) * 2.0**-53 for i in ids]
    assert sampling_keys(ids).tolist() == want
    assert sampling_keys([]).shape == (0,)


def test_the_key_cache_gives_the_keys_of_sampling_keys_within_its_limit() -> None:
    cache = SamplingKeyCache(limit=100)
    rng = np.random.default_rng(0)
    for n in (5, 60, 99, 150, 30, 101, 0, 80):  # (within, past and over the limit; ids repeated within and across calls)
        ids = [f"x{j}" for j in rng.integers(0, 300, n)]
        assert np.array_equal(cache([i.encode() for i in ids]), sampling_keys(ids))  # (ids encoded, as Redis returns them)
        assert len(cache._keys) <= 100


def test_smallest_takes_the_first_keys_of_a_stable_sort() -> None:
    rng = np.random.default_rng(1)
    for n, k in [(10, 3), (100, 100), (100, 150), (1000, 1), (1000, 256)]:
        keys = rng.random(n)
        assert list(smallest(keys, k)) == list(np.argsort(keys, kind="stable")[:k])


def test_best_first_keeps_each_ids_first_occurrence_highest_score_first_ties_in_arrival_order() -> None:
    ids = ["a", "b", "c", "a", "d", "b", "e"]
    scores = np.array([0.2, 0.9, 0.5, 0.99, 0.5, 0.1, 0.7])
    order = best_first(ids, scores)
    assert [ids[j] for j in order] == ["b", "e", "c", "d", "a"]  # a and b again (3, 5) are left out; c before d (a tie)
    assert order.tolist() == [1, 6, 2, 4, 0]
    assert best_first([], np.zeros(0)).tolist() == []
