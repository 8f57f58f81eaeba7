"""The strategy bandit (albl), diversity spaces and their strategy names (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.labeling.bandit import Exp3, true_class_probability
from activestream.labeling.selection import k_center_greedy
from activestream.scorer.strategies import BANDIT, BANDIT_ARMS, Strategy


def test_albl_is_a_strategy_scored_by_margin() -> None:
    s = Strategy(BANDIT)
    assert s.batch_mode == BANDIT and s.score_name == "margin"
    p = np.array([[0.9, 0.1], [0.55, 0.45]])
    np.testing.assert_array_equal(s.score(p, ["x", "y"]), Strategy("margin").score(p, ["x", "y"]))
    for arm in BANDIT_ARMS:  # every arm is a strategy of its own
        Strategy(arm)


def test_diversity_space_suffix() -> None:
    assert Strategy("margin+kcenter").diversity_space == "features"
    s = Strategy("margin+kcenter@proba")
    assert (s.batch_mode, s.diversity_space, s.score_name) == ("kcenter", "proba", "margin")
    assert Strategy("margin+density@features").batch_mode == "density"
    with pytest.raises(ValueError, match="diversity space"):
        Strategy("margin+falcun@proba")  # FALCUN is in probability space already
    with pytest.raises(ValueError, match="diversity space"):
        Strategy("margin+kcenter@pixels")


def test_exp3_keeps_a_floor_and_moves_to_the_rewarded_arm() -> None:
    b = Exp3(("a", "b", "c", "d"), gamma=0.2, eta=2.0)
    np.testing.assert_allclose(b.probabilities(), 0.25)
    rng = np.random.default_rng(0)
    for _ in range(300):
        arm, p = b.choose(rng)
        b.update(arm, 0.05 if arm == 2 else -0.05, p)  # arm "c" improves the model, the others hurt it
    p = b.probabilities()
    assert p.argmax() == 2 and p[2] > 0.8
    assert p.min() >= 0.2 / 4 - 1e-12  # never below gamma / K: every arm keeps being tried
    st = b.state()
    assert st["strategy_weight_c"] == pytest.approx(p[2]) and sum(st[f"strategy_picks_{a}"] for a in "abcd") == 300


def test_exp3_is_unbiased_for_equal_arms() -> None:
    b = Exp3(("a", "b"), gamma=0.2, eta=0.5)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        arm, p = b.choose(rng)
        b.update(arm, 0.01, p)  # the same reward for both: no arm should run away
    assert abs(b.probabilities()[0] - 0.5) < 0.3


def test_true_class_probability() -> None:
    assert true_class_probability(np.array([0.2, 0.7, 0.1]), ("a", "b", "c"), "b", "multiclass") == pytest.approx(0.7)
    assert true_class_probability(np.array([0.2, 0.8]), (0, 1), 1, "multiclass") == pytest.approx(0.8)
    assert true_class_probability(np.array([0.5, 0.5]), ("a", "b"), "z", "multiclass") is None  # a class the model has not seen
    # multi-label: mean probability of each label's true value: (0.9 + (1 - 0.2)) / 2
    assert true_class_probability(np.array([0.9, 0.2]), ("x", "y"), ["x"], "multilabel") == pytest.approx(0.85)


def test_kcenter_in_probability_space_ignores_pixel_outliers() -> None:
    # Ten candidates of one class region (same probabilities) but one with wild pixels, and ten of another:
    # in feature space k-center takes the pixel outlier; in probability space it takes one per region.
    rng = np.random.default_rng(0)
    X = rng.normal(0, 0.1, size=(20, 500))
    X[3] += 50.0  # an outlier in raw features
    P = np.r_[np.tile([0.5, 0.4, 0.1], (10, 1)), np.tile([0.1, 0.45, 0.45], (10, 1))]
    P += rng.uniform(0, 0.01, P.shape)
    s = np.linspace(1.0, 0.9, 20)
    assert 3 in k_center_greedy(s, X, 2, prefilter=10)
    picked = k_center_greedy(s, P, 2, prefilter=10, standardize=False)
    assert sorted(np.array(picked) // 10) == [0, 1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("margin+top", "unknown batch mode 'top' in 'margin+top'; choose one of +kmeans, +kcenter, +density, +falcun (or none: margin"),
        ("margin+", "unknown batch mode '' in 'margin+'"),
        ("margin+falcun@proba", "diversity space @proba in 'margin+falcun@proba': only +kmeans, +kcenter or +density take one"),
        ("margin+kcenter@nope", "unknown diversity space 'nope' in 'margin+kcenter@nope'"),
    ],
)
def test_a_strategy_name_that_is_not_one_says_which_part_is_wrong(name: str, message: str) -> None:
    # ("margin+top" and "margin+" ran as arms of their own beside "margin"; "@proba" on +falcun was called unknown)
    with pytest.raises(ValueError) as refused:
        Strategy(name)
    assert str(refused.value).startswith(message)


def test_a_bad_strategy_setting_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from activestream.wiring import settings_from

    monkeypatch.setenv("ACTIVESTREAM_STRATEGY", "margn")
    with pytest.raises(SystemExit) as refused:
        settings_from(argparse.Namespace())
    assert str(refused.value.code).startswith("error: setting ACTIVESTREAM_STRATEGY (or --strategy): unknown strategy 'margn'")
