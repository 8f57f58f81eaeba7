"""The trainer's logistic regressions reach scikit-learn's ``LogisticRegression`` solution (retrainer/logistic.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from activestream.retrainer.logistic import fit_binomial, fit_binomial_heads, fit_softmax
from activestream.retrainer.trainer import Trainer


def _standardized(X: np.ndarray) -> np.ndarray:
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return (X - X.mean(axis=0)) / scale  # type: ignore[no-any-return]


@pytest.mark.parametrize("C", [1.0, 0.1])
def test_softmax_warm_started_matches_sklearn_along_a_campaign(C: float) -> None:
    """Labels arriving ten at a time, each fit warm-started from the last: the same iterations and coefficients."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    est = LogisticRegression(C=C, max_iter=200, warm_start=True)
    start = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n in range(60, 260, 10):
            Z, yl = _standardized(X[order[:n]]), y[order[:n]]
            if len(np.unique(yl)) < 10:
                continue
            est.fit(Z, yl)
            coef, n_iter = fit_softmax(Z, yl, 10, C=C, start=start)
            start = coef
            assert n_iter == est.n_iter_[0]
            np.testing.assert_allclose(coef[:-1].T, est.coef_, atol=1e-10)  # (measured: at most 1e-12 apart)
            np.testing.assert_allclose(coef[-1], est.intercept_, atol=1e-10)


def test_binomial_matches_sklearn() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    Z = _standardized(X[:200])
    est = LogisticRegression(C=1.0, max_iter=200).fit(Z, y[:200])
    coef, n_iter = fit_binomial(Z, y[:200])
    assert n_iter == est.n_iter_[0]
    np.testing.assert_allclose(coef[:-1], est.coef_[0], atol=1e-10)
    np.testing.assert_allclose(coef[-1], est.intercept_[0], atol=1e-10)


def test_binomial_heads_reach_each_heads_own_solution() -> None:
    """One optimization of independent heads: each head's solution, to the optimizer's tolerance."""
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=6, random_state=0)
    Z = _standardized(X.astype(float))
    joint, _ = fit_binomial_heads(Z, Y, tol=1e-8)
    for j in range(Y.shape[1]):
        est = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(Z, Y[:, j])
        np.testing.assert_allclose(joint[:-1, j], est.coef_[0], atol=1e-5)
        np.testing.assert_allclose(joint[-1, j], est.intercept_[0], atol=1e-5)
    # Warm-started from the solution it stays there (no step worth taking).
    again, n_iter = fit_binomial_heads(Z, Y, start=joint, tol=1e-6)
    assert n_iter <= 1
    np.testing.assert_allclose(again, joint, atol=1e-6)


def test_non_finite_features_are_refused_with_a_reason() -> None:
    Z = np.zeros((4, 2))
    Z[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_softmax(Z, np.array([0, 1, 2, 0]), 3)


def test_trainer_multilabel_heads_match_per_head_fits() -> None:
    """The trainer's multi-label heads: constant heads for labels seen in one state only, the others fitted together."""
    X, Y = make_multilabel_classification(n_samples=200, n_features=10, n_classes=4, random_state=1)
    Y[:, 3] = 0  # a label never seen present: no head is fitted for it ...
    y = [[f"l{j}" for j in np.flatnonzero(row)] for row in Y]
    heads = Trainer(task="multilabel").fit(X, y)
    assert heads.classes == ("l0", "l1", "l2")  # ... and it is no label name at all
    Z = (X - heads.mean) / heads.scale
    for j in range(3):
        est = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(Z, Y[:, j])
        np.testing.assert_allclose(heads.W[0, :, j], est.coef_[0], atol=5e-3)


def test_extreme_logits_fit_without_overflow_warnings() -> None:
    """Heavy-tailed features and a weak penalty drive logits past exp's range: the sigmoid saturates, no RuntimeWarning."""
    rng = np.random.default_rng(15)
    X = rng.standard_cauchy((120, 6))
    y = X[:, 0] + 0.01 * rng.normal(size=120) > np.median(X[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        heads = Trainer(C=100.0).fit(X, ["a" if v else "b" for v in y])
        Trainer(task="multilabel", C=100.0).fit(X, [["a"] if v else ["b"] for v in y])
    assert np.isfinite(heads.W).all() and np.isfinite(heads.b).all()
