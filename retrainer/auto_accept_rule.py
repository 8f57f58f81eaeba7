"""Auto-accept's rule beyond one threshold (pure): per-class thresholds and the audit's pause/resume.

Per-class thresholds
    Control labels are grouped by the class the model predicted for them. A class whose own
    control labels reach the target (:func:`~activestream.retrainer.calibration.calibrate` on
    them alone: the lowest confidence whose one-sided 95% Clopper-Pearson lower bound on
    precision reaches the target) gets its own threshold. The other classes are **pooled**:
    their control labels together calibrate one shared threshold (``auto_accept_threshold``),
    or none. Why pooled rather than falling back to the all-classes threshold: the all-classes
    bound mixes in the classes that are easy (those with their own threshold), so it can hide
    a hard class whose items are accepted at well under the target; pooling only the classes
    without their own threshold keeps a bound for every item accepted. Each group's accepted
    items then have a precision bound at the target, so their union has one too (a weighted
    mean of groups each at or above the target; each bound at 95%). With no class of its own,
    the pool is every class: the single threshold of before. Observations whose predicted class
    is unknown (logged before the control log carried it) count in the pool only.

Pause and resume (the audit)
    Audited items are auto-accepted items a labeler answered blind. Over the newest
    :data:`AUDIT_WINDOW` audits (old ones age out, so a model that got better can resume),
    auto-accept **pauses** when the one-sided 95% Clopper-Pearson *upper* bound of the audited
    precision falls below the target (the audits show, at 95%, that precision is under it), and
    **resumes** only when the *lower* bound reaches the target again (what calibration asks of a
    threshold). Between the two bounds the state is kept: a hysteresis band, so a point
    estimate wandering around the target does not switch auto-accept on and off. While paused the
    scorer keeps sending a share of the items it would have accepted to the labelers as audits,
    so the evidence to resume keeps coming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from activestream.retrainer.calibration import CONFIDENCE_LEVEL, Calibration, calibrate, precision_lower_bound

#: Newest audit answers the pause rule reads.
AUDIT_WINDOW = 1000


@dataclass(frozen=True)
class ClassCalibration:
    """Per-class thresholds and the pooled threshold of the other classes.

    Attributes
    ----------
    per_class : class -> its own calibration (each with a threshold).
    pooled : the calibration of the control labels predicted as any other class (or of unknown class).
    """

    per_class: dict[object, Calibration]
    pooled: Calibration

    def thresholds(self) -> dict[object, float]:
        """class -> its own threshold."""
        return {c: cal.threshold for c, cal in self.per_class.items() if cal.threshold is not None}

    def metrics(self) -> dict[str, float]:
        """As a model version publishes them: ``auto_accept_threshold`` (the pooled one, when there is one) and
        ``auto_accept_threshold_class_<class>`` per class with its own."""
        out = {f"auto_accept_threshold_class_{c}": float(t) for c, t in self.thresholds().items()}
        if self.pooled.threshold is not None:
            out["auto_accept_threshold"] = float(self.pooled.threshold)
        return out


def calibrate_classes(
    confidence: np.ndarray, correct: np.ndarray, predicted: Sequence[object | None], *, target_precision: float = 0.99,
    level: float = CONFIDENCE_LEVEL,
) -> ClassCalibration:
    """Per-class thresholds where a class's own control labels reach the target; the rest pooled.

    Parameters
    ----------
    confidence : (n,) the model's top probability on control labels it had not trained on.
    correct : (n,) whether its prediction was the label.
    predicted : (n,) the class it predicted (``None``: unknown).
    target_precision, level : as :func:`~activestream.retrainer.calibration.calibrate`.

    >>> conf = np.r_[np.linspace(1.0, 0.9, 59), np.linspace(1.0, 0.9, 20)]
    >>> cal = calibrate_classes(conf, np.ones(79, dtype=bool), ["a"] * 59 + ["b"] * 20, target_precision=0.95)
    >>> sorted(cal.thresholds()), cal.pooled.threshold, cal.pooled.more_labels_needed  # b: 20 of 59 needed
    (['a'], None, 39)
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    pred = list(predicted)
    if not (conf.shape == ok.shape == (len(pred),)):
        raise ValueError(f"confidence, correct and predicted must have one length, got {conf.shape}, {ok.shape}, {len(pred)}")
    own: dict[object, Calibration] = {}
    for c in dict.fromkeys(p for p in pred if p is not None):
        mask = np.array([p == c for p in pred])
        cal = calibrate(conf[mask], ok[mask], target_precision=target_precision, level=level)
        if cal.threshold is not None:
            own[c] = cal
    rest = np.array([p is None or p not in own for p in pred], dtype=bool)
    return ClassCalibration(own, calibrate(conf[rest], ok[rest], target_precision=target_precision, level=level))


def precision_upper_bound(correct: int, n: int, level: float = CONFIDENCE_LEVEL) -> float:
    """One-sided Clopper-Pearson upper bound on a precision of ``correct`` right out of ``n`` (1.0 for ``n = 0``)."""
    if n <= 0 or correct >= n:
        return 1.0
    return float(beta.ppf(level, correct + 1, n - correct))


@dataclass(frozen=True)
class AuditState:
    """What the audits say: ``n`` audited, ``correct`` of them right, the bounds, and whether auto-accept is paused."""

    n: int
    correct: int
    lower_bound: float | None
    upper_bound: float
    paused: bool


def audit_state(outcomes: Sequence[bool], was_paused: bool, target_precision: float, *, window: int = AUDIT_WINDOW,
                level: float = CONFIDENCE_LEVEL) -> AuditState:
    """Pause when the audited precision's upper bound is below the target; resume when its lower bound reaches it.

    Parameters
    ----------
    outcomes : every audit answer so far, oldest first (``True``: the auto-label was right); the newest ``window`` count.
    was_paused : the state before; kept while the bounds straddle the target (hysteresis).

    >>> audit_state([True] * 18 + [False] * 2, False, 0.99).paused  # 0.9 right of 20: upper bound 0.98 < 0.99
    True
    >>> audit_state([True] * 18 + [False] * 2 + [True] * 100, True, 0.99).paused  # 118 of 120: between the bounds
    True
    >>> audit_state([True] * 400, True, 0.99).paused  # lower bound 0.9925 >= 0.99
    False
    """
    recent = list(outcomes)[-window:] if window > 0 else list(outcomes)
    n, k = len(recent), int(sum(recent))
    lower = float(precision_lower_bound(np.array([k]), np.array([n]), level)[0]) if n else None
    upper = precision_upper_bound(k, n, level)
    if upper < target_precision:
        paused = True
    elif lower is not None and lower >= target_precision:
        paused = False
    else:
        paused = was_paused
    return AuditState(n, k, lower, upper, paused)
