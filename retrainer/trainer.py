"""Fitting linear heads (scikit-learn's logistic regression objective), warm-started between versions.

The fitted model is kept as plain arrays (:class:`LinearHeads`) so exporting it to
ONNX and checking it are pure functions of numbers, not of estimator objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activestream.retrainer.logistic import fit_binomial, fit_binomial_heads, fit_softmax

LabelValue = str | int


class NotEnoughClasses(ValueError):
    """The labels seen so far hold fewer than two classes: nothing to separate yet."""


def _plain(v: Any) -> Any:
    """A numpy scalar made plain Python (labels compare and hash as the classes they name)."""
    return v.item() if isinstance(v, np.generic) else v


def sort_classes(values: Sequence[LabelValue]) -> tuple[LabelValue, ...]:
    """Distinct labels (numpy scalars made plain Python) in a stable order, also for mixed str/int labels."""
    plain = {_plain(v) for v in values}
    return tuple(sorted(plain, key=lambda v: (isinstance(v, str), v)))


@dataclass(frozen=True)
class LinearHeads:
    """Standardize, then ``n_members`` linear heads; softmax (multi-class) or sigmoid (multi-label).

    Parameters
    ----------
    mean, scale : (n_features,) standardization.
    W : (n_members, n_features, n_outputs) weights.
    b : (n_members, n_outputs) biases.
    classes : (n_outputs,) class labels (multi-class) or label names (multi-label).
    task : ``"multiclass"`` or ``"multilabel"``.
    """

    mean: np.ndarray
    scale: np.ndarray
    W: np.ndarray
    b: np.ndarray
    classes: tuple[LabelValue, ...]
    task: str = "multiclass"

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def member_probas(self, X: np.ndarray) -> np.ndarray:
        """``X : (n, n_features) -> (n_members, n, n_outputs)`` probabilities (numpy reference)."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        logits = np.einsum("nd,mdk->mnk", Z, self.W) + self.b[:, None, :]
        if self.task == "multilabel":
            return 1.0 / (1.0 + np.exp(-logits))  # type: ignore[no-any-return]
        logits -= logits.max(axis=2, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=2, keepdims=True)  # type: ignore[no-any-return]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``X : (n, n_features) -> (n, n_outputs)``: the members' mean probabilities."""
        return self.member_probas(X).mean(axis=0)  # type: ignore[no-any-return]


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return mean, scale


