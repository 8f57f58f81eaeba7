"""The retrainer's live estimates (``est_*``, :mod:`activestream.retrainer.estimates`) beside the truth a simulation knows.

Per model version of a campaign: the estimated accuracy and its 95% interval beside the version's score
on the held-out test split; the estimated labels random sampling needs (and the savings share) beside
those the *measured* random curve needs (the ``random`` strategy's seed-averaged curve in the same run,
interpolated linearly between its points) to reach the version's test score; random's estimated accuracy
at the budget beside the measured random curve there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from activestream.simulation.curves import Curve

log = logging.getLogger(__name__)


def random_labels_to(curve: Curve, score: float) -> float | None:
    """Labels the (measured) random curve needs to reach ``score``, interpolated; ``None`` if it never does."""
    for j, (x, y) in enumerate(curve):
        if y >= score:
            if j == 0:
                return float(x)
            x0, y0 = curve[j - 1]
            return float(x0 + (x - x0) * (score - y0) / (y - y0)) if y > y0 else float(x)
    return None


def score_at(curve: Curve, n: float) -> float | None:
    """The curve at ``n`` labels, interpolated (``None`` beyond its ends)."""
    if not curve or n < curve[0][0] or n > curve[-1][0]:
        return None
    return float(np.interp(n, [x for x, _ in curve], [y for _, y in curve]))


def beside_truth(versions: Sequence[dict[str, float]], random_curve: Curve, n_test: int | None = None) -> list[dict[str, Any]]:
    """Each version's estimates with the truth added.

    Parameters
    ----------
    versions : per version ``{"version", "n_labels", "n_control", "test_score", "est_*"...}`` (a campaign's
        :attr:`activestream.simulation.campaign.CampaignResult.versions`).
    random_curve : the measured random curve ``[(labels, score), ...]`` (empty: no random strategy in the run).
    n_test : items in the test split: the test score is itself a sample of the model's accuracy, with a binomial
        error of its own that no estimate can foresee; ``accuracy_inside_widened`` widens each side of the interval
        by it (in quadrature, at the 95% level) to tell an interval too narrow from a noisy truth.

    Returns
    -------
    The same dicts with ``accuracy_inside`` (the test score within the interval), ``measured_random_labels``,
    ``measured_savings_share`` (``None`` where the random curve never reaches the score: then
    ``measured_savings_share_at_least`` from its last point), ``savings_error`` (estimated - measured) and,
    with a budget, ``measured_random_at_budget``.
    """
    rows = []
    for v in versions:
        row: dict[str, Any] = dict(v)
        if "est_accuracy" in v:
            row["accuracy_inside"] = bool(v["est_accuracy_low"] <= v["test_score"] <= v["est_accuracy_high"])
            if n_test:
                noise = 1.96 * np.sqrt(v["est_accuracy"] * (1 - v["est_accuracy"]) / n_test)
                lo = v["est_accuracy"] - np.hypot(v["est_accuracy"] - v["est_accuracy_low"], noise)
                hi = v["est_accuracy"] + np.hypot(v["est_accuracy_high"] - v["est_accuracy"], noise)
                row["accuracy_inside_widened"] = bool(lo <= v["test_score"] <= hi)
        if random_curve:
            need = random_labels_to(random_curve, v["test_score"])
            row["measured_random_labels"] = need
            row["measured_savings_share"] = None if need is None else 1.0 - v["n_labels"] / need
            if need is None:
                row["measured_savings_share_at_least"] = 1.0 - v["n_labels"] / random_curve[-1][0]
            if need is not None and "est_savings_share" in v:
                row["savings_error"] = v["est_savings_share"] - row["measured_savings_share"]
            if "est_budget" in v:
                row["measured_random_at_budget"] = score_at(random_curve, v["est_budget"])
        rows.append(row)
    return rows


def validation_summary(rows: Sequence[dict[str, Any]], min_control: int = 100) -> dict[str, Any]:
    """Coverage of the accuracy interval (versions with at least ``min_control`` control labels) and the savings error.

    Returns
    -------
    ``{"versions", "coverage", "accuracy_bias", "savings_error_mean_abs", "savings_error_max_abs", "savings_within_0.15",
    "savings_compared", "savings_inside"}`` (``None`` where nothing was compared): ``accuracy_bias`` the mean of
    ``est_accuracy - test_score``, ``savings_inside`` the share of compared versions whose measured savings share lies
    in the estimate's 95% interval.
    """
    judged = [r for r in rows if "accuracy_inside" in r and r.get("n_control", 0) >= min_control]
    compared = [r for r in rows if r.get("savings_error") is not None and r.get("n_control", 0) >= min_control]
    errs = np.array([r["savings_error"] for r in compared])
    with_bounds = [r for r in compared if "est_savings_share_low" in r]
    return {
        "versions": len(judged),
        "coverage": float(np.mean([r["accuracy_inside"] for r in judged])) if judged else None,
        "accuracy_bias": float(np.mean([r["est_accuracy"] - r["test_score"] for r in judged])) if judged else None,
        "savings_inside": (float(np.mean([r["est_savings_share_low"] <= r["measured_savings_share"] <= r["est_savings_share_high"]
                                          for r in with_bounds])) if with_bounds else None),
        "coverage_widened_by_test_noise": (float(np.mean([r["accuracy_inside_widened"] for r in judged]))
                                           if judged and all("accuracy_inside_widened" in r for r in judged) else None),
        "savings_compared": len(errs),
        "savings_error_mean_abs": float(np.mean(np.abs(errs))) if len(errs) else None,
        "savings_error_max_abs": float(np.max(np.abs(errs))) if len(errs) else None,
        "savings_within_0.15": float(np.mean(np.abs(errs) <= 0.15)) if len(errs) else None,
    }
