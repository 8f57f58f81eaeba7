"""Auto-accept: which items a calibrated confidence threshold lets bypass humans (pure).

The thresholds are calibrated by the retrainer (``retrainer.calibration``, ``retrainer.auto_accept_rule``) and
published with each model version: ``auto_accept_threshold`` (every class without one of its own),
``auto_accept_threshold_class_<class>`` (a class whose own control labels reach the target) and
``auto_accept_paused`` (1: the audit found the precision below the target; nothing is auto-accepted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

CLASS_PREFIX = "auto_accept_threshold_class_"

#: A threshold: one for every class, ``(k,)`` one per output column (``inf``: never), or ``None`` (never).
Threshold = float | np.ndarray | None


def thresholds(metrics: Mapping[str, float], classes: Sequence[object]) -> Threshold:
    """A version's auto-accept thresholds per output column ``(k,)`` (``inf``: never), one float when no class has its
    own, or ``None`` when it auto-accepts nothing.

    >>> thresholds({"auto_accept_threshold": 0.9, "auto_accept_threshold_class_b": 0.8}, ["a", "b", "c"])
    array([0.9, 0.8, 0.9])
    >>> thresholds({"auto_accept_threshold": 0.9, "auto_accept_paused": 1.0}, ["a"]) is None
    True
    """
    if metrics.get("auto_accept_paused"):
        return None
    pooled = metrics.get("auto_accept_threshold")
    own = {str(c): metrics.get(f"{CLASS_PREFIX}{c}") for c in classes}
    if pooled is None and all(t is None for t in own.values()):
        return None
    fallback = float(pooled) if pooled is not None else np.inf
    if all(t is None for t in own.values()):
        return fallback
    return np.array([float(t) if t is not None else fallback for t in own.values()])


def item_thresholds(probas: np.ndarray, threshold: Threshold) -> np.ndarray:
    """``probas : (n, k) -> (n,)`` the threshold each item's predicted class must pass (``inf``: never)."""
    if threshold is None:
        return np.full(len(probas), np.inf)
    if np.ndim(threshold) == 0:
        return np.full(len(probas), float(threshold))  # type: ignore[arg-type]
    return np.asarray(threshold, dtype=np.float64)[probas.argmax(axis=1)] if len(probas) else np.zeros(0)


def accepted(probas: np.ndarray, threshold: Threshold) -> np.ndarray:
    """``probas : (n, k) -> (n,)`` mask of items confident enough to bypass humans."""
    if threshold is None or len(probas) == 0:
        return np.zeros(len(probas), dtype=bool)
    return np.asarray(probas.max(axis=1) >= item_thresholds(probas, threshold))
