"""The campaign report (``activestream report``): the learning curve by version, the fitted random curve, the
stop markers, hours spent and saved, the auto-accept share and audited precision.

Built from the model versions the retrainer published (their ``metrics``, named in
:mod:`activestream.schemas.campaign`) and the counts of the items, labels and autolabels topics;
pure functions here, the topics are read by :mod:`activestream.commands.report`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

from activestream.labeling.campaign import STOP_NOTE, auto_accept_of, estimates_of, stop_of
from activestream.schemas import ModelVersion
from activestream.schemas.campaign import ESTIMATING, MULTICLASS_ONLY, NOT_ENOUGH, USER_MODEL_LIVE, curve_of, interval, random_curve

log = logging.getLogger(__name__)

FORMULA = "acc(n) = a - b * n^(-c)"


@dataclass(frozen=True)
class TopicCounts:
    """What the report counts on the campaign's topics."""

    items: int  # distinct item ids on the items topic, less those every record of which the scorers dead-lettered
    auto_accepted: int  # distinct item ids on the autolabels topic
    human_labels: int  # labels of source human (corrections included)
    human_seconds: float  # their seconds, summed


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The two-sided exact (Clopper-Pearson) ``level`` interval of a proportion ``k / n`` (``n > 0``).

    >>> [round(v, 3) for v in clopper_pearson(9, 10)]
    [0.555, 0.997]
    """
    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def version_point(mv: ModelVersion) -> dict[str, Any]:
    """One version on the learning curve: its labels, its accuracy on the control labels and a 95% interval.

    The interval is the retrainer's ``est_accuracy`` one when the record has it for its own training set
    (``est_version`` is this version, or absent: ``"interval": "estimate"``), else Clopper-Pearson on ``control_accuracy`` over ``n_control`` labels (``"control"``), else none.
    """
    m = mv.metrics
    # (An estimate made in the background on an earlier version's training set is that version's point, not this one's.)
    own = int(m.get("est_version", mv.version)) == mv.version
    acc = interval(m, "accuracy") if own else None
    source = "estimate" if acc is not None else None
    n_control = int(m.get("n_control", 0))
    if acc is None and "control_accuracy" in m and n_control > 0:
        low, high = clopper_pearson(round(m["control_accuracy"] * n_control), n_control)
        acc, source = {"estimate": float(m["control_accuracy"]), "low": low, "high": high}, "control"
    n_holdout = int(m.get("n_holdout", 0))
    if acc is None and mv.task == "multilabel" and "holdout_accuracy" in m and n_holdout > 0:
        # (a multi-label campaign scores no control label: its one quality figure is the hold-out's, the mean per-label
        # accuracy, shown without an interval: its errors are not one count over items)
        acc, source = {"estimate": float(m["holdout_accuracy"]), "low": None, "high": None}, "holdout"
    return {"version": mv.version, "n_labels": mv.n_labels, "created_at": mv.created_at, "n_control": n_control,
            "n_holdout": n_holdout, "accuracy": acc, "interval": source, "stop": bool(m.get("stop"))}


def build_report(namespace: str, versions: Sequence[ModelVersion], counts: TopicCounts) -> dict[str, Any]:
    """The report as a JSON-able dict (``report --json`` prints it): ``versions`` oldest first, ``live`` the newest's figures."""
    own = sorted({mv.version: mv for mv in versions if mv.source == "retrainer"}.values(), key=lambda mv: mv.version)
    newest = own[-1] if own else None
    live = max(versions, key=lambda mv: mv.version, default=None)  # (a user's, from publish-model, may be newer than the retrainer's)
    metrics = newest.metrics if newest else {}
    estimates = estimates_of(metrics, counts.items).model_dump(mode="json")
    stop = stop_of(metrics).model_dump(mode="json")
    auto = auto_accept_of(metrics).model_dump(mode="json")
    curve = curve_of(metrics)
    audit = auto["audit"]
    audited = audit["correct"] / audit["n"] if audit and audit["n"] and audit["correct"] is not None else None
    if live is not None and live.source != "retrainer" and live.version > (newest.version if newest else 0) and estimates["note"] == ESTIMATING:
        estimates["note"] = USER_MODEL_LIVE
    spent = estimates["hours_spent"] if estimates["hours_spent"] is not None else counts.human_seconds / 3600.0
    return {
        "namespace": namespace,
        "model_version": newest.version if newest else 0,
        "live": {"version": live.version, "source": live.source} if live is not None else None,
        "n_labels": newest.n_labels if newest else 0,
        "versions": [version_point(mv) for mv in own],
        "estimates": estimates,
        "random_curve": None if curve is None else {"a": curve[0], "b": curve[1], "c": curve[2], "formula": FORMULA},
        "stop": stop,
        "hours": {"spent": spent, "spent_from": "estimate" if estimates["hours_spent"] is not None else "labels topic",
                  "saved": estimates["hours_saved"]},
        "auto_accept": {**auto, "items": counts.items, "auto_accepted": counts.auto_accepted,
                        "share": counts.auto_accepted / counts.items if counts.items else None, "audited_precision": audited},
        "human_labels": counts.human_labels,
        "items": counts.items,
    }


