"""A simulation report as text: the learning-curve table and the savings summary ``demo`` and ``simulate`` print."""

from __future__ import annotations

import logging
from typing import Any

from activestream.scorer.strategies import RANDOM

log = logging.getLogger(__name__)


def print_table(report: dict[str, Any], every: int | None = None) -> None:
    """Print the mean learning curve of every strategy, one row every ``every`` label counts (and the last).

    Parameters
    ----------
    report : a report of :func:`activestream.simulation.engine.simulate`.
    every : show one label count in this many (``None``: about ten rows, whatever the budget).
    """
    names = list(report["strategies"])
    curves = {n: dict((x, y) for x, y in report["strategies"][n]["curve"]) for n in names}
    xs = sorted({x for c in curves.values() for x in c})
    every = every or max(1, -(-len(xs) // 10))
    shown = [x for i, x in enumerate(xs) if i % every == 0 or x == xs[-1]]
    head = f"{'labels':>7} | " + " | ".join(f"{n:>16}" for n in names)
    print(f"\nLearning curve ({report['metric']} on the held-out test split, mean over seeds)")
    print(head)
    print("-" * len(head))
    for x in shown:
        print(f"{x:>7} | " + " | ".join(f"{curves[n].get(x, float('nan')):>16.4f}" for n in names))


def print_summary(report: dict[str, Any], seconds_per_label: float) -> None:
    """Print the target, each strategy's labels to target and AUC, and its savings against random.

    Parameters
    ----------
    report : a report of :func:`activestream.simulation.engine.simulate`.
    seconds_per_label : the labeling time the hours saved are counted at.
    """
    print(f"\nfull-data {report['metric']}: {report['full_data_score']:.4f}; target ({report.get('config', {}).get('target_fraction', 0.95):.0%}): {report['target']:.4f}")
    budget = report.get("config", {}).get("budget")
    spent = [e["curve"][-1][0] for e in report["strategies"].values() if e.get("curve")]
    if budget is not None and spent and max(spent) < budget:
        print(f"note: the unlabeled pool ran out at {max(spent)} labels, below the budget of {budget}: "
              "'score at budget' is the score with every training item labeled")
    for name, e in report["strategies"].items():
        per_seed = ", ".join("not reached" if n is None else str(n) for n in e["per_seed_labels_to_target"])
        reached = "not reached within the budget" if e["labels_to_target"] is None else e["labels_to_target"]
        print(f"  {name:>16}: labels to target {reached} (per seed [{per_seed}]), "
              f"AUC {e['auc']:.4f}, score at budget {e['score_at_budget']:.4f}")
        if e.get("stop_rules"):
            print(f"  {'':>16}  stop rule that fired first, per seed: {_first_stops(e['stop_rules'])}")
    for name, c in report["comparison"].items():
        sv = c["label_savings"]
        hs = c["annotation_hours_saved"]
        first = report["strategies"][name]["curve"][0][0] if report["strategies"][name].get("curve") else None
        if sv is not None and c["labels_to_target"] == c["random_labels_to_target"] == first:
            saved = (f"label savings n/a: the {first} seed labels alone reach the target, so no strategy can save any "
                     "(raise --target, or lower --init)")
        elif sv is not None:
            saved = f"label savings {100 * sv:.1f}%; annotation hours saved {f'{hs:.2f}' if hs is not None else 'n/a'} at {seconds_per_label:g} s/label"
        elif c.get("label_savings_at_least") is not None:
            saved = (f"label savings at least {100 * c['label_savings_at_least']:.1f}% and annotation hours saved at least "
                     f"{c['annotation_hours_saved_at_least']:.2f} at {seconds_per_label:g} s/label (random did not reach the target "
                     f"in {c['random_labels_spent']} labels; {name} needed {c['labels_to_target']})")
        elif c["random_labels_to_target"] is not None:
            saved = f"label savings n/a: {name} did not reach the target within the budget, random did in {c['random_labels_to_target']} labels"
        else:
            saved = "label savings n/a: neither reached the target within the budget"
        print(f"\n{name} vs random: {saved}; score at budget {c['score_at_budget']:.4f} vs {c['random_score_at_budget']:.4f}")
        aa = report["strategies"][name].get("auto_accept")
        if aa:
            print(_auto_accept_lines(aa))


def _first_stops(per_seed: list[dict[str, Any]]) -> str:
    """``"stable_predictions at 230 labels, budget at 400 labels"``: each seed's first stop rule."""
    out = []
    for st in per_seed:
        first = st.get("first")
        out.append(f"{first} at {int(st['fired'][first]['n_labels'])} labels" if first else "none")
    return ", ".join(out)


def _pct(v: float | None) -> str:
    return f"{100 * v:.1f}%" if v is not None else "n/a"


def _auto_accept_lines(aa: dict[str, Any]) -> str:
    """The auto-accept figures: as the deployed system would apply it, then the estimate from all labeled items."""
    if aa["share"] is None:
        return "auto-accept: n/a (no item was left unlabeled)"
    dep = aa["deployed"]
    per_class = dep.get("class_thresholds") or [{}] * len(dep["thresholds"])
    thresholds = [t for t, c in zip(dep["thresholds"], per_class, strict=True) if t is not None or c]
    n_control = ", ".join(str(n) for n in dep["n_control"])
    needed = [n for t, n, c in zip(dep["thresholds"], dep.get("labels_needed") or [0] * len(dep["thresholds"]), per_class, strict=True)
              if t is None and not c]
    deployed = (f"{_pct(dep['share'])} of the still-unlabeled items (threshold in {len(thresholds)} of {len(dep['thresholds'])} seeds, "
                f"from {n_control} random-control labels"
                + (f"; without one, at least {', '.join(str(n) for n in needed)} more needed for the precision's 95% lower bound to reach the target"
                   if needed else "") + ")")
    if dep["realized_precision"] is not None:
        deployed += f", realized precision {dep['realized_precision']:.3f}"
    per_class_est = aa.get("class_thresholds") or [{}] * len(aa["thresholds"])
    none = sum(t is None and not c for t, c in zip(aa["thresholds"], per_class_est, strict=True))  # (a class's own threshold auto-accepts too)
    rp = aa["realized_precision"]
    estimate = (f"{_pct(aa['share'])} (per seed {', '.join(_pct(v) for v in aa['shares'])}"
                + (f"; no threshold reached the target in {none} of {len(aa['thresholds'])} seeds" if none else "")
                + (f"; realized precision {rp:.3f}" if rp is not None else "") + ")")
    pairs = [v for seed in aa.get("at_rerank") or [] for v in seed]
    live = ""
    if pairs:
        n, ok = sum(v["n"] for v in pairs), sum(v["correct"] for v in pairs)
        met = sum(v["correct"] / v["n"] >= aa["target_precision"] for v in pairs)
        live = (f"\nauto-accepted at re-ranks: {n} items, realized precision {ok / n:.3f}; "
                f"at or above the target in {met} of {len(pairs)} (seed, version) pairs")
    return (f"auto-accept at >= {aa['target_precision']:.0%} precision, as deployed: {deployed}\n"
            f"auto-accept estimated from all labeled items (5-fold out-of-fold): {estimate}{live}")



def print_estimates(report: dict[str, Any], every: int = 5) -> None:
    """Print, for the first seed of each strategy, the retrainer's live estimates beside the truth, one version in ``every``.

    Parameters
    ----------
    report : a report of :func:`activestream.simulation.engine.simulate` (strategies with ``estimates``).
    every : show one version in this many (and the last).
    """
    if report.get("task") == "multilabel":  # (the retrainer makes none for a multi-label campaign: no flag would change that)
        print("\nLive estimates: none for a multi-label campaign (the retrainer makes them for multi-class campaigns only)")
        return
    if not report.get("config", {}).get("live_estimates"):
        print("\nLive estimates: not computed (simulate --live-estimates computes the retrainer's at every model version, "
              "beside the truth; ~100 model fits a version)")
        return
    for name, e in report["strategies"].items():
        est = e.get("estimates")
        if not est or name == RANDOM:  # (random has no control slice: its own labels are the measured random curve)
            continue
        per_seed = [[r for r in rows if "est_accuracy" in r] for rows in est["per_seed"]]
        # Every version of the first seed (one in ``every``); with one version a seed or so (demo), every seed's.
        shown_seeds = range(len(per_seed)) if all(len(rows) <= 2 for rows in per_seed) else range(1)
        if not any(per_seed[s] for s in shown_seeds):
            last = est["per_seed"][0][-1] if est["per_seed"] and est["per_seed"][0] else {}
            more = last.get("est_control_labels_needed")
            print(f"\nLive estimates of {name} (seed {e['seeds'][0]}): none, too few random-control labels"
                  f"{f' ({more:.0f} more needed)' if more is not None else ''}")
            continue
        seeds_said = f"seed {e['seeds'][0]}" if len(shown_seeds) == 1 else "each seed"
        print(f"\nLive estimates of {name} ({seeds_said}) beside the truth: accuracy on the control sample [95%] vs the test split; "
              "savings share vs random [95%] vs the measured random curve")
        print(f"{'seed':>4} {'labels':>7} {'sample':>7} | {'est. accuracy':>22} {'test':>7} | {'est. savings':>22} {'measured':>9}")
        not_hit = False
        for s in shown_seeds:
            rows = per_seed[s]
            for i, r in enumerate(rows):
                if i % every and i != len(rows) - 1:
                    continue
                measured, at_least = r.get("measured_savings_share"), r.get("measured_savings_share_at_least")
                missed = measured is None and at_least is not None and at_least <= 0  # (a bound of >= 0.00 says nothing: say why)
                not_hit |= missed
                shown = (f"{measured:>9.2f}" if measured is not None else f"{'not hit':>9}" if missed
                         else f"{'>=' + format(at_least, '.2f'):>9}" if at_least is not None else f"{'n/a':>9}")
                sample = r.get("est_sample_size", r["n_control"])
                print(f"{e['seeds'][s]:>4} {int(r['n_labels']):>7} {int(sample):>7} | {r['est_accuracy']:>7.3f} [{r['est_accuracy_low']:.3f}, "
                      f"{r['est_accuracy_high']:.3f}] {r['test_score']:>7.3f} | {r['est_savings_share']:>7.2f} "
                      f"[{r['est_savings_share_low']:>5.2f}, {r['est_savings_share_high']:>5.2f}] {shown}")
        if not_hit:
            print("  not hit: the measured random curve never reached that test score within its labels, so no measured savings to compare")
        v = est["validation"]
        if v["coverage"] is not None:
            print(f"  all seeds, versions with >= 100 control labels: test score inside the 95% interval at {100 * v['coverage']:.0f}% of {v['versions']}")
