"""``GET /campaign``: whether labeling pays off and whether it is done, from the live model version's record.

The scorer keeps the live version's record in the queue's meta (``META_CAMPAIGN``, next to the
stop signal ``/status`` shows); this module turns its ``metrics`` (names in
:mod:`activestream.schemas.campaign`) into the reply, typed so the OpenAPI document describes
it. ``activestream report`` shows the same view per version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from activestream.schemas.campaign import (
    AUTO_ACCEPT_FIGURES,
    ESTIMATE_FIGURES,
    USER_MODEL_LIVE,
    class_thresholds,
    curve_of,
    fired_rules,
    first_rule,
    has_estimates,
    interval,
    missing_note,
    score_fell,
)

STOP_NOTE = "labeling may go on; it is a signal, not a lock"


class Interval(BaseModel):
    """An estimate with its 95% interval. A bound is null when the record gives none; for ``random_labels``, ``labels_saved``
    and ``hours_saved`` a null (the estimate or a bound) also stands where random sampling's fitted curve never reaches
    the accuracy: no count of labels, no bound."""

    estimate: float | None
    low: float | None = None
    high: float | None = None


class Curve(BaseModel):
    """The random-sampling learning curve fitted to the control labels: ``acc(n) = a - b * n^(-c)``."""

    a: float
    b: float
    c: float


class Estimates(BaseModel):
    """The live estimates from the random-control labels (null: not known)."""

    available: bool = Field(description="false: too few control labels to estimate (see note)")
    note: str | None = Field(None, description="why the estimates are missing")
    control_labels_needed: int | None = Field(None, description="how many more control labels the estimates need")
    n_control: int | None = Field(None, description="random-control labels scored so far")
    control_accuracy: float | None = Field(None, description="the live model's accuracy on the control labels (point estimate)")
    accuracy: Interval | None = None
    random_labels: Interval | None = Field(None, description="labels random sampling would need to reach the estimated accuracy")
    labels_saved: Interval | None = None
    savings_share: Interval | None = None
    hours_spent: float | None = Field(None, description="annotation hours spent (the labels' seconds)")
    hours_saved: Interval | None = None
    budget: float | None = Field(None, description="ACTIVESTREAM_BUDGET, when set")
    accuracy_at_budget: Interval | None = None
    curve: Curve | None = None
    as_of_version: int | None = Field(None, description="the model version whose training set the figures were estimated on "
                                      "(they run in the background: an earlier version than the live one)")
    as_of_labels: int | None = Field(None, description="labels in that training set")
    random_beyond_items: bool | None = Field(None, description="random sampling's fitted curve reaches the estimated accuracy only past "
                                             "every item streamed (or never): labels_saved, savings_share and hours_saved then hold no "
                                             "estimate, only a low bound: the items streamed less the labels used (null: no estimate, or "
                                             "the items streamed are not counted)")


class FiredRule(BaseModel):
    version: int = Field(description="the model version the rule first fired at")
    n_labels: int = Field(description="labels used at that version")


class ScoreFell(BaseModel):
    """The estimated score fell below its best by more than their noise (a drifted stream, say)."""

    best: float = Field(description="the best estimated score of the versions before")
    best_version: int = Field(description="the version that had it")
    now: float = Field(description="this version's estimated score")
    version: int


class Stop(BaseModel):
    """The stop rules: a signal that more labels may add little, not a lock."""

    fired: bool
    first: str | None = Field(None, description="the rule that fired at the fewest labels")
    rules: dict[str, FiredRule] = Field(default_factory=dict)
    score_fell: ScoreFell | None = Field(None, description="the estimated score fell below its best by more than their noise (two "
                                         "standard errors): has the stream drifted? Rules that fired before may no longer hold")
    note: str = STOP_NOTE


class Audit(BaseModel):
    """Hidden audit items among the auto-accepted ones, answered by labelers."""

    n: int
    correct: int | None = None
    precision_lower_bound: float | None = None


class AutoAccept(BaseModel):
    """The auto-accept rule as the live version calibrated it."""

    on: bool = Field(description="a threshold (pooled or of a class) is set and auto-accept is not paused")
    target: float | None = Field(None, description="the precision auto-accepted items keep (ACTIVESTREAM_AUTO_ACCEPT_PRECISION)")
    threshold: float | None = None
    precision_lower_bound: float | None = Field(None, description="one-sided 95% lower bound on precision above the threshold")
    labels_needed: int | None = Field(None, description="control labels still needed before any threshold reaches the target")
    paused: bool | None = Field(None, description="audited precision fell below the target (null: not reported)")
    class_thresholds: dict[str, float] = Field(default_factory=dict)
    audit: Audit | None = None


class QueueCounts(BaseModel):
    pending: int = Field(ge=0, description="queue depth: items waiting (expired leases included)")
    leased: int = Field(ge=0)
    labeled: int = Field(ge=0)
    dropped: int = Field(0, ge=0, description="items that left the queue unlabeled: max_skips labelers passed on each")
    streamed: int | None = Field(None, ge=0, description="item records the scorers read from the items topic, each once, dead letters "
                                 "and auto-accepted ones too (null: not counted, no pool cap)")


class Campaign(BaseModel):
    """``GET /campaign``: the campaign's payoff and stop signal, from the live model version's record."""

    namespace: str
    model_version: int = Field(ge=0, description="the live model version (0: none yet)")
    record_version: int | None = Field(None, description="the version whose record the figures come from (null: none read yet)")
    n_labels: int | None = Field(None, description="labels that version was trained on")
    estimates: Estimates
    stop: Stop
    auto_accept: AutoAccept
    queue: QueueCounts
    labeling: dict[str, Any] = Field(default_factory=dict, description="the settings this labeler API leases by (strategy, explore, "
                                     "curriculum_labels, cold_start, declared classes)")


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def estimates_of(metrics: Mapping[str, float], items: int | None = None) -> Estimates:
    """The live estimates of a record's ``metrics``; with none, the note says why (``items``: the items streamed, when counted)."""
    figures: dict[str, Any] = {f: interval(metrics, f) for f in ESTIMATE_FIGURES}
    curve = curve_of(metrics)
    available = has_estimates(metrics)
    need = figures["random_labels"]
    # Random sampling's fitted curve reaches the estimated accuracy only past every item streamed (or never: the
    # estimate's cap): the figures would read as labels saved that no stream of this size holds. Said as a bound.
    beyond = None if items is None or need is None else bool(items and (need["estimate"] is None or need["estimate"] >= items))
    n = metrics.get("est_n_labels")
    if beyond and items and n is not None:  # (the bound, as report says it: no estimate, the low end only)
        figures.update(beyond_items_bounds(metrics, items, int(n)))
    return Estimates(random_beyond_items=beyond,
        available=available, note=None if available else missing_note(metrics), control_labels_needed=_int(metrics.get("est_control_labels_needed")),
        n_control=_int(metrics.get("n_control")), control_accuracy=metrics.get("control_accuracy"), hours_spent=metrics.get("est_hours_spent"),
        budget=metrics.get("est_budget"), curve=Curve(a=curve[0], b=curve[1], c=curve[2]) if curve else None,
        as_of_version=_int(metrics.get("est_version")), as_of_labels=_int(metrics.get("est_n_labels")), **figures)


