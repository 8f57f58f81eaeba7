"""L2-regularized logistic regression fitted with scipy's L-BFGS-B: scikit-learn's objective, without its per-fit cost.

``LogisticRegression(C=C, solver="lbfgs").fit`` minimizes, over the weights ``W`` and the
unpenalized intercepts ``b``,

    mean_i loss(y_i, Z_i W + b) + ||W||^2 / (2 C n)

with the multinomial loss (log-sum-exp of the logits minus the true class's logit) for three
classes or more and the binomial loss (one logit) for two, by ``scipy.optimize.minimize``
(``L-BFGS-B``, ``gtol=tol``, ``ftol=64 eps``, ``maxls=50``) from zeros or, warm-started, from
the last solution. The functions here minimize the same objective from the same start with
the same options and the same parameter layout, so they reach the same solution (a test holds
them to scikit-learn's); what they leave out is the estimator's input validation and set-up
around the optimizer, about 2 ms a fit (measured: a digits campaign fits ~70 small models, and
with warm starts most of them converge in a few iterations, so that set-up was most of each fit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

_FTOL = 64 * np.finfo(float).eps


def _softmax_loss_grad(w: np.ndarray, Z1: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Loss and gradient of the multinomial objective at ``w`` (the ravelled ``(n_features + 1, n_classes)`` block)."""
    n, d1 = Z1.shape
    Wb = w.reshape(d1, -1)
    raw = Z1 @ Wb
    top = raw.max(axis=1, keepdims=True)
    e = np.exp(raw - top)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float((np.log(s[:, 0]) + top[:, 0] - raw[rows, y]).sum() / n)
    W = Wb[:-1]
    loss += 0.5 * l2 * float(np.dot(W.ravel(), W.ravel()))
    g = e / s
    g[rows, y] -= 1.0
    g /= n
    grad = Z1.T @ g
    grad[:-1] += l2 * W
    return loss, grad.ravel()


