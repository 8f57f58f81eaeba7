"""Checks a candidate model must pass before it goes live (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_outputs(probas: np.ndarray, n_rows: int, n_outputs: int, task: str) -> str | None:
    """Return what is wrong with a candidate's outputs, or ``None`` when they are sound.

    Parameters
    ----------
    probas : (n_rows, n_outputs) the candidate's probabilities on check rows.
    """
    if probas.shape != (n_rows, n_outputs):
        return f"output shape {probas.shape}, expected {(n_rows, n_outputs)}"
    if not np.isfinite(probas).all():
        return "output holds NaN or infinity"
    if (probas < -1e-6).any() or (probas > 1 + 1e-6).any():
        return "output outside [0, 1]"
    if task == "multiclass" and not np.allclose(probas.sum(axis=1), 1.0, atol=1e-3):
        return "rows do not sum to 1"
    return None


def predict_labels(probas: np.ndarray, classes: Sequence[object], task: str) -> list[object] | np.ndarray:
    """Hard predictions: the argmax class, or a (n, n_labels) 0/1 matrix for multi-label."""
    if task == "multilabel":
        return (probas >= 0.5).astype(np.int64)
    return [classes[i] for i in probas.argmax(axis=1)]


def holdout_accuracy(probas: np.ndarray, classes: Sequence[object], y: Sequence[object], task: str) -> float:
    """Accuracy (multi-class) or mean per-label accuracy (multi-label) on held-out labels.

    For multi-label, ``y`` holds label sets and ``classes`` the label names.
    """
    if len(y) == 0:
        return float("nan")
    if task == "multilabel":
        truth = np.array([[c in set(row) for c in classes] for row in y], dtype=np.int64)  # type: ignore[call-overload]
        return float(np.mean(np.asarray(predict_labels(probas, classes, task)) == truth))
    pred = predict_labels(probas, classes, task)
    return float(np.mean([p == t for p, t in zip(pred, y, strict=True)]))


def no_regression(candidate: float, live: float, tolerance: float) -> bool:
    """True unless the candidate scores more than ``tolerance`` below the live model."""
    if np.isnan(candidate) or np.isnan(live):
        return True
    return candidate >= live - tolerance
