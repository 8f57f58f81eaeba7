"""Live campaign estimates from the random-control labels: accuracy, random sampling's learning curve, savings.

The random-control picks (``Label.control``) walk the stream in the order of the items' sampling keys
(a uniform hash of the id, :meth:`activestream.rankedqueue.RankedQueue.control_walk`), each the item of
smallest key not labeled yet. So every item whose key is at most the largest key of a control pick (the
walk's frontier) has a label, from the walk or from the strategy: the **control sample**
(:func:`walked_sample`), a uniform sample of the stream whatever the strategy took first. (The control
picks alone are not: they are what the strategy left, the easy remainder on a pool it has labeled a good
share of. Drawn uniformly from the items still pending, as before, the estimated accuracy came out 0.017
(digits) to 0.032 (breast_cancer) above the test score on average: docs/benchmarks.md.) They give, with
each model version:

Accuracy (``est_accuracy``, ``_low``, ``_high``; ``est_sample_size`` the control sample's labels)
    K-fold cross-fitting over the control sample: each fold is predicted by the campaign's model
    refitted on every *other* label (ranked picks and the other folds), so each label of the sample
    is scored by a model that never trained on it and that saw all but ``1/K`` of the sample.
    The prequential ``control_accuracy`` (each control pick scored by the version live when it
    arrived) lags behind a model that is still learning, and sees only the picks; this one does not.
    The 95% interval is **Wilson**'s score interval on the pooled out-of-fold hits: its coverage stays close to the nominal
    level for n >= 40 and p near 1, where the Wald interval undercovers and Clopper-Pearson's
    exact interval overcovers (is wider than needed: Brown, Cai & DasGupta 2001, "Interval estimation
    for a binomial proportion", Statistical Science 16(2)). (Auto-accept keeps Clopper-Pearson: there
    a one-sided guarantee matters more than width.)

Random sampling's learning curve (``est_curve_a``, ``_b``, ``_c``)
    The inverse power law ``acc(n) = a - b * n ** (-c)`` (``a`` the asymptote, ``b`` the gap at one
    label, ``c`` the learning rate), fitted by weighted non-linear least squares to a learning curve
    measured on the control sample alone, as Figueroa et al. fit it to predict sample size (Figueroa,
    Zeng-Treitler, Kandula & Ngo 2012, "Predicting sample size required for classification performance",
    BMC Medical Informatics and Decision Making 12:8; the law after Mukherjee et al. 2003). A model
    trained on a random subset of the control labels is what random sampling would have trained on:
    for each of K folds and each of ``n_sizes`` subset sizes (geometric, up to the fold's training side),
    the campaign's model is fitted on a random subset and scored on the held-out fold; the mean score
    per size is one point, weighted by its standard error across the runs.

Labels random sampling needs (``est_random_labels``), savings, hours
    The curve inverted at the accuracy: ``n* = (b / (a - acc)) ** (1 / c)`` (capped at
    ``max_random_labels`` where ``acc >= a``: random sampling never gets there by the curve). The point
    estimate is the median of ``n*`` over the draws below (not ``n*`` at the point accuracy and curve: near
    the asymptote that jumps to the cap on a hair of accuracy).
    ``est_labels_saved = n* - n_labels``, ``est_savings_share = 1 - n_labels / n*``,
    ``est_hours_saved = est_labels_saved * median(seconds) / 3600`` (the median over labels that took time: not imports). Intervals: the accuracy's
    uncertainty (draws from its Jeffreys posterior ``Beta(k + 1/2, n - k + 1/2)``) and the curve's
    (a bootstrap: the curve refitted to its (fold, repeat) runs resampled with replacement) are propagated
    through the inversion by Monte Carlo; the 2.5% and 97.5% quantiles are the bounds. No model is refitted for it.

Accuracy at the budget (``est_accuracy_at_budget``)
    Random sampling's accuracy with ``budget`` labels (``ACTIVESTREAM_BUDGET``): the curve at the budget,
    its interval from the bootstrap curves. Compare it with ``est_accuracy`` to see what the campaign gained.

Too few control labels (fewer than ``min_control``, or one class): none of these, and
``est_control_labels_needed`` says how many more. Cost per version: ``n_folds`` fits on all labels and
``n_folds * n_sizes * repeats`` fits on at most ``max_curve_labels`` control labels (timed in
``docs/benchmarks.md``).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import norm

from activestream.retrainer.estimator import EstimatorFactory, make_trainer
from activestream.schemas.campaign import RANDOM_LABELS_CAP

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]  # (m, d) features -> (m,) class codes
Fit = Callable[[np.ndarray, np.ndarray], Predictor]  # ((n, d) features, (n,) class codes) -> predictor

FIGURES = ("accuracy", "random_labels", "labels_saved", "savings_share", "hours_saved", "accuracy_at_budget")


@dataclass(frozen=True)
class EstimateConfig:
    """How the estimates are made (see the module docstring).

    Parameters
    ----------
    min_control : control labels needed before anything is estimated.
    n_folds : folds of the cross-fitted accuracy and of the learning curve.
    n_sizes : subset sizes of the learning curve.
    repeats : random subsets per (fold, size).
    max_curve_labels : the learning curve uses at most this many control labels (a random subset): bounds its cost.
    confidence : two-sided level of every interval.
    draws : Monte Carlo draws of the propagated intervals.
    curve_draws : bootstrap refits of the curve (each a least-squares fit of 3 parameters, no model refit).
    max_random_labels : cap of the labels random sampling needs (where the curve never reaches the accuracy).
    seed : of the folds, subsets and draws (the estimates of one training set are reproducible).
    """

    min_control: int = 40
    n_folds: int = 5
    n_sizes: int = 8
    repeats: int = 2
    max_curve_labels: int = 500
    confidence: float = 0.95
    draws: int = 2000
    curve_draws: int = 100
    max_random_labels: float = RANDOM_LABELS_CAP
    seed: int = 0


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion of ``k`` successes in ``n`` trials (``(0, 1)`` for ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def power_law(n: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray:
    """``acc(n) = a - b * n ** (-c)``: (m,) label counts -> (m,) accuracies."""
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)  # type: ignore[no-any-return]


def fit_power_law(n: np.ndarray, acc: np.ndarray, sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares fit of :func:`power_law`.

    Parameters
    ----------
    n : (m,) label counts, m >= 3.
    acc : (m,) accuracies at them.
    sigma : (m,) standard errors of ``acc`` (weights 1/sigma^2); ``None``: equal.

    Returns
    -------
    params : (3,) ``a, b, c`` with ``0 <= a <= 1``, ``b >= 0``, ``0.01 <= c <= 3``.
    cov : (3, 3) their asymptotic covariance (``inf`` where it cannot be estimated).
    """
    n = np.asarray(n, dtype=np.float64)
    acc = np.asarray(acc, dtype=np.float64)
    p0 = (min(1.0, float(acc.max()) + 0.02), max(1e-3, float(acc.max() - acc.min()) * float(n.min()) ** 0.5), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # (a covariance it cannot estimate comes back as inf)
        params, cov = curve_fit(power_law, n, acc, p0=p0, sigma=sigma, absolute_sigma=sigma is not None,
                                bounds=([0.0, 0.0, 0.01], [1.0, 10.0, 3.0]), maxfev=20000)
    return np.asarray(params), np.asarray(cov)


def labels_for(acc: np.ndarray | float, a: np.ndarray | float, b: np.ndarray | float, c: np.ndarray | float,
               cap: float = RANDOM_LABELS_CAP) -> np.ndarray:
    """Labels the curve ``a - b n^-c`` needs to reach ``acc`` (broadcast), in ``[1, cap]``; ``cap`` where ``acc >= a``."""
    acc, a, b, c = (np.asarray(v, dtype=np.float64) for v in (acc, a, b, c))
    gap = a - acc
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = np.where(gap > 0, np.power(np.where(b > 0, b, 1e-12) / np.where(gap > 0, gap, 1.0), 1.0 / c), cap)
    return np.clip(np.nan_to_num(n, nan=cap, posinf=cap), 1.0, cap)  # type: ignore[no-any-return]


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [f for f in np.array_split(rng.permutation(n), min(k, n)) if len(f)]


def cross_fitted_hits(X: np.ndarray, y: np.ndarray, control: np.ndarray, fit: Fit, n_folds: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Whether each control label is predicted right by the model refitted without its fold.

    Parameters
    ----------
    X : (n, d) features of every label; y : (n,) class codes; control : (n,) bool, the control labels.
    fit : fits the campaign's model.

    Returns
    -------
    (n_control,) bool, in the order of ``np.flatnonzero(control)``.
    """
    idx = np.flatnonzero(control)
    hits = np.zeros(len(idx), dtype=bool)
    for fold in _folds(len(idx), n_folds, rng):
        keep = np.ones(len(y), dtype=bool)
        keep[idx[fold]] = False
        hits[fold] = fit(X[keep], y[keep])(X[idx[fold]]) == y[idx[fold]]
    return hits


def random_curve_scores(Xc: np.ndarray, yc: np.ndarray, fit: Fit, cfg: EstimateConfig,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random sampling's learning curve measured on the control labels alone.

    Parameters
    ----------
    Xc : (m, d) control features; yc : (m,) their class codes.

    Returns
    -------
    sizes : (s,) training subset sizes (geometric, up to a fold's training side).
    scores : (n_folds * repeats, s) held-out accuracy of each (fold, repeat) run at each size.
    """
    folds = _folds(len(yc), cfg.n_folds, rng)
    largest = len(yc) - max(len(f) for f in folds)
    smallest = min(largest, max(5, len(np.unique(yc))))
    sizes = np.unique(np.geomspace(smallest, largest, cfg.n_sizes).round().astype(int))
    scores = np.zeros((len(folds) * cfg.repeats, len(sizes)))
    for f, fold in enumerate(folds):
        train = np.setdiff1d(np.arange(len(yc)), fold)
        for r in range(cfg.repeats):
            for j, s in enumerate(sizes):
                sub = rng.choice(train, size=int(s), replace=False)
                scores[f * cfg.repeats + r, j] = np.mean(fit(Xc[sub], yc[sub])(Xc[fold]) == yc[fold])
    return sizes.astype(np.float64), scores


def curve_fit_scores(sizes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """:func:`fit_power_law` to the mean of ``scores`` (runs, s) per size, weighted by its standard error (floor 0.01:
    a size whose runs agree by chance is no certainty). Returns (3,) ``a, b, c``."""
    se = scores.std(axis=0, ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else np.full(len(sizes), 0.05)
    return fit_power_law(sizes, scores.mean(axis=0), np.maximum(se, 0.01))[0]


def random_curve_points(Xc: np.ndarray, yc: np.ndarray, fit: Fit, cfg: EstimateConfig,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`random_curve_scores` as points: sizes (s,), mean accuracy (s,), standard error (s,)."""
    sizes, scores = random_curve_scores(Xc, yc, fit, cfg, rng)
    se = scores.std(axis=0, ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else np.full(len(sizes), 0.05)
    return sizes, scores.mean(axis=0), np.maximum(se, 0.01)


def _bounds(values: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Labeled:
    """What :func:`estimate` reads of a training set (see there): ``X`` (n, d), ``y`` (n,) codes, ``control`` (n,) bool, ``seconds``
    (m,) of every answer folded in (superseded ones too: m >= n).

    ``rows`` builds ``X`` when it is read: most versions have too few control labels to estimate, or
    a finished estimate to reuse, and stacking every label's features for nothing grew with the labels.
    """

    rows: Callable[[], np.ndarray]
    y: np.ndarray
    control: np.ndarray
    seconds: np.ndarray
    fit: Fit

    @property
    def X(self) -> np.ndarray:
        """(n, d) the labels' features."""
        return self.rows()


def cheap_figures(seconds: np.ndarray, budget: int | None) -> dict[str, float]:
    """The figures a version has of its own, without fitting anything: hours spent (``seconds``: (m,) per answer), the budget."""
    out = {"est_hours_spent": float(np.sum(seconds) / 3600.0)}
    if budget is not None:
        out["est_budget"] = float(budget)
    return out


def walked_sample(keys: np.ndarray, control: np.ndarray, drawn: np.ndarray | None = None) -> np.ndarray:
    """The labels of the control walk's uniform sample: every label whose sampling key is at most the walk's frontier.

    The control picks walk the stream in the order of the items' sampling keys (a uniform hash of the id,
    :meth:`activestream.rankedqueue.RankedQueue.control_walk`), each pick the item of smallest key not
    labeled yet; so every item with a key up to the largest key of a control pick (the frontier) has a label,
    from the walk or from the strategy (ranked picks and seed labels alike): a uniform sample of the stream.
    The control picks alone are not: they are what the strategy left.

    Labels ``drawn`` at random apart from the walk (``import-labels --random-sample``) are a uniform sample of
    their own: they join the sample, but their keys do not move the frontier (spread over [0, 1), they would put
    it near 1 and every strategy-picked label with it: the live estimates then scored the strategy's hard picks).
    Membership depends only on the keys and on draws made without looking at the items, so the union is uniform too.

    Parameters
    ----------
    keys : (n,) each label's item sampling key, in [0, 1).
    control : (n,) bool, the control picks (the walk's, and ``drawn`` ones).
    drawn : (n,) bool, the labels drawn at random apart from the walk (``None``: none).

    Returns
    -------
    (n,) bool: ``control``, and every label at or below the frontier of the walk's own picks.
    """
    keys = np.asarray(keys, dtype=np.float64)
    control = np.asarray(control, dtype=bool)
    walk = control & ~np.asarray(drawn, dtype=bool) if drawn is not None else control
    if not walk.any():
        return control.copy()
    return control | (keys <= keys[walk].max())  # type: ignore[no-any-return]


def control_labels_needed(y: np.ndarray, control: np.ndarray, cfg: EstimateConfig) -> float | None:
    """How many more control labels an estimate needs (``y``, ``control``: (n,) codes and flags), or ``None``: enough.

    Fewer than ``cfg.min_control``, or a single class among them, is too few (at least one more is needed).
    """
    n_control = int(np.sum(control))
    if n_control < cfg.min_control or len(np.unique(np.asarray(y)[np.asarray(control, dtype=bool)])) < 2:
        return float(max(cfg.min_control - n_control, 1))
    return None


def estimate(
    X: np.ndarray,
    y: np.ndarray,
    control: np.ndarray,
    seconds: np.ndarray,
    n_labels: int,
    fit: Fit,
    *,
    budget: int | None = None,
    cfg: EstimateConfig | None = None,
) -> dict[str, float]:
    """The ``est_*`` figures of one model version (see the module docstring; keys absent = not known).

    Parameters
    ----------
    X : (n, d) features of every label in the training set.
    y : (n,) their class codes (integers).
    control : (n,) bool, which are random-control labels.
    seconds : (m,) labeling seconds of every answer folded in (superseded ones too): the hours spent, and their median the
        seconds a label takes.
    n_labels : labels the version was trained with (the campaign's count).
    fit : fits the campaign's model: ``fit(X, y)(Z) -> (m,) codes``.
    budget : ``ACTIVESTREAM_BUDGET`` (``None``: no accuracy at a budget).
    cfg : how (default :class:`EstimateConfig`).

    Returns
    -------
    ``{"est_hours_spent": ..., "est_accuracy": ..., ...}`` or, with too few control labels,
    ``{"est_hours_spent": ..., "est_control_labels_needed": k}``.
    """
    cfg = cfg or EstimateConfig()
    y = np.asarray(y)
    control = np.asarray(control, dtype=bool)
    seconds = np.asarray(seconds, dtype=np.float64)
    out = cheap_figures(seconds, budget)
    needed = control_labels_needed(y, control, cfg)
    if needed is not None:
        out["est_control_labels_needed"] = needed
        return out
    n_control = int(control.sum())
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    hits = cross_fitted_hits(X, y, control, fit, cfg.n_folds, rng)
    k = int(hits.sum())
    acc = k / n_control
    low, high = wilson_interval(k, n_control, cfg.confidence)
    out.update(est_accuracy=acc, est_accuracy_low=low, est_accuracy_high=high, est_sample_size=float(n_control))
    cidx = np.flatnonzero(control)
    if n_control > cfg.max_curve_labels:
        cidx = rng.choice(cidx, size=cfg.max_curve_labels, replace=False)
    sizes, scores = random_curve_scores(X[cidx], y[cidx], fit, cfg, rng)
    if len(sizes) < 3:
        out["est_control_labels_needed"] = float(cfg.min_control)
        return out
    a, b, c = curve_fit_scores(sizes, scores)
    out.update(est_curve_a=float(a), est_curve_b=float(b), est_curve_c=float(c))
    # Draws of the accuracy (its Jeffreys posterior) and of the curve (refitted to (fold, repeat) runs resampled
    # with replacement: a bootstrap over the curve's runs, no model refitted).
    acc_draws = rng.beta(k + 0.5, n_control - k + 0.5, cfg.draws)
    boot = np.array([curve_fit_scores(sizes, scores[rng.integers(0, len(scores), len(scores))]) for _ in range(cfg.curve_draws)])
    pick = rng.integers(0, cfg.curve_draws, cfg.draws)
    da, db, dc = boot[pick, 0], boot[pick, 1], boot[pick, 2]
    cap = cfg.max_random_labels
    need = labels_for(acc_draws, da, db, dc, cap)
    # The point is the draws' median, not the curve inverted at the point accuracy: near the asymptote that inversion
    # jumps to the cap (savings share 1.0) on a hair of accuracy, where most draws of the two say far less.
    point = float(np.median(need))
    timed = np.asarray(seconds, dtype=np.float64)
    timed = timed[timed > 0]  # (imported and auto-accepted labels took no one's time: 0 s, they made a median of 0 hours)
    median_s = float(np.median(timed)) if len(timed) else 0.0

    def put(figure: str, value: float, values: np.ndarray) -> None:
        lo, hi = _bounds(values, cfg.confidence)
        out[f"est_{figure}"], out[f"est_{figure}_low"], out[f"est_{figure}_high"] = value, lo, hi

    put("random_labels", point, need)
    put("labels_saved", point - n_labels, need - n_labels)
    put("savings_share", 1.0 - n_labels / point, 1.0 - n_labels / need)
    put("hours_saved", (point - n_labels) * median_s / 3600.0, (need - n_labels) * median_s / 3600.0)
    if budget is not None:
        put("accuracy_at_budget", float(power_law(budget, a, b, c)), np.clip(power_law(budget, da, db, dc), 0.0, 1.0))
    log.debug("estimates on %d control labels in %.2fs", n_control, time.perf_counter() - t0)
    return out


def trainer_fit(factory: EstimatorFactory | None = None, C: float = 1.0) -> Fit:
    """The campaign's model as a :data:`Fit`: one fresh fit (no warm start, one head) per call.

    A subset with one class predicts it (what a campaign has before its first model).
    """

    def fit(X: np.ndarray, y: np.ndarray) -> Predictor:
        classes = np.unique(y)
        if len(classes) < 2:
            return lambda Z: np.full(len(Z), classes[0] if len(classes) else 0)
        model = make_trainer("multiclass", factory, full_refit_every=1, C=C).fit(X, list(y))
        cls = np.asarray(model.classes)
        return lambda Z: cls[model.predict_proba(Z).argmax(axis=1)]  # type: ignore[no-any-return]

    return fit