def _binomial_loss_grad(w: np.ndarray, Z1: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Loss and gradient of the binomial objective at ``w`` (``n_features`` weights, then the intercept)."""
    n = Z1.shape[0]
    raw = Z1 @ w
    loss = float((np.logaddexp(0.0, raw) - y * raw).sum() / n)
    loss += 0.5 * l2 * float(np.dot(w[:-1], w[:-1]))
    with np.errstate(over="ignore"):  # (exp(-raw) of a logit below -709 is inf: the sigmoid is 0, as it should be)
        g = (1.0 / (1.0 + np.exp(-raw)) - y) / n
    grad = Z1.T @ g
    grad[:-1] += l2 * w[:-1]
    return loss, grad


def _binomial_heads_loss_grad(w: np.ndarray, Z1: np.ndarray, Y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """The sum of ``m`` binomial objectives at ``w`` (the ravelled ``(n_features + 1, m)`` block), one per column of ``Y``."""
    n, d1 = Z1.shape
    Wb = w.reshape(d1, -1)
    raw = Z1 @ Wb
    loss = float((np.logaddexp(0.0, raw) - Y * raw).sum() / n)
    W = Wb[:-1]
    loss += 0.5 * l2 * float(np.dot(W.ravel(), W.ravel()))
    with np.errstate(over="ignore"):  # (see _binomial_loss_grad)
        g = (1.0 / (1.0 + np.exp(-raw)) - Y) / n
    grad = Z1.T @ g
    grad[:-1] += l2 * W
    return loss, grad.ravel()


def _lbfgs(loss_grad: Callable[..., tuple[float, np.ndarray]], w0: np.ndarray, args: tuple[Any, ...], max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    """Minimize ``loss_grad`` from ``w0`` with scikit-learn's L-BFGS-B options; the solution and the iterations taken."""
    res = minimize(loss_grad, w0, args=args, method="L-BFGS-B", jac=True, options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": _FTOL})
    return res.x, min(int(res.nit), max_iter)


def _with_ones(Z: np.ndarray) -> np.ndarray:
    """``Z : (n, d) -> (n, d + 1)``: a column of ones for the intercept; checks the values are finite."""
    Z = np.asarray(Z, dtype=np.float64)
    if not np.isfinite(Z).all():
        raise ValueError("the training features hold NaN or infinite values")
    return np.hstack([Z, np.ones((Z.shape[0], 1))])


def fit_softmax(
    Z: np.ndarray, y: np.ndarray, n_classes: int, *, C: float = 1.0, start: np.ndarray | None = None, max_iter: int = 200, tol: float = 1e-4
) -> tuple[np.ndarray, int]:
    """Multinomial logistic regression (three classes or more).

    Parameters
    ----------
    Z : (n, n_features) standardized features.
    y : (n,) class indices in ``[0, n_classes)``.
    n_classes : number of classes.
    C : inverse L2 strength, as scikit-learn's.
    start : (n_features + 1, n_classes) weights then intercepts to start from (a warm start); zeros when ``None``.
    max_iter, tol : L-BFGS-B iterations and gradient tolerance, as scikit-learn's.

    Returns
    -------
    coef : (n_features + 1, n_classes) the weights, then the intercepts in the last row.
    n_iter : iterations taken.
    """
    Z1 = _with_ones(Z)
    w0 = np.zeros(Z1.shape[1] * n_classes) if start is None else np.array(start, dtype=np.float64).ravel()
    w, n_iter = _lbfgs(_softmax_loss_grad, w0, (Z1, np.asarray(y, dtype=np.intp), 1.0 / (C * len(Z1))), max_iter, tol)
    return w.reshape(Z1.shape[1], n_classes), n_iter


def fit_binomial(
    Z: np.ndarray, y: np.ndarray, *, C: float = 1.0, start: np.ndarray | None = None, max_iter: int = 200, tol: float = 1e-4
) -> tuple[np.ndarray, int]:
    """Binary logistic regression: one logit, as scikit-learn fits two classes.

    Parameters
    ----------
    Z : (n, n_features) standardized features.
    y : (n,) 0 or 1 (1: the second class, or the label present).
    C, max_iter, tol : as :func:`fit_softmax`.
    start : (n_features + 1,) weights then the intercept to start from; zeros when ``None``.

    Returns
    -------
    coef : (n_features + 1,) the weights, then the intercept.
    n_iter : iterations taken.
    """
    Z1 = _with_ones(Z)
    w0 = np.zeros(Z1.shape[1]) if start is None else np.array(start, dtype=np.float64)
    return _lbfgs(_binomial_loss_grad, w0, (Z1, np.asarray(y, dtype=np.float64), 1.0 / (C * len(Z1))), max_iter, tol)


def fit_binomial_heads(
    Z: np.ndarray, Y: np.ndarray, *, C: float = 1.0, start: np.ndarray | None = None, max_iter: int = 200, tol: float = 1e-4
) -> tuple[np.ndarray, int]:
    """``m`` binary logistic regressions on the same rows (one-vs-rest multi-label heads), in one optimization.

    The heads share nothing, so the sum of their objectives has each head's solution as its
    minimum; minimizing the sum in one L-BFGS-B run (every head's gradient at most ``tol``
    at the end, as each separate fit would stop) costs about what one head's fit costs,
    where ``m`` separate fits cost ``m`` times the optimizer's per-fit and per-iteration set-up.
    The solution equals the separate fits' within that tolerance, not to the last digit.

    Parameters
    ----------
    Z : (n, n_features) standardized features.
    Y : (n, m) 0 or 1: label ``j`` present in row ``i``.
    C, max_iter, tol : as :func:`fit_softmax`.
    start : (n_features + 1, m) weights then intercepts to start from; zeros when ``None``.

    Returns
    -------
    coef : (n_features + 1, m) the weights, then the intercepts in the last row.
    n_iter : iterations taken.
    """
    Z1 = _with_ones(Z)
    Y = np.asarray(Y, dtype=np.float64)
    m = Y.shape[1]
    w0 = np.zeros(Z1.shape[1] * m) if start is None else np.array(start, dtype=np.float64).ravel()
    w, n_iter = _lbfgs(_binomial_heads_loss_grad, w0, (Z1, Y, 1.0 / (C * len(Z1))), max_iter, tol)
    return w.reshape(Z1.shape[1], m), n_iter