def _iv(v: dict[str, Any] | None, fmt: str = "{:.3f}", missing: str = NOT_ENOUGH) -> str:
    """An estimate and its interval; a value ``None`` beside given ones is one random sampling's curve never reaches
    (:func:`activestream.schemas.campaign.beyond_curve`)."""
    if v is None:
        return missing
    if v.get("low") is None and v.get("high") is None:
        return fmt.format(v["estimate"]) if v["estimate"] is not None else "never (by random sampling's fitted curve)"
    low, high = (fmt.format(v[b]) if v.get(b) is not None else "no bound" for b in ("low", "high"))
    return (fmt.format(v["estimate"]) if v["estimate"] is not None else "never") + f" [{low}, {high}]"


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    est, stop, aa, hours = report["estimates"], report["stop"], report["auto_accept"], report["hours"]
    missing = "n/a (multi-label)" if est["note"] == MULTICLASS_ONLY else NOT_ENOUGH  # (what an unknown figure says)
    lines = [f"campaign {report['namespace']}: model v{report['model_version']} trained on {report['n_labels']} labeled items; "
             f"{report['human_labels']} human answers (corrections included)"]
    live = report.get("live")
    if live and live["source"] != "retrainer" and live["version"] > report["model_version"]:
        lines.append(f"live model: v{live['version']}, published by a user (publish-model); the retrainer holds while it is live (start it "
                     f"with --resume to publish over it): the figures below are of its newest version, v{report['model_version']}")
    lines += ["", "learning curve (accuracy on the random-control labels, 95% interval; a version without a live estimate of its own "
              "shows the running accuracy of every control label so far, each scored by the version live when it came; one without "
              "either, its hold-out score):"]
    if not report["versions"]:
        lines.append("  no model version yet")
    for p in report["versions"]:
        marks = [r for r, at in stop["rules"].items() if at["version"] == p["version"]]
        mark = f"   <- stop: {', '.join(marks)}" if marks else ""
        accuracy = _iv(p["accuracy"], missing=missing)
        scored = (f"hold-out of {p['n_holdout']}{', mean per-label accuracy' if est['note'] == MULTICLASS_ONLY else ''}"
                  if p["interval"] == "holdout" else f"{p['n_control']} control")
        lines.append(f"  v{p['version']:<4d} {p['n_labels']:>7d} labels  {accuracy}  ({scored}){mark}")
    lines.append("")
    if est["available"] and est.get("as_of_version") is not None:  # (estimates run every so many labels, not at every version)
        lines.append(f"live estimates as of v{est['as_of_version']} ({est['as_of_labels']} labels):")
    beyond = est["available"] and est.get("random_beyond_items")
    if beyond:
        items, n = report["items"], est.get("as_of_labels") or report["n_labels"]  # (the labels the estimate was made with)
        lines += [f"estimated accuracy:          {_iv(est['accuracy'])}",
                  f"random sampling would need:  more than the {items} items streamed (its fitted curve reaches this accuracy only past them)",
                  f"labels saved:                at least {max(0, items - n)} (every item streamed, less the {n} labeled), if random sampling "
                  "reached it at all"]
    elif est["available"]:
        lines += [f"estimated accuracy:          {_iv(est['accuracy'])}",
                  f"random sampling would need:  {_iv(est['random_labels'], '{:.0f}')} labels",
                  f"labels saved:                {_iv(est['labels_saved'], '{:.0f}')} (share {_iv(est['savings_share'])})"]
        if est["budget"] is not None:
            lines.append(f"accuracy at budget {est['budget']:.0f}:    {_iv(est['accuracy_at_budget'])}")
        curve = report["random_curve"]
        if curve:
            lines.append(f"random curve: {curve['formula']}, a={curve['a']:.4g} b={curve['b']:.4g} c={curve['c']:.4g}")
    else:
        more = f" ({est['control_labels_needed']} more needed)" if est["control_labels_needed"] is not None else ""
        lines.append(f"estimates: {est['note'] or NOT_ENOUGH}{more}")
    saved = "see labels saved (beyond the stream)" if beyond else _iv(hours["saved"], "{:.2f}", missing)
    lines.append(f"hours spent: {hours['spent']:.2f} · saved: {saved}")
    if stop["fired"]:
        at = stop["rules"].get(stop["first"] or "", {})
        lines.append(f"stop: {stop['first']} fired at v{at.get('version')} with {at.get('n_labels')} labels"
                     + (f" (also {', '.join(r for r in stop['rules'] if r != stop['first'])})" if len(stop["rules"]) > 1 else "")
                     + f"; {STOP_NOTE}")
    else:
        lines.append("stop: no rule fired")
    if stop.get("score_fell"):
        f = stop["score_fell"]
        lines.append(f"warning: the estimated score fell from {f['best']:.3f} (v{f['best_version']}) to {f['now']:.3f} (v{f['version']}), "
                     "beyond its noise: has the stream drifted? Stop rules that fired before may no longer hold")
    share = "n/a" if aa["share"] is None else f"{aa['share']:.1%}"
    state = ("paused" if aa["paused"] else f"threshold {aa['threshold']:.4f}, precision >= {aa['precision_lower_bound']:.4f}"
             if aa["threshold"] is not None and aa["precision_lower_bound"] is not None else
             f"off ({aa['labels_needed']} more control labels needed)" if aa["labels_needed"] is not None else
             "off (multi-class campaigns only)" if est["note"] == MULTICLASS_ONLY else "off")
    target = f" (target precision {aa['target']:.2f})" if aa.get("target") is not None else ""
    lines.append(f"auto-accept{target}: {state}; {aa['auto_accepted']} of {aa['items']} items auto-accepted ({share})")
    audit = aa["audit"]
    if audit:
        measured = "n/a" if aa["audited_precision"] is None else f"{aa['audited_precision']:.4f}"
        bound = "" if audit["precision_lower_bound"] is None else f", lower bound {audit['precision_lower_bound']:.4f}"
        lines.append(f"audit: {audit['correct']} of {audit['n']} audited right (precision {measured}{bound})")
    else:
        lines.append("audit: no audited items yet")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Draw the learning curve by version with its intervals, the fitted random curve and the stop markers (PNG)."""
    from activestream.simulation.plot import new_figure, save_figure

    fig, ax = new_figure()
    pts = [p for p in report["versions"] if p["accuracy"] is not None and p["interval"] != "holdout"]
    if pts:
        xs = np.array([p["n_labels"] for p in pts], dtype=float)
        ys = np.array([p["accuracy"]["estimate"] for p in pts])
        lo = np.array([p["accuracy"]["low"] if p["accuracy"]["low"] is not None else np.nan for p in pts])
        hi = np.array([p["accuracy"]["high"] if p["accuracy"]["high"] is not None else np.nan for p in pts])
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label="live model (control labels)")
        ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color(), label="95% interval")
    held = [p for p in report["versions"] if p["interval"] == "holdout"]
    if held:  # (a multi-label campaign's hold-out score: its own series, no interval)
        ax.plot([p["n_labels"] for p in held], [p["accuracy"]["estimate"] for p in held], marker="s", markersize=3,
                label="live model (hold-out, mean per-label accuracy)")
    curve = report["random_curve"]
    if curve:
        need_ = report["estimates"]["random_labels"]
        top = max([p["n_labels"] for p in report["versions"]] + [need_["estimate"] if need_ and need_["estimate"] is not None else 0])
        if report["estimates"].get("random_beyond_items"):
            top = max([p["n_labels"] for p in report["versions"]] + [report["items"]])  # (not out to a cap of a million)
        first = min([p["n_labels"] for p in report["versions"] if p["n_labels"] > 0] or [10])
        n = np.linspace(max(1.0, first / 2), max(top, 2.0) * 1.1, 200)  # (from near the first version: the curve's start would squash the axis)
        ax.plot(n, random_curve(n, curve["a"], curve["b"], curve["c"]), color="grey", linestyle="--", linewidth=1,
                label=f"random sampling (fitted: {curve['formula']})")
        need, acc = report["estimates"]["random_labels"], report["estimates"]["accuracy"]
        if need and need["estimate"] is not None and acc and not report["estimates"].get("random_beyond_items"):  # the savings: the labels used and random's for the same accuracy
            ax.hlines(acc["estimate"], report["n_labels"], need["estimate"], color="grey", linewidth=1)
            ax.plot([need["estimate"]], [acc["estimate"]], marker="s", color="grey", linestyle="none",
                    label=f"random would need {need['estimate']:.0f} labels")
    for rule, at in report["stop"]["rules"].items():
        ax.axvline(at["n_labels"], color="black", linestyle=":", linewidth=1, label=f"stop: {rule} (v{at['version']})")
    return save_figure(fig, ax, path, xlabel="labels", ylabel="accuracy", title=f"{report['namespace']}: learning curve by model version")
