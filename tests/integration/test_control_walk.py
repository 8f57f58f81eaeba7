"""The random-control walk (issue 20): its sample stays uniform over the pool whatever the strategy labeled first (real Redis)."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from activestream.labeling.control_picks import ControlPicker
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import sampling_keys
from activestream.retrainer.estimates import walked_sample

pytestmark = pytest.mark.integration


def test_the_walked_sample_is_uniform_over_the_pool_where_control_picks_alone_are_the_easy_remainder(redis_client: redis.Redis,
                                                                                                    namespace: str) -> None:
    # A pool of 1,500 items of "difficulty" d ~ U(0, 1); a strategy labels the hardest ones first (score = d), 9 ranked
    # picks to 1 control pick, until 600 are labeled: the pending ones left are the easiest.
    n = 1500
    d = np.random.default_rng(3).random(n)
    q = RankedQueue(redis_client, QueueKeys(namespace))
    ids = [f"i{j}" for j in range(n)]
    q.add(ids, d, np.zeros((n, 2), dtype=np.float32))
    picker = ControlPicker(q, 0.1, np.random.default_rng(0))
    labeled: list[str] = []
    control: list[bool] = []
    while len(labeled) < 600:
        picks = [i for i, _ in picker.pick(1, "ann", 300.0, q.now())]
        ranked = [i for i, _ in q.claim([i for i, _ in q.top(9)], "ann", 300.0)]
        for i in picks + ranked:
            q.mark_labeled(i, f"l-{i}")
        labeled += picks + ranked
        control += [True] * len(picks) + [False] * len(ranked)
    idx = np.array([int(i[1:]) for i in labeled])
    flags = np.array(control)
    sample = walked_sample(sampling_keys(labeled), flags)
    assert flags.sum() == 60 and sample.sum() >= 75  # the strategy's labels below the walk's frontier come for free
    # The control picks alone are what the strategy left: far easier than the pool (d's mean 0.5).
    assert d[idx[flags]].mean() < 0.42
    # The walked sample is a uniform sample: every pool item with a key up to its frontier, labeled by whichever side.
    frontier = sampling_keys(labeled)[flags].max()
    below = sampling_keys(ids) <= frontier
    assert set(np.flatnonzero(below)) == set(idx[sample])
    se = d.std() / np.sqrt(sample.sum())
    assert abs(d[idx[sample]].mean() - d.mean()) < 3 * se
