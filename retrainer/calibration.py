"""Auto-accept calibration with a guarantee (pure).

The threshold is the lowest confidence whose accepted calibration items (random-control
labels, scored by a model that had not trained on them) have a one-sided Clopper-Pearson
lower confidence bound on precision at or above the target (Clopper & Pearson, 1934: the
exact binomial bound, ``Beta(alpha; k, n - k + 1)`` for ``k`` correct of ``n``). A point
estimate of precision on a few labels is not enough: 113 control labels put the threshold
where 0.9775 of the auto-accepted items were right, for a 0.99 target. With too few labels no
threshold reaches the bound (all correct, ``n`` labels give ``alpha ** (1 / n)``: 299 for 0.99
at 95%), and :func:`calibrate` says how many more labels it needs at least.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv

CONFIDENCE_LEVEL = 0.95


def precision_lower_bound(correct: np.ndarray, n: np.ndarray, level: float = CONFIDENCE_LEVEL) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound on a precision of ``correct`` right out of ``n``.

    Parameters
    ----------
    correct, n : (m,) counts (``0 <= correct <= n``, ``n >= 1``).
    level : the bound's confidence (0.95: the true precision is below it with probability <= 5%).

    Returns
    -------
    (m,) bounds in [0, 1]; 0 where ``correct`` is 0.

    >>> round(float(precision_lower_bound(np.array([59]), np.array([59]))[0]), 4)  # 0.05 ** (1 / 59)
    0.9505
    """
    k = np.asarray(correct, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # The Beta quantile by the special function itself: the numbers of scipy.stats.beta.ppf (checked
        # equal for every k < 2,000 and up to 100 errors), without its argument checks, which took 0.2 ms a
        # call and 3 s of a simulated 700-label campaign (thousands of bounds per version).
        bound = betaincinv(k, total - k + 1.0, 1.0 - level)
    return np.where(k > 0, np.nan_to_num(bound, nan=0.0), 0.0)


@functools.lru_cache(maxsize=4096)
def labels_needed(target_precision: float, errors: int = 0, level: float = CONFIDENCE_LEVEL) -> int:
    """Fewest correct labels that, with ``errors`` wrong ones, bring the lower bound to ``target_precision``.

    With no error the bound of ``n`` correct labels is ``(1 - level) ** (1 / n)``, so
    ``n = ceil(ln(1 - level) / ln(target))``: 299 for 0.99, 59 for 0.95.

    Cached (a pure function of three numbers): every version calibrates each class again with
    mostly the same error counts, and each search is some 30 bounds; uncached it took 65% of a
    simulated 1,690-label campaign.
    """
    if not 0.0 < target_precision < 1.0:
        raise ValueError(f"target_precision must be in (0, 1), got {target_precision}")
    if errors == 0:
        n = math.ceil(math.log(1.0 - level) / math.log(target_precision) - 1e-9)
        return n + int(precision_lower_bound(np.array([n]), np.array([n]), level)[0] < target_precision)
    lo, hi = 1, 2
    while precision_lower_bound(np.array([hi]), np.array([hi + errors]), level)[0] < target_precision:
        lo, hi = hi, hi * 2
    while lo < hi:  # the bound grows with the correct count: the first count that reaches it
        mid = (lo + hi) // 2
        if precision_lower_bound(np.array([mid]), np.array([mid + errors]), level)[0] >= target_precision:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Calibration:
    """An auto-accept threshold and what it rests on.

    Attributes
    ----------
    threshold : accept when confidence >= it; ``None``: no auto-accept.
    lower_bound : the precision lower bound of the items at or above the threshold (``None`` without one).
    n_accepted : calibration items at or above the threshold (0 without one).
    n_labels : calibration items there were.
    more_labels_needed : 0 with a threshold; else at least this many more calibration labels
        are needed (all correct, all above some cut) before one can reach the target.
    """

    threshold: float | None
    lower_bound: float | None
    n_accepted: int
    n_labels: int
    more_labels_needed: int


def calibrate(
    confidence: np.ndarray, correct: np.ndarray, *, target_precision: float = 0.99, level: float = CONFIDENCE_LEVEL
) -> Calibration:
    """The lowest confidence threshold whose accepted items' precision lower bound reaches the target.

    Parameters
    ----------
    confidence : (n,) the model's confidence (max probability) on labeled items it was not
        trained on (random-control labels scored before training, or out-of-fold).
    correct : (n,) whether its prediction matched the human label.
    target_precision : the precision the auto-accepted items must keep, in (0, 1).
    level : confidence of the lower bound.

    Cuts fall only between distinct confidences, so "confidence >= t" keeps exactly the items counted.

    >>> c = calibrate(np.linspace(1.0, 0.5, 59), np.ones(59, dtype=bool), target_precision=0.95)
    >>> (c.threshold, c.n_accepted, round(c.lower_bound, 4))  # 59 correct: 0.05 ** (1 / 59)
    (0.5, 59, 0.9505)
    >>> calibrate(np.linspace(1.0, 0.5, 58), np.ones(58, dtype=bool), target_precision=0.95).more_labels_needed
    1
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError(f"confidence and correct must be two (n,) arrays, got {conf.shape} and {ok.shape}")
    n_labels = int(conf.size)
    if n_labels == 0:
        return Calibration(None, None, 0, 0, labels_needed(target_precision, 0, level))
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    hits = np.cumsum(ok[order])
    n = np.arange(1, n_labels + 1)
    boundary = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    bound = precision_lower_bound(hits, n, level)
    good = (bound >= target_precision) & boundary
    if good.any():
        j = int(np.flatnonzero(good).max())
        return Calibration(float(sorted_conf[j]), float(bound[j]), int(n[j]), n_labels, 0)
    # The fewest further labels for any cut (or none) to reach the bound, were they all right and above it.
    cuts = np.flatnonzero(boundary)
    errors = n[cuts] - hits[cuts]
    more = labels_needed(target_precision, 0, level)  # (above every item seen: the cut with none of them)
    for e in np.unique(errors):
        have = int(hits[cuts][errors == e].max())
        more = min(more, labels_needed(target_precision, int(e), level) - have)
    return Calibration(None, None, 0, n_labels, max(1, more))


def calibrate_threshold(confidence: np.ndarray, correct: np.ndarray, *, target_precision: float = 0.99) -> float | None:
    """:func:`calibrate`'s threshold alone (``None``: no auto-accept)."""
    return calibrate(confidence, correct, target_precision=target_precision).threshold
