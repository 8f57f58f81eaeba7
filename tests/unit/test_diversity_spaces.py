"""Low-dimensional diversity spaces (``@proj``, ``@pca``): the projections and their strategy names (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.labeling.selection import k_center_greedy, pca_projection, random_projection
from activestream.scorer.strategies import Strategy


def _sq_dists(Z: np.ndarray) -> np.ndarray:
    d = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    return d[np.triu_indices(len(Z), 1)]


def _standardized(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


def test_random_projection_is_fixed_per_seed_and_keeps_distances_on_average() -> None:
    X = np.random.default_rng(0).normal(size=(60, 500))
    Z = random_projection(X, 32, seed=3)
    assert Z.shape == (60, 32)
    np.testing.assert_array_equal(Z, random_projection(X, 32, seed=3))  # every batch of a campaign alike
    assert not np.allclose(Z, random_projection(X, 32, seed=4))
    S = _standardized(X)
    ratio = _sq_dists(Z) / _sq_dists(S)
    assert abs(ratio.mean() - 1.0) < 0.1  # Johnson-Lindenstrauss: unbiased squared distances
    assert 0.3 < ratio.min() and ratio.max() < 2.5


def test_projections_leave_few_features_as_they_are() -> None:
    X = np.random.default_rng(1).normal(size=(20, 8))
    np.testing.assert_allclose(random_projection(X, 32), _standardized(X))


def test_pca_keeps_all_distances_when_it_keeps_every_component() -> None:
    X = np.random.default_rng(2).normal(size=(12, 50))
    Z = pca_projection(X, 32)
    assert Z.shape == (12, 12)
    np.testing.assert_allclose(_sq_dists(Z), _sq_dists(_standardized(X)), rtol=1e-9)
    assert pca_projection(X, 3).shape == (12, 3)


def test_k_center_in_a_projection_covers_both_blobs_of_many_features() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, size=(50, 400)), rng.normal(10, 1, size=(50, 400))])
    s = np.r_[np.full(50, 0.9), np.full(50, 0.8)] + rng.uniform(0, 0.01, 100)  # blob A scores higher
    for Z in (random_projection(X, 32, seed=0), pca_projection(X, 32)):
        picked = k_center_greedy(s, Z, 4, prefilter=25, standardize=False)
        assert set(np.array(picked) // 50) == {0, 1}


def test_proj_and_pca_space_suffixes() -> None:
    assert Strategy("margin+kcenter@proj").diversity_space == "proj"
    assert Strategy("margin+density@pca").batch_mode == "density"
    assert Strategy("margin+kmeans@proj").batch_mode == "kmeans"
    with pytest.raises(ValueError, match="diversity space"):
        Strategy("margin+falcun@proj")


def test_density_defaults_to_the_projection_from_many_features_on() -> None:
    from activestream.scorer.strategies import DENSITY_PROJ_MIN_FEATURES as n

    assert Strategy("margin+density").space_for(n) == "proj"
    assert Strategy("margin+density").space_for(n - 1) == "features"
    assert Strategy("margin+density@features").space_for(784) == "features"  # a named space wins
    assert Strategy("margin+kcenter").space_for(784) == "features"  # k-center and k-means gained nothing from it
    assert Strategy("margin+kmeans@pca").space_for(784) == "pca"
