"""The campaign figures a model-version record carries in ``metrics``, read back by name.

The retrainer publishes them with each version (``retrainer/campaign.py``); the labeler API
(``GET /campaign``), ``activestream report`` and the retrainer's Prometheus gauges read them
here, so every view spells the keys the same way. An absent key is a figure not known (too
few control labels), never zero.

- Live estimates: ``est_<figure>`` with ``est_<figure>_low`` / ``est_<figure>_high`` (95%
  interval) for each of :data:`ESTIMATE_FIGURES`; ``est_hours_spent``, ``est_budget``,
  ``est_control_labels_needed``, ``est_multiclass_only`` (1: a multi-label campaign, which has none); the fitted random learning curve ``est_curve_a/b/c``:
  ``acc(n) = a - b * n ** (-c)`` (:func:`random_curve`).
- Stop rules: ``stop`` (0/1) and ``stop_<rule>_version`` / ``stop_<rule>_n_labels`` per fired rule.
- Auto-accept: ``auto_accept_target`` (the precision it keeps), ``auto_accept_threshold``, ``auto_accept_precision_lower_bound``,
  ``auto_accept_labels_needed``, ``auto_accept_threshold_class_<class>``, ``auto_accept_paused``,
  ``audit_n``, ``audit_correct``, ``audit_precision_lower_bound``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: The estimated figures with an interval (``est_<figure>``, ``_low``, ``_high``), as the gauge's ``figure`` label names them.
ESTIMATE_FIGURES = ("accuracy", "random_labels", "labels_saved", "savings_share", "hours_saved", "accuracy_at_budget")
#: A gauge's ``bound`` label: the estimate and its 95% interval.
BOUNDS = ("estimate", "low", "high")
#: The labels random sampling needs where its fitted curve never reaches the accuracy (the retrainer's estimates put this
#: stand-in there: see :func:`beyond_curve`), and the figures that grow with those labels.
RANDOM_LABELS_CAP = 1e6
CAPPED_FIGURES = ("random_labels", "labels_saved", "hours_saved")
#: Auto-accept figures of a record, by the name the gauge's ``figure`` label gives them.
AUTO_ACCEPT_FIGURES = {"target": "auto_accept_target", "threshold": "auto_accept_threshold", "precision_lower_bound": "auto_accept_precision_lower_bound",
                       "labels_needed": "auto_accept_labels_needed", "paused": "auto_accept_paused", "audit_n": "audit_n",
                       "audit_correct": "audit_correct", "audit_precision_lower_bound": "audit_precision_lower_bound"}
NOT_ENOUGH = "not enough control labels yet"
ESTIMATING = "the first estimate is still running (in the retrainer's background: a later version carries it)"
USER_MODEL_LIVE = "none while a published model is live: the retrainer holds, and no later version of its own will carry one"
MULTICLASS_ONLY = "live estimates and auto-accept are made for multi-class campaigns only (this one is multi-label)"



def missing_note(metrics: Mapping[str, float]) -> str:
    """Why a record carries no estimates: too few control labels, or (enough, and the version's own figures
    there) the first estimate still running in the background; none for a multi-label campaign."""
    if metrics.get("est_multiclass_only"):
        return MULTICLASS_ONLY
    if "est_hours_spent" in metrics and "est_control_labels_needed" not in metrics:
        return ESTIMATING
    return NOT_ENOUGH


_FIRED = re.compile(r"stop_(.+)_(version|n_labels)")
_CLASS_THRESHOLD = "auto_accept_threshold_class_"


def estimate_key(figure: str, bound: str = "estimate") -> str:
    """The record key of ``figure``'s ``bound``: ``est_accuracy``, ``est_accuracy_low``, ...

    >>> estimate_key("hours_saved", "high")
    'est_hours_saved_high'
    """
    return f"est_{figure}" + ("" if bound == "estimate" else f"_{bound}")


def interval(metrics: Mapping[str, float], figure: str) -> dict[str, float | None] | None:
    """``{"estimate", "low", "high"}`` of ``figure``, or ``None`` when the estimate is absent.

    A value is ``None`` when the record gives none, or where it stands for "never" (:func:`beyond_curve`): no number.
    """
    if estimate_key(figure) not in metrics:
        return None
    return {bound: None if beyond_curve(metrics, figure, bound) else _num(metrics.get(estimate_key(figure, bound))) for bound in BOUNDS}


def beyond_curve(metrics: Mapping[str, float], figure: str, bound: str = "estimate") -> bool:
    """Whether ``figure``'s ``bound`` rests on random sampling's fitted curve never reaching the accuracy: the estimate
    then holds :data:`RANDOM_LABELS_CAP` labels (and the labels and hours saved from it), a stand-in, not a count.
    Views show it as no bound (JSON ``null``, a gauge's ``+Inf``, "never")."""
    if figure not in CAPPED_FIGURES:
        return False
    need = metrics.get(estimate_key("random_labels", bound))
    return need is not None and need >= RANDOM_LABELS_CAP


def has_estimates(metrics: Mapping[str, float]) -> bool:
    """Whether the record carries the live estimates (``est_accuracy``)."""
    return estimate_key("accuracy") in metrics


SCORE_FELL_KEYS = {"best": "score_fell_best", "best_version": "score_fell_best_version", "now": "score_fell_now", "version": "score_fell_version"}


def score_fell_metrics(fall: Mapping[str, float] | None) -> dict[str, float]:
    """A version's record of its score's fall since the best score (:attr:`CampaignStatus.score_fell`; none: ``{}``)."""
    return {SCORE_FELL_KEYS[k]: float(v) for k, v in fall.items()} if fall else {}


def score_fell(metrics: Mapping[str, float]) -> dict[str, float] | None:
    """:func:`score_fell_metrics` read back (``None``: the score did not fall beyond its noise)."""
    if SCORE_FELL_KEYS["now"] not in metrics:
        return None
    return {k: float(metrics.get(key, math.nan)) for k, key in SCORE_FELL_KEYS.items()}


def fired_rules(metrics: Mapping[str, float]) -> dict[str, dict[str, int]]:
    """The stop rules that fired: ``{rule: {"version", "n_labels"}}`` (where each first fired).

    >>> fired_rules({"stop": 1.0, "stop_budget_version": 7.0, "stop_budget_n_labels": 400.0})
    {'budget': {'version': 7, 'n_labels': 400}}
    """
    fired: dict[str, dict[str, int]] = {}
    for key, value in metrics.items():
        m = _FIRED.fullmatch(key)
        if m:
            fired.setdefault(m.group(1), {})[m.group(2)] = int(value)
    return fired


def first_rule(fired: Mapping[str, Mapping[str, int]]) -> str | None:
    """The rule that fired at the fewest labels (ties by name), or ``None``."""
    return min(fired, key=lambda r: (fired[r].get("n_labels", 2**62), r)) if fired else None


def class_thresholds(metrics: Mapping[str, float]) -> dict[str, float]:
    """The per-class auto-accept thresholds: ``{class: threshold}`` (classes with enough control labels)."""
    return {k[len(_CLASS_THRESHOLD):]: float(v) for k, v in metrics.items() if k.startswith(_CLASS_THRESHOLD)}


def random_curve(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """The random-sampling learning curve fitted to the control labels: ``acc(n) = a - b * n ** (-c)``.

    Parameters
    ----------
    n : (m,) label counts (> 0).
    a, b, c : ``est_curve_a``, ``est_curve_b``, ``est_curve_c`` of a version record.

    Returns
    -------
    (m,) estimated accuracy of a model trained on ``n`` randomly sampled labels.

    >>> [round(float(v), 3) for v in random_curve(np.array([1.0, 100.0]), 0.9, 0.5, 0.5)]
    [0.4, 0.85]
    """
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)


def curve_of(metrics: Mapping[str, float]) -> tuple[float, float, float] | None:
    """``(a, b, c)`` of the fitted random curve, or ``None`` when the record has none."""
    keys = ("est_curve_a", "est_curve_b", "est_curve_c")
    return (float(metrics[keys[0]]), float(metrics[keys[1]]), float(metrics[keys[2]])) if all(k in metrics for k in keys) else None


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def read_record(raw: str | None) -> dict[str, Any] | None:
    """The live version's record from the queue's meta (``None`` when unset or unreadable: not a 500).

    The scorer writes it (``scorer.versions.campaign_record``) and reads it back for a user's version; ``GET /campaign``
    and the control picks read it."""
    try:
        record = json.loads(raw or "null")
    except ValueError:
        log.warning("queue meta 'campaign' is not JSON: taken as no record")
        return None
    if not (isinstance(record, dict) and isinstance(record.get("metrics"), dict)):
        return None
    return record