def beyond_items_bounds(metrics: Mapping[str, float], items: int, n_labels: int) -> dict[str, dict[str, float | None]]:
    """``labels_saved``, ``savings_share`` and ``hours_saved`` where random sampling would need more than the ``items``
    streamed: no estimate, at least what labeling every item would have saved (``n_labels`` used). Hours at the record's
    own seconds per label (its hours saved over its labels saved), when it gives both."""
    saved = max(0, items - n_labels)
    per_label = None
    hours, labels = metrics.get("est_hours_saved"), metrics.get("est_labels_saved")
    if hours is not None and labels and math.isfinite(hours) and math.isfinite(labels):
        per_label = hours / labels
    return {"labels_saved": {"estimate": None, "low": float(saved), "high": None},
            "savings_share": {"estimate": None, "low": saved / items, "high": None},
            "hours_saved": {"estimate": None, "low": saved * per_label if per_label is not None else None, "high": None}}


def stop_of(metrics: Mapping[str, float]) -> Stop:
    """The stop rules of a record's ``metrics``."""
    fired = fired_rules(metrics)
    rules = {r: FiredRule(version=at.get("version", 0), n_labels=at.get("n_labels", 0)) for r, at in fired.items()}
    fall = score_fell(metrics)
    return Stop(fired=bool(fired) or bool(metrics.get("stop")), first=first_rule(fired), rules=rules,
                score_fell=ScoreFell(best=fall["best"], best_version=int(fall["best_version"]), now=fall["now"], version=int(fall["version"]))
                if fall else None)


def auto_accept_of(metrics: Mapping[str, float]) -> AutoAccept:
    """The auto-accept state of a record's ``metrics``."""
    got = {name: metrics.get(key) for name, key in AUTO_ACCEPT_FIGURES.items()}
    paused = None if got["paused"] is None else bool(got["paused"])
    audit = None if got["audit_n"] is None else Audit(n=int(got["audit_n"]), correct=_int(got["audit_correct"]),
                                                      precision_lower_bound=got["audit_precision_lower_bound"])
    per_class = class_thresholds(metrics)  # (a class with its own threshold is auto-accepted without the pooled one)
    return AutoAccept(on=(got["threshold"] is not None or bool(per_class)) and not paused, target=got["target"], threshold=got["threshold"],
                      precision_lower_bound=got["precision_lower_bound"], labels_needed=_int(got["labels_needed"]), paused=paused,
                      class_thresholds=per_class, audit=audit)


def campaign_view(namespace: str, live_version: int, record: Mapping[str, Any] | None, queue: QueueCounts) -> Campaign:
    """The reply of ``GET /campaign`` from the live version's ``record`` (:func:`activestream.schemas.campaign.read_record`)."""
    metrics = {str(k): float(v) for k, v in (record or {}).get("metrics", {}).items() if isinstance(v, int | float)}
    estimates = estimates_of(metrics, queue.streamed)
    if record is not None and record.get("source", "retrainer") != "retrainer" and not estimates.available:
        estimates.note = USER_MODEL_LIVE  # (a version of publish-model carries none: not "too few control labels")
    return Campaign(namespace=namespace, model_version=live_version,
                    record_version=_int(record.get("figures_of", record.get("version"))) if record else None,
                    n_labels=_int(record.get("n_labels")) if record else None, estimates=estimates,
                    stop=stop_of(metrics), auto_accept=auto_accept_of(metrics), queue=queue)
