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


@pytest.mark.parametrize(("n_features", "space"), [(300, "proj"), (40, "features")])
def test_density_measures_in_the_projection_from_many_features_on(n_features: int, space: str, redis_client: redis.Redis, namespace: str) -> None:
    rng = np.random.default_rng(1)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    pool = rng.normal(size=(300, n_features)).astype(np.float32)
    queue.add([f"q{j}" for j in range(300)], rng.uniform(size=300), pool)
    X, ids = pool[:100].astype(np.float64), [f"q{j}" for j in range(100)]
    scores = np.linspace(1.0, 0.5, 100)
    _, R = queue.sample(500, np.random.default_rng((5, 7)))  # the service's reference draw for seed 5
    both = np.vstack([X, R])
    Z = selection.random_projection(both, PROJECTION_DIM, seed=5) if space == "proj" else both
    expected = selection.density_weighted(scores, Z[:100], 10, reference=Z[100:], standardize=space == "features")
    if space == "proj":
        assert expected != selection.density_weighted(scores, X, 10, reference=R)  # (else the spaces look alike)
    svc = make_label_service(Strategy("margin+density", 5), queue, InMemoryBus(), Topics(namespace))
    try:
        assert svc.select_batch(ids, scores, X, 10) == expected
    finally:
        svc.close()
