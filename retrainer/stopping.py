"""Stop criteria for a labeling campaign (pure functions over the history of model versions).

Four rules, each reporting whether (and at which version / label count) it fired:

- **budget**: the labels spent (the labelers'; an imported baseline and auto-accepted items cost nothing) reached the budget;
- **stable predictions** (Bloodgood & Vijay-Shanker, 2009): Cohen's kappa between the
  predictions of consecutive versions on a fixed stop set stays >= ``kappa`` for
  ``window`` versions in a row;
- **plateau**: the estimated score improved by less than ``min_gain`` over the last
  ``window`` versions, and did not fall over them by more than its noise (:func:`fell`: a score
  that falls, e.g. on a stream whose concept drifted, is no plateau: more labels may help);
- **target**: the estimated score reached ``target_score``.

The last two read a score estimated on labeled items the version did not train on
(held-out or random-control labels); only estimates on at least ``min_score_items`` of
them count. On fewer, one item moves the estimate by more than ``min_gain`` and a handful
of correct answers reads as a flat 1.0: the plateau fired at 80 labels on 6 control
labels while test accuracy still rose from 0.906 to 0.965.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two label vectors ``(n,)`` (1.0 when both are constant and equal).

    >>> float(cohen_kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])))
    0.5
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"kappa needs two (n,) vectors, got {a.shape} and {b.shape}")
    if len(a) == 0:
        return float("nan")
    # Codes of the values in both vectors, then the confusion matrix by one bincount (the stop rule
    # replays every version pair at each version: a Python dict per value took 17 s of a 37 s
    # multi-label campaign).
    both = np.concatenate([a, b])
    if both.dtype.kind in "biu" and both.min() >= 0 and both.max() < 4096:
        # Small non-negative codes (class codes, multi-label bits) are their own codes: no sort (np.unique
        # of a multi-label stop set's bits was 2 ms a version). Values absent from both add empty rows and
        # columns, which change neither agreement.
        codes, k = both.astype(np.int64), int(both.max()) + 1
    else:
        labels, codes = np.unique(both, return_inverse=True)
        k = len(labels)
    ia, ib = codes[: len(a)], codes[len(a) :]
    conf = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.float64)
    n = conf.sum()
    po = np.trace(conf) / n
    pe = float((conf.sum(axis=0) * conf.sum(axis=1)).sum() / n**2)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return float((po - pe) / (1.0 - pe))


@dataclass(frozen=True)
class StopRules:
    """Thresholds of the stop rules (``None`` turns a rule off)."""

    budget: int | None = None
    kappa: float | None = 0.99
    window: int = 3
    min_gain: float | None = 0.002
    plateau_window: int = 5
    target_score: float | None = None
    min_score_items: int = 100


@dataclass
class VersionRecord:
    """What the rules need to know of one model version."""

    version: int
    n_labels: int
    predictions: np.ndarray  # (n_stop,) hard predictions on the stop set
    score: float | None = None  # estimated score (held-out / control labels), if known
    score_items: int | None = None  # how many labeled items it was estimated on (None: unknown, taken as enough)
    spent: int | None = None  # labels the campaign paid for (its labelers'; not imported or auto-accepted ones); None: n_labels


@dataclass
class CampaignStatus:
    """Which rules fired, and when (the first version and label count they fired at)."""

    fired: dict[str, dict[str, float]] = field(default_factory=dict)
    kappas: list[float] = field(default_factory=list)
    # The newest trusted score fell below the best before it by more than its noise (:func:`fell`: a drifted stream,
    # say): ``{"best", "best_version", "now", "version"}``, else ``None``. Rules fired before it may no longer hold.
    score_fell: dict[str, float] | None = None

    @property
    def should_stop(self) -> bool:
        return bool(self.fired)

    def as_dict(self) -> dict[str, object]:
        first = min(self.fired.items(), key=lambda kv: kv[1]["n_labels"])[0] if self.fired else None
        return {"should_stop": self.should_stop, "first": first, "fired": self.fired, "last_kappa": self.kappas[-1] if self.kappas else None,
                "score_fell": self.score_fell}


def fell(first: float, last: float, n_items: int | None, min_gain: float, n_first: int | None = None, z: float = 2.0) -> bool:
    """Whether an estimated accuracy went from ``first`` (on ``n_first`` labels) to ``last`` (on ``n_items``) by more
    than their noise: ``z`` standard errors of the difference (of ``last`` alone when ``n_first`` is unknown; no noise
    when ``n_items`` is: then ``min_gain``), and at least ``min_gain``. Each share's variance is Agresti and Caffo's
    (a success and a failure added), so a perfect score on a few labels is not taken as certain.

    A stream whose concept drifted took a campaign's control accuracy from 0.95 to 0.66 in a few versions, and the
    plateau rule, which asked only that the score had not risen, said more labels would add little."""

    def var(p: float, n: int) -> float:
        q = (p * n + 1.0) / (n + 2.0)
        return q * (1.0 - q) / (n + 2.0)

    v = var(last, n_items) if n_items else 0.0
    if n_items and n_first:
        v += var(first, n_first)
    return first - last > max(z * math.sqrt(v), min_gain)


# A fall below the best score is said (score_fell) when it passes this many standard errors at two trusted versions in a
# row: the best of many noisy estimates sits above the truth, and a simulated campaign of constant accuracy on a growing
# holdout fell two of them below its best in 50 of 200 runs.
FALL_Z = 3.0


def _trusted(rec: VersionRecord, rules: StopRules) -> bool:
    """Whether ``rec`` has a score estimated on enough items for the score rules."""
    return rec.score is not None and (rec.score_items is None or rec.score_items >= rules.min_score_items)


def evaluate(history: Sequence[VersionRecord], rules: StopRules, labels_spent: int, known_kappas: Sequence[float] = ()) -> CampaignStatus:
    """Replay the rules over ``history`` (oldest first) and report what fired when.

    ``known_kappas`` : the kappas of the first consecutive pairs of this same history, as an earlier
    call returned them (``status.kappas``): reused instead of recomputed, so a campaign monitor that
    replays its history at every version computes one kappa per version, not one per version pair.
    """
    status = CampaignStatus()

    def fire(name: str, rec: VersionRecord | None, n_labels: int) -> None:
        if name not in status.fired:
            status.fired[name] = {"version": float(rec.version if rec else 0), "n_labels": float(n_labels)}

    streak = 0
    scores: list[float] = []  # the trusted scores so far, oldest first
    items: list[int | None] = []  # and the labels each was estimated on
    best: tuple[float, int, int | None] | None = None  # the best trusted score so far, its version and labels
    was_down = False  # the trusted score before was below that best beyond FALL_Z
    for i, rec in enumerate(history):
        if i > 0:
            prev = history[i - 1].predictions
            # A changed multi-label output space (a new label) is not stability; multi-class
            # predictions are class codes (CampaignMonitor.on_version), comparable across versions.
            if i - 1 < len(known_kappas):
                kap = known_kappas[i - 1]
            else:
                kap = cohen_kappa(prev, rec.predictions) if prev.shape == rec.predictions.shape and len(prev) else 0.0
            status.kappas.append(kap)
            streak = streak + 1 if rules.kappa is not None and kap >= rules.kappa else 0
            if rules.kappa is not None and streak >= rules.window:
                fire("stable_predictions", rec, rec.n_labels)
        if rec.score is not None and _trusted(rec, rules):
            scores.append(rec.score)
            items.append(rec.score_items)
            if best is None or rec.score > best[0]:
                best = (rec.score, rec.version, rec.score_items)
            down = fell(best[0], rec.score, rec.score_items, rules.min_gain or 0.0, best[2], z=FALL_Z)
            said = down and was_down
            status.score_fell = {"best": best[0], "best_version": float(best[1]), "now": rec.score, "version": float(rec.version)} if said else None
            was_down = down
        if rules.target_score is not None and _trusted(rec, rules) and rec.score is not None and rec.score >= rules.target_score:
            fire("target_score", rec, rec.n_labels)
        if rules.min_gain is not None and len(scores) > rules.plateau_window:
            recent = scores[-(rules.plateau_window + 1) :]
            first_items = items[-(rules.plateau_window + 1)]
            if max(recent[1:]) - recent[0] < rules.min_gain and not fell(recent[0], recent[-1], items[-1], rules.min_gain, first_items):
                fire("plateau", rec, rec.n_labels)
        paid = rec.n_labels if rec.spent is None else rec.spent
        if rules.budget is not None and paid >= rules.budget:
            fire("budget", rec, rec.n_labels)
    if rules.budget is not None and labels_spent >= rules.budget:
        fire("budget", history[-1] if history else None, labels_spent)
    return status
