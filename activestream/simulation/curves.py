"""Learning-curve maths for reports: averaging, labels to target, AUC, savings (pure)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

Curve = list[tuple[int, float]]


def mean_curve(curves: Sequence[Curve]) -> Curve:
    """Average per-seed curves at the same label counts (a shorter curve holds its last score)."""
    xs = sorted({x for c in curves for x, _ in c})
    out: Curve = []
    for x in xs:
        vals = []
        for c in curves:
            before = [s for cx, s in c if cx <= x]
            if before:
                vals.append(before[-1])
        out.append((x, float(np.mean(vals))))
    return out


def labels_to_target(curve: Curve, target: float) -> int | None:
    """First label count whose score reaches ``target``, ``None`` if never."""
    for x, s in curve:
        if s >= target - 1e-12:
            return x
    return None


def auc(curve: Curve) -> float:
    """Area under the learning curve, normalized by the label range (a mean score)."""
    if len(curve) < 2:
        return float(curve[0][1]) if curve else float("nan")
    x = np.array([c[0] for c in curve], dtype=float)
    y = np.array([c[1] for c in curve], dtype=float)
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def savings(strategy_labels: int | None, random_labels: int | None) -> float | None:
    """Share of labels saved vs random: ``1 - L_strategy / L_random`` (``None`` if undefined)."""
    if strategy_labels is None or random_labels is None or random_labels == 0:
        return None
    return 1.0 - strategy_labels / random_labels


def hours_saved(strategy_labels: int | None, random_labels: int | None, seconds_per_label: float) -> float | None:
    """Annotation hours saved to reach the target at ``seconds_per_label``."""
    if strategy_labels is None or random_labels is None:
        return None
    return (random_labels - strategy_labels) * seconds_per_label / 3600.0
