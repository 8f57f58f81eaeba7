"""Uncertainty scores: hand-computed values and property-based invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from activestream.scorer import uncertainty as u

P = np.array(
    [
        [0.5, 0.3, 0.2],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
        [0.45, 0.45, 0.10],
    ]
)


def test_least_confidence_hand_computed() -> None:
    np.testing.assert_allclose(u.least_confidence(P), [0.5, 0.0, 2 / 3, 0.55])


def test_margin_hand_computed() -> None:
    # 1 - (p1 - p2): 1-(0.5-0.3)=0.8 ; 1-(1-0)=0 ; 1-0=1 ; ties -> 1
    np.testing.assert_allclose(u.margin(P), [0.8, 0.0, 1.0, 1.0])


def test_entropy_hand_computed() -> None:
    h0 = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2))  # 1.0297 nats
    np.testing.assert_allclose(u.entropy(P)[:3], [h0, 0.0, np.log(3)], rtol=1e-12)
    np.testing.assert_allclose(u.entropy(P, normalize=True)[2], 1.0)
    assert abs(h0 - 1.0296530140645737) < 1e-12


def test_zero_probabilities_do_not_produce_nan() -> None:
    with np.errstate(all="raise"):
        assert np.isfinite(u.entropy(np.array([[0.0, 1.0]]))).all()
        assert np.isfinite(u.binary_entropy(np.array([[0.0, 1.0, 0.5]]))).all()


def test_binary_and_multilabel_entropy() -> None:
    np.testing.assert_allclose(u.binary_entropy(np.array([[0.5, 0.0, 1.0]])), [[1.0, 0.0, 0.0]])
    p = np.array([[0.5, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(u.multilabel_mean_entropy(p), [0.5, 1.0])
    np.testing.assert_allclose(u.multilabel_max_entropy(p), [1.0, 1.0])


def test_single_class_model_scores_zero() -> None:
    one = np.ones((3, 1))
    np.testing.assert_allclose(u.margin(one), 0.0)
    np.testing.assert_allclose(u.least_confidence(one), 0.0)
    np.testing.assert_allclose(u.entropy(one), 0.0)


def test_committee_disagreement() -> None:
    agree = np.array([[[0.9, 0.1]], [[0.8, 0.2]]])  # (members=2, n=1, k=2)
    split = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])
    assert u.vote_entropy(agree)[0] == 0.0
    np.testing.assert_allclose(u.vote_entropy(split), [np.log(2)])
    # BALD: H(mean) - mean H ; for `split` mean=(0.5,0.5) -> ln2 - H(0.9,0.1)
    h = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(u.mutual_information(split), [np.log(2) - h])
    assert u.mutual_information(agree)[0] < u.mutual_information(split)[0]


def test_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="2-D"):
        u.margin(np.array([0.5, 0.5]))


def _probas(n_classes: int):
    return arrays(np.float64, (5, n_classes), elements=st.floats(0.0, 1.0)).filter(lambda a: (a.sum(axis=1) > 1e-6).all()).map(
        lambda a: a / a.sum(axis=1, keepdims=True)
    )


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 6), data=st.data())
def test_scores_bounded_and_permutation_invariant(k: int, data: st.DataObject) -> None:
    p = data.draw(_probas(k))
    perm = data.draw(st.permutations(range(k)))
    for fn, hi in ((u.least_confidence, 1 - 1 / k), (u.margin, 1.0), (u.entropy, np.log(k))):
        s = fn(p)
        assert s.shape == (5,)
        assert (s >= -1e-12).all() and (s <= hi + 1e-9).all()
        np.testing.assert_allclose(fn(p[:, perm]), s, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 6), data=st.data())
def test_uniform_is_maximal(k: int, data: st.DataObject) -> None:
    p = data.draw(_probas(k))
    uniform = np.full((1, k), 1.0 / k)
    for fn in (u.least_confidence, u.margin, u.entropy):
        assert fn(uniform)[0] >= fn(p).max() - 1e-9


def test_multilabel_adaptive_by_hand() -> None:
    from activestream.scorer.uncertainty import binary_entropy, multilabel_adaptive

    p = np.array([[0.9, 0.6], [0.1, 0.2]])
    u = binary_entropy(p).mean(axis=1)
    c = np.abs((p >= 0.5).sum(axis=1) - 1.0) + 1e-3  # predicted counts 2 and 0, labeled mean 1
    np.testing.assert_allclose(multilabel_adaptive(p, 1.0), np.sqrt(u * c))
    np.testing.assert_allclose(multilabel_adaptive(p, 1.0, beta=1.0), u)  # beta 1: uncertainty alone
    with pytest.raises(ValueError, match="beta"):
        multilabel_adaptive(p, 1.0, beta=1.5)
