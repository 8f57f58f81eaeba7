from __future__ import annotations

import numpy as np
import pytest

from scorer.strategies import NAMES, Strategy, random_scores


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
