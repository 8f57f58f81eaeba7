from __future__ import annotations

import numpy as np
import pytest

from activestream.scorer.strategies import NAMES, Strategy, random_scores


def test_random_scores_deterministic_and_uniform() -> None:
    ids = [str(i) for i in range(5000)]
    a = random_scores(ids, seed=1)
    np.testing.assert_array_equal(a, random_scores(ids, seed=1))
    assert not np.array_equal(a, random_scores(ids, seed=2))
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.02


def test_cold_start_is_random_order_without_model() -> None:
    s = Strategy("margin", seed=3)
    ids = ["a", "b", "c"]
    np.testing.assert_array_equal(s.score(None, ids), random_scores(ids, 3))


def test_margin_strategy_prefers_uncertain() -> None:
    p = np.array([[0.9, 0.1], [0.55, 0.45]])
    s = Strategy("margin").score(p, ["x", "y"])
    assert s[1] > s[0]


def test_multilabel_uses_binary_entropy() -> None:
    p = np.array([[0.99, 0.01], [0.5, 0.5]])
    s = Strategy("entropy").score(p, ["x", "y"], task="multilabel")
    assert s[1] == pytest.approx(1.0) and s[0] < 0.1


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        Strategy("nope")
    assert "random" in NAMES


def test_committee_strategies_use_members_and_fall_back() -> None:
    members = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]])  # (m=2, n=2, k=2)
    mean = members.mean(axis=0)
    bald = Strategy("bald+kmeans")
    assert bald.needs_members and bald.batch_mode == "kmeans"
    s = bald.score(mean, ["a", "b"], members=members)
    assert s[0] > 0.3 and s[1] == pytest.approx(0.0)  # disagreement, not noise, is what BALD rewards
    # Without members (a single-head model) it scores like entropy.
    np.testing.assert_allclose(bald.score(mean, ["a", "b"]), [np.log(2), np.log(2)])
    ve = Strategy("vote_entropy").score(mean, ["a", "b"], members=members)
    assert ve[0] == pytest.approx(np.log(2)) and ve[1] == 0.0


def test_multilabel_margin_weighs_cardinality_inconsistency_when_the_model_gives_it() -> None:
    # Same per-label uncertainty (mean binary entropy) for both items; item 1 is predicted
    # with 3 labels where labeled items carry 1 on average, item 0 with 1.
    p = np.array([[0.8, 0.2, 0.2], [0.8, 0.8, 0.8]])
    s = Strategy("margin")
    plain = s.score(p, ["a", "b"], task="multilabel")
    np.testing.assert_allclose(plain[0], plain[1])
    weighted = s.score(p, ["a", "b"], task="multilabel", label_cardinality=1.0)
    assert weighted[1] > weighted[0]
    # Other names keep the mean entropy; multi-class ignores the cardinality.
    np.testing.assert_allclose(Strategy("entropy").score(p, ["a", "b"], task="multilabel", label_cardinality=1.0), plain)
    mc = np.array([[0.6, 0.4], [0.9, 0.1]])
    np.testing.assert_allclose(s.score(mc, ["a", "b"], label_cardinality=1.0), s.score(mc, ["a", "b"]))
