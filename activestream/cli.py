"""The ``activestream`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from activestream import argtypes
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY, NAMES, RANDOM

log = logging.getLogger(__name__)


def _print_table(report: dict[str, Any], every: int = 5) -> None:
    names = list(report["strategies"])
    curves = {n: dict((x, y) for x, y in report["strategies"][n]["curve"]) for n in names}
    xs = sorted({x for c in curves.values() for x in c})
    shown = [x for i, x in enumerate(xs) if i % every == 0 or x == xs[-1]]
    head = f"{'labels':>7} | " + " | ".join(f"{n:>16}" for n in names)
    print(f"\nLearning curve ({report['metric']} on the held-out test split, mean over seeds)")
    print(head)
    print("-" * len(head))
    for x in shown:
        print(f"{x:>7} | " + " | ".join(f"{curves[n].get(x, float('nan')):>16.4f}" for n in names))


def _print_summary(report: dict[str, Any], seconds_per_label: float) -> None:
    print(f"\nfull-data {report['metric']}: {report['full_data_score']:.4f}; target (95%): {report['target']:.4f}")
    budget = report.get("config", {}).get("budget")
    spent = [e["curve"][-1][0] for e in report["strategies"].values() if e.get("curve")]
    if budget is not None and spent and max(spent) < budget:
        print(f"note: the unlabeled pool ran out at {max(spent)} labels, below the budget of {budget}: "
              "'score at budget' is the score with every training item labeled")
    for name, e in report["strategies"].items():
        print(f"  {name:>16}: labels to target {e['labels_to_target']} (per seed {e['per_seed_labels_to_target']}), "
              f"AUC {e['auc']:.4f}, score at budget {e['score_at_budget']:.4f}")
        if e.get("stop_rules"):
            print(f"  {'':>16}  stop rule that fired first, per seed: {_first_stops(e['stop_rules'])}")
    for name, c in report["comparison"].items():
        sv = c["label_savings"]
        hs = c["annotation_hours_saved"]
        if sv is not None:
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
    thresholds = [t for t in dep["thresholds"] if t is not None]
    n_control = ", ".join(str(n) for n in dep["n_control"])
    deployed = (f"{_pct(dep['share'])} of the still-unlabeled items (threshold in {len(thresholds)} of {len(dep['thresholds'])} seeds, "
                f"from {n_control} random-control labels; it needs at least 100)")
    if dep["realized_precision"] is not None:
        deployed += f", realized precision {dep['realized_precision']:.3f}"
    none = sum(t is None for t in aa["thresholds"])
    rp = aa["realized_precision"]
    estimate = (f"{_pct(aa['share'])} (per seed {', '.join(_pct(v) for v in aa['shares'])}"
                + (f"; no threshold reached the target in {none} of {len(aa['thresholds'])} seeds" if none else "")
                + (f"; realized precision {rp:.3f}" if rp is not None else "") + ")")
    return (f"auto-accept at >= {aa['target_precision']:.0%} precision, as deployed: {deployed}\n"
            f"auto-accept estimated from all labeled items (5-fold out-of-fold): {estimate}")


def _sim_config(args: argparse.Namespace, strategies: list[str]) -> Any:
    from activestream.simulate import SimConfig

    return SimConfig(
        budget=args.budget, batch=args.batch, init=args.init, seeds=tuple(range(args.seeds)),
        strategies=tuple(strategies), metric=args.metric, seconds_per_label=args.seconds_per_label,
        workers=args.workers, test_size=args.test_size, explore=args.explore, curriculum_labels=args.curriculum_labels, cold_start=args.cold_start,
    )


def _fail(problem: str) -> int:
    """Print ``problem`` as the one ``error:`` line of a refused command; its exit status (2: usage or data error)."""
    print(f"error: {problem}", file=sys.stderr)
    return 2


def _run_simulation(ds: Any, args: argparse.Namespace, strategies: list[str], report_path: Path) -> int:
    """Check the options, run every campaign, print the summary and write the report and its plot."""
    from activestream.plot import plot_report
    from activestream.redis_server import RedisUnavailable, redis_url
    from activestream.simulate import check_split, simulate

    try:
        cfg = _sim_config(args, strategies)
        check_split(ds, cfg)
    except ValueError as exc:
        return _fail(str(exc))
    t0 = time.perf_counter()
    print(f"{ds.name}: {len(ds.X)} items, {ds.X.shape[1]} features, {len(ds.classes)} {'labels' if ds.task == 'multilabel' else 'classes'}; "
          f"strategies {', '.join(cfg.strategies)}; {len(cfg.seeds)} seeds; budget {cfg.budget}, batch {cfg.batch}, init {cfg.init}")
    try:
        with redis_url(args.redis_url) as url:
            report = simulate(ds, cfg, url, progress=not args.no_progress)
    except (ValueError, RedisUnavailable) as exc:  # ValueError: what the data allows only shows in a campaign
        return _fail(str(exc))
    report["wall_seconds"] = time.perf_counter() - t0
    _print_table(report)
    _print_summary(report, cfg.seconds_per_label)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2))
    png = plot_report(report, report_path.with_suffix(".png"))
    print(f"\nreport: {report_path}  plot: {png}  ({report['wall_seconds']:.1f} s)")
    return 0


def _writable(report: Path) -> str | None:
    """Why ``report`` cannot be written (checked before a long run), or ``None``."""
    import os

    if report.suffix.lower() == ".png":  # the plot goes to report.with_suffix(".png"): the report itself
        return f"--report {report}: the plot would be written over it; give a .json path"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--report {report}: {exc.strerror or exc}"
    target = report if report.exists() else report.parent
    if report.is_dir() or not os.access(target, os.W_OK):
        return f"--report {report}: not writable"
    return None


def _strategy_name(text: str) -> str:
    from activestream.scorer.strategies import Strategy

    try:
        Strategy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_demo(args: argparse.Namespace) -> int:
    from activestream.datasets import digits

    problem = _writable(Path(args.report))
    if problem:
        return _fail(problem)
    return _run_simulation(digits(), args, [DEFAULT_STRATEGY, RANDOM], Path(args.report))


def cmd_simulate(args: argparse.Namespace) -> int:
    from activestream.datasets import DatasetError, load
    from activestream.simulate import single_row_classes

    try:
        # --id-column's default ("id") may be absent; a column the user named must exist.
        ds = load(args.data, args.label_column, exclude=args.exclude or (), id_column=args.id_column or "id",
                  id_required=args.id_column is not None)
    except DatasetError as exc:
        return _fail(str(exc))
    lone = single_row_classes(ds)
    if lone and len(lone) == len(ds.classes):
        return _fail(f"{args.data}: column {args.label_column[0]!r}: every row has a class of its own ({len(lone)} classes): "
                     "nothing to learn or test (an id column?)")
    if lone:
        shown = ", ".join(str(c) for c in lone[:5]) + (", ..." if len(lone) > 5 else "")  # (str: no np.str_('...') reprs)
        log.warning("%s: column %r: %d class(es) with a single row (%s) stay in the labeling pool (never in the test split)",
                    args.data, args.label_column[0], len(lone), shown)
    problem = _writable(Path(args.report))
    if problem:
        return _fail(problem)
    strategies = list(dict.fromkeys(args.strategy or [DEFAULT_STRATEGY, RANDOM]))  # a repeat would run twice and merge its seeds
    if args.metric is None:
        args.metric = "micro_f1" if ds.task == "multilabel" else "accuracy"
    return _run_simulation(ds, args, strategies, Path(args.report))


def _add_sim_options(p: argparse.ArgumentParser, *, budget: int, report: str) -> None:
    p.add_argument("--budget", type=argtypes.count, default=budget, help="labels per campaign (default %(default)s)")
    p.add_argument("--batch", type=argtypes.count, default=10, help="labels per round; one retrain per round (default %(default)s)")
    p.add_argument("--init", type=argtypes.count, default=20, help="seed labels before the first model (default %(default)s)")
    p.add_argument("--seeds", type=argtypes.count, default=3, help="number of seeds (default %(default)s)")
    p.add_argument("--seconds-per-label", type=argtypes.seconds, default=30.0, help="labeling time for hours saved (default %(default)s)")
    p.add_argument("--test-size", type=argtypes.open_share, default=0.3, help="held-out test share (default %(default)s)")
    p.add_argument("--workers", type=argtypes.count, default=2, help="parallel campaign processes (default %(default)s)")
    p.add_argument("--explore", type=argtypes.share, default=DEFAULT_EXPLORE, help="share of each batch picked at random: the random-control slice (default %(default)s)")
    p.add_argument("--curriculum-labels", type=argtypes.count_or_off, default=None,
                   help="easy-to-hard schedule over this many labels (default and 0: off, as ACTIVESTREAM_CURRICULUM_LABELS)")
    p.add_argument("--cold-start", choices=("random", "representative"), default="random",
                   help="first labels before any model: the seeded random order, or k-means centroids of the queue (default: %(default)s)")
    p.add_argument("--redis-url", default=None, help="use this Redis (default: REDIS_URL, else a local redis-server)")
    p.add_argument("--report", default=report, help="JSON report path; a PNG plot is written beside it (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activestream", description="Streaming active learning: rank, label, retrain, prove the savings.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="replay scikit-learn digits: default strategy vs random, learning curves and savings")
    _add_sim_options(p, budget=400, report="reports/demo.json")
    p.set_defaults(func=cmd_demo, metric="accuracy")

    p = sub.add_parser("simulate", help="estimate label savings on your own labeled dataset")
    p.add_argument("--data", required=True, help="CSV (plain, .gz, .bz2, .zst, .lz4), Parquet or NPZ file")
    p.add_argument("--label-column", action="append", required=True,
                   help="label column; repeat it, or give a shared prefix, for multi-label 0/1 columns")
    p.add_argument("--strategy", action="append", type=_strategy_name,
                   help=f"repeatable: {', '.join(NAMES)}, optionally +kmeans or +kcenter for diverse batches, +density for representativeness, +falcun for FALCUN (default: {DEFAULT_STRATEGY} and random)")
    p.add_argument("--metric", choices=("accuracy", "macro_f1", "micro_f1"), default=None,
                   help="default: accuracy (multi-class), micro_f1 (multi-label)")
    p.add_argument("--id-column", default=None, help="row id column, left out of the features (default: id, when present)")
    p.add_argument("--exclude", action="append", help="other columns that are not features (repeatable)")
    _add_sim_options(p, budget=300, report="reports/simulate.json")
    p.set_defaults(func=cmd_simulate)

    from activestream import services

    services.add_parsers(sub)
    __import__("activestream.bench", fromlist=["add_parsers"]).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
