"""A labeling service built for ``@proj`` / ``@pca`` measures k-center distances in that space (the factory's wiring)."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from activestream.labeling import selection
from activestream.labeling.factory import PROJECTION_DIM, make_label_service
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.scorer.strategies import Strategy
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics


@pytest.mark.parametrize("space", ["proj", "pca"])
def test_kcenter_batches_are_chosen_in_the_named_space(space: str, redis_client: redis.Redis, namespace: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 300))
    scores = np.linspace(1.0, 0.5, 100)
    ids = [f"i{j}" for j in range(100)]
    low = selection.random_projection(X, PROJECTION_DIM, seed=5) if space == "proj" else selection.pca_projection(X, PROJECTION_DIM)
    expected = selection.k_center_greedy(scores, low, 10, seed=5, standardize=False)
    on_features = selection.k_center_greedy(scores, X, 10, seed=5)
    assert expected != on_features  # (else this test could not tell the spaces apart)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    svc = make_label_service(Strategy(f"margin+kcenter@{space}", 5), queue, InMemoryBus(), Topics(namespace))
    try:
        assert svc.select_batch(ids, scores, X, 10) == expected
    finally:
        svc.close()