class Trainer:
    """Fits :class:`LinearHeads` on the current training set, warm-starting from the last fit.

    A multi-class head is ``LogisticRegression(C=C, max_iter=max_iter)``'s solution, found by
    :mod:`~activestream.retrainer.logistic` (the same objective and optimizer, without the
    estimator's per-fit set-up); a multi-label model's heads (one binary regression per label)
    are fitted together in one optimization, each to the optimizer's tolerance. Warm starts
    begin from each head's last solution.

    Parameters
    ----------
    task : ``"multiclass"`` or ``"multilabel"``.
    C : inverse L2 strength of the logistic regressions.
    full_refit_every : every N-th fit starts from scratch (warm starts drift on a moving scaler).
    max_iter : optimizer iterations per fit (warm starts converge in few).
    n_members : heads in the ensemble; member 0 sees every label, the others bootstrap
        resamples of them (their disagreement feeds vote entropy and BALD).
    seed : seed of the bootstrap resamples.
    """

    def __init__(
        self, *, task: str = "multiclass", C: float = 1.0, full_refit_every: int = 10, max_iter: int = 200, n_members: int = 1, seed: int = 0
    ) -> None:
        self.task = task
        self.n_members = max(1, n_members)
        self.seed = seed
        self.C = C
        self.full_refit_every = full_refit_every
        self.max_iter = max_iter
        self.n_fits = 0
        # Each head's last solution (weights, then intercepts), where the next warm start begins.
        self._coefs: dict[object, np.ndarray] = {}
        self._classes: tuple[LabelValue, ...] = ()
        self._est_classes: dict[int, tuple[LabelValue, ...]] = {}

    def _start(self, key: object, warm: bool, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where head ``key``'s fit starts: its last solution when warm (and of the same shape), else zeros."""
        last = self._coefs.get(key) if warm else None
        return last if last is not None and last.shape == shape else None

    def fit(self, X: np.ndarray, y: Sequence[Any]) -> LinearHeads:
        """Fit on all of ``X : (n, n_features)`` with labels ``y`` (classes, or label sets).

        Raises
        ------
        NotEnoughClasses
            For a multi-class task whose labels hold a single class.
        """
        X = np.asarray(X, dtype=np.float64)
        mean, scale = _standardize(X)
        Z = (X - mean) / scale
        full = self.n_fits % max(1, self.full_refit_every) == 0
        rng = np.random.default_rng((self.seed, self.n_fits))
        Ws: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        classes: tuple[LabelValue, ...] = ()
        for member in range(self.n_members):
            idx = np.arange(len(Z)) if member == 0 else rng.integers(0, len(Z), len(Z))
            ym = [y[i] for i in idx]
            if self.task == "multilabel":
                W, b, names = self._fit_multilabel(Z[idx], ym, full, member)  # type: ignore[arg-type]
                if member and names != classes:  # a resample missed a label: realign on the full label set
                    W, b = _align(W, b, names, classes)
            else:
                if member and len(set(ym)) < len(classes):  # a resample lost a class: reuse member 0
                    W, b = Ws[0], bs[0]
                else:
                    W, b, names = self._fit_multiclass(Z[idx], ym, full, member)  # type: ignore[arg-type]
            if member == 0:
                classes = names
            Ws.append(W)
            bs.append(b)
        self.n_fits += 1
        return LinearHeads(mean, scale, np.stack(Ws), np.stack(bs), classes, self.task)

    def _fit_multiclass(self, Z: np.ndarray, y: Sequence[LabelValue], full: bool, member: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[LabelValue, ...]]:
        classes = sort_classes(y)
        if len(classes) < 2:
            raise NotEnoughClasses(f"labels hold a single class ({classes[0]!r}) so far" if classes else "no labels yet")
        # Warm-start only from a fit on exactly these classes (the same heads in the same order).
        warm = not full and self._est_classes.get(member) == classes
        self._est_classes[member] = classes
        if member == 0:
            self._classes = classes
        index = {c: i for i, c in enumerate(classes)}
        yi = np.array([index[_plain(v)] for v in y])
        key = ("mc", member)
        if len(classes) == 2:  # one logit for two classes, as scikit-learn fits them
            coef, _ = fit_binomial(Z, yi, C=self.C, start=self._start(key, warm, (Z.shape[1] + 1,)), max_iter=self.max_iter)
            W = np.stack([np.zeros(Z.shape[1]), coef[:-1]], axis=1)
            b = np.array([0.0, coef[-1]])
        else:
            coef, _ = fit_softmax(Z, yi, len(classes), C=self.C, start=self._start(key, warm, (Z.shape[1] + 1, len(classes))),
                                  max_iter=self.max_iter)
            W, b = coef[:-1].copy(), coef[-1].copy()
        self._coefs[key] = coef
        return W, b, classes

    def _fit_multilabel(
        self, Z: np.ndarray, y: Sequence[Sequence[LabelValue]], full: bool, member: int = 0
    ) -> tuple[np.ndarray, np.ndarray, tuple[LabelValue, ...]]:
        names = sort_classes([v for row in y for v in row])
        if not names:
            raise NotEnoughClasses("no positive label in any label set yet")
        index = {name: j for j, name in enumerate(names)}
        at = [(i, index[_plain(v)]) for i, row in enumerate(y) for v in row]
        Y = np.zeros((len(y), len(names)), dtype=np.int64)
        if at:
            Y[tuple(np.array(at).T)] = 1  # (one assignment: row by row it was 1 ms a version)
        W = np.zeros((Z.shape[1], len(names)))
        b = np.zeros(len(names))
        fitted = []
        for j in range(len(names)):
            col = Y[:, j]
            if col.min() == col.max():  # one class seen for this label: a constant head
                p = np.clip(col.mean(), 0.02, 0.98)
                b[j] = np.log(p / (1 - p))
            else:
                fitted.append(j)
        if fitted:  # the other heads in one optimization, each from its own last solution when warm
            keys = [("ml", names[j], member) for j in fitted]
            starts = [self._start(key, not full, (Z.shape[1] + 1,)) for key in keys]
            start = None if all(s is None for s in starts) else np.stack(
                [s if s is not None else np.zeros(Z.shape[1] + 1) for s in starts], axis=1)
            coef, _ = fit_binomial_heads(Z, Y[:, fitted], C=self.C, start=start, max_iter=self.max_iter)
            for key, j, c in zip(keys, fitted, coef.T, strict=True):
                self._coefs[key] = c.copy()
                W[:, j], b[j] = c[:-1], c[-1]
        return W, b, names


def _align(W: np.ndarray, b: np.ndarray, names: tuple[LabelValue, ...], target: tuple[LabelValue, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Re-order heads fitted on ``names`` onto ``target``; missing labels get a never-head."""
    W2 = np.zeros((W.shape[0], len(target)))
    b2 = np.full(len(target), -4.0)  # sigmoid(-4) ~ 0.02: a label this resample never saw
    pos = {n: i for i, n in enumerate(names)}
    for j, n in enumerate(target):
        if n in pos:
            W2[:, j], b2[j] = W[:, pos[n]], b[pos[n]]
    return W2, b2
