"""Auto-accept calibration: the confidence threshold that reaches a target precision (pure)."""

from __future__ import annotations

import numpy as np


def calibrate_threshold(
    confidence: np.ndarray, correct: np.ndarray, *, target_precision: float = 0.99, min_support: int | None = None
) -> float | None:
    """Lowest confidence threshold whose accepted set reaches ``target_precision``.

    Parameters
    ----------
    confidence : (n,) the model's confidence (max probability) on labeled items it
        was not trained on (held-out or out-of-fold).
    correct : (n,) whether its prediction matched the human label.
    target_precision : precision the accepted set must reach.
    min_support : fewest accepted calibration items for the estimate to count;
        by default ``ceil(1 / (1 - target_precision))`` (100 for 0.99), so a single
        error is visible.

    Returns
    -------
    The threshold ``t`` (accept when confidence >= t), or ``None`` when no threshold
    with enough support reaches the target.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if min_support is None:
        min_support = int(np.ceil(1.0 / max(1e-9, 1.0 - target_precision)))
    if conf.size < min_support:
        return None
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(ok[order])
    n = np.arange(1, conf.size + 1)
    precision = hits / n
    # Only cut between distinct confidence values, so "confidence >= t" keeps exactly the top j.
    sorted_conf = conf[order]
    boundary = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    good = (precision >= target_precision) & (n >= min_support) & boundary
    if not good.any():
        return None
    j = int(np.flatnonzero(good).max())
    return float(sorted_conf[j])
