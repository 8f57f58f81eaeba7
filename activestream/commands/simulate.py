"""``activestream simulate``: estimate label savings on the user's own labeled dataset.

Also the run both ``simulate`` and ``demo`` share: check the options, run every campaign,
print the summary, write the report and its plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activestream.commands import options
from activestream.labeling.control_share import DEFAULT_ADAPTIVE, ControlShare
from activestream.scorer.strategies import BANDIT, DEFAULT_STRATEGY, DIVERSITY_SPACES, NAMES, RANDOM

if TYPE_CHECKING:
    from activestream.simulation.campaign import SimConfig
    from activestream.simulation.datasets import Dataset

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``simulate`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("simulate", help="estimate label savings on your own labeled dataset")
    p.add_argument("--data", required=True, help="CSV (plain, .gz, .bz2, .zst, .lz4), Parquet or NPZ file")
    p.add_argument("--label-column", action="append", required=True,
                   help="label column; repeat it, or give a shared prefix, for multi-label 0/1 columns")
    p.add_argument("--strategy", action="append", type=options.strategy_name,
                   help=f"repeatable: {', '.join(NAMES)}, optionally +kmeans or +kcenter for diverse batches, +density for representativeness, "
                        f"+falcun for FALCUN (the first three in a space: @{', @'.join(DIVERSITY_SPACES)}); or {BANDIT}, the strategy bandit "
                        f"(default: {DEFAULT_STRATEGY} and random)")
    p.add_argument("--metric", choices=("accuracy", "macro_f1", "micro_f1"), default=None,
                   help="default: accuracy (multi-class), micro_f1 (multi-label)")
    p.add_argument("--id-column", default=None, help="row id column, left out of the features (default: id, when present)")
    p.add_argument("--exclude", action="append", help="other columns that are not features (repeatable)")
    p.add_argument("--export-labels", default=None, metavar="DIR",
                   help="write each campaign's labeled dataset to DIR/<strategy>-seed<N>.parquet ('+' written '_'), as `activestream "
                        "export` does, under the file's ids (--id-column) (with several --estimator: DIR/<Estimator>/...)")
    options.add_simulation(p, budget=300, report="reports/simulate.json")
    p.add_argument("--live-estimates", action="store_true",
                   help="compute the retrainer's live estimates at every model version and show them beside the truth "
                        "(~100 model fits a version: slower)")
    p.add_argument("--explore-adaptive", action=argparse.BooleanOptionalAction, default=DEFAULT_ADAPTIVE,
                   help="the control share follows the live estimates instead of --explore (ACTIVESTREAM_EXPLORE_ADAPTIVE's rule, "
                        "its default parameters; needs --live-estimates, see docs/benchmarks.md) (default: %(default)s)")
    p.add_argument("--stream", action="store_true",
                   help="replay the training split as a stream in file order, a slice before each round (default: all queued first)")
    p.add_argument("--pool-capacity", type=options.count, default=None, metavar="N",
                   help="cap the queue's pool at N pending items, with a random reservoir of N/10 (default: no cap)")
    p.add_argument("--target", type=options.open_share, default=0.95, metavar="SHARE",
                   help="labels to target = first label count whose score reaches SHARE of the full-data score "
                        "(default %(default)s; the benchmarks use 0.99)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load ``--data``, compare the strategies on it and write the report.

    Returns
    -------
    0, or 2 with one ``error:`` line for a file, column or option that cannot be used.
    """
    from activestream.simulation.campaign import single_row_classes
    from activestream.simulation.datasets import DatasetError, load

    try:
        # --id-column's default ("id") may be absent; a column the user named must exist.
        ds = load(args.data, args.label_column, exclude=args.exclude or (), id_column=args.id_column or "id",
                  id_required=args.id_column is not None)
    except DatasetError as exc:
        return fail(str(exc))
    lone = single_row_classes(ds)
    if lone and len(lone) == len(ds.classes):
        return fail(f"{args.data}: column {args.label_column[0]!r}: every row has a class of its own ({len(lone)} classes): "
                    "nothing to learn or test (an id column?)")
    if lone:
        shown = ", ".join(str(c) for c in lone[:5]) + (", ..." if len(lone) > 5 else "")  # (str: no np.str_('...') reprs)
        log.warning("%s: column %r: %d class(es) with a single row (%s) stay in the labeling pool (never in the test split)",
                    args.data, args.label_column[0], len(lone), shown)
    problem = writable(Path(args.report))
    if problem:
        return fail(problem)
    strategies = list(dict.fromkeys(args.strategy or [DEFAULT_STRATEGY, RANDOM]))  # a repeat would run twice and merge its seeds
    if args.metric is None:
        args.metric = "micro_f1" if ds.task == "multilabel" else "accuracy"
    return run_simulation(ds, args, strategies, Path(args.report))


def fail(problem: str) -> int:
    """Print ``problem`` as the one ``error:`` line of a refused command; its exit status (2: usage or data error)."""
    print(f"error: {problem}", file=sys.stderr)
    return 2


def sim_config(args: argparse.Namespace, strategies: list[str]) -> SimConfig:
    """The campaign settings from the ``demo`` / ``simulate`` options (``ValueError`` on a bad combination)."""
    from activestream.simulation.campaign import SimConfig

    if args.curriculum_labels and args.curriculum_labels > args.budget:
        log.warning("--curriculum-labels %d is more than --budget %d: the easy-to-hard schedule ends before it reaches the hard items",
                    args.curriculum_labels, args.budget)
    return SimConfig(
        budget=args.budget, batch=args.batch, init=args.init, seeds=tuple(range(args.seeds)),
        strategies=tuple(strategies), metric=args.metric, seconds_per_label=args.seconds_per_label,
        workers=args.workers, test_size=args.test_size, explore=args.explore, curriculum_labels=args.curriculum_labels, cold_start=args.cold_start,
        export_dir=getattr(args, "export_labels", None),
        estimator=estimators(args)[0], stream=getattr(args, "stream", False), pool_capacity=getattr(args, "pool_capacity", None),
        explore_adaptive=ControlShare() if getattr(args, "explore_adaptive", DEFAULT_ADAPTIVE) else None,
        live_estimates=getattr(args, "live_estimates", False), live_estimates_every=getattr(args, "live_estimates_every", None),
        target_fraction=getattr(args, "target", 0.95), auto_accept_precision=getattr(args, "auto_accept_precision", 0.99),
    )


def estimators(args: argparse.Namespace) -> list[str | None]:
    """The ``--estimator`` specs in the order given (default: ``ACTIVESTREAM_ESTIMATOR``, else ``None``: logistic regression)."""
    given = getattr(args, "estimator", None) or [os.environ.get("ACTIVESTREAM_ESTIMATOR") or None]
    return list(dict.fromkeys(given))  # a repeat would run twice


def run_simulation(ds: Dataset, args: argparse.Namespace, strategies: list[str], report_path: Path) -> int:
    """Check the options, run every campaign, print the summary and write the report and its plot.

    Parameters
    ----------
    ds : the labeled dataset.
    args : the ``demo`` / ``simulate`` options.
    strategies : the strategies to compare (``random`` is the control).
    report_path : the JSON report; the PNG plot goes beside it.

    Returns
    -------
    0, or 2 with one ``error:`` line.
    """
    from activestream.devstack.redis_server import RedisUnavailable, redis_url
    from activestream.simulation.campaign import check_split
    from activestream.simulation.engine import simulate
    from activestream.simulation.plot import plot_report
    from activestream.simulation.recommend import recommend
    from activestream.simulation.summary import print_estimates, print_summary, print_table

    try:
        cfg = sim_config(args, strategies)
        check_split(ds, cfg)
        configs = [dataclasses.replace(cfg, estimator=spec) for spec in estimators(args)]  # (each spec is checked here)
    except ValueError as exc:
        return fail(str(exc))
    if len(configs) > 1:
        return run_estimators(ds, args, configs, report_path)
    t0 = time.perf_counter()
    print(f"{ds.name}: {len(ds.X)} items, {ds.X.shape[1]} features, {len(ds.classes)} {'labels' if ds.task == 'multilabel' else 'classes'}; "
          f"strategies {', '.join(cfg.strategies)}; {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}; budget {cfg.budget}, batch {cfg.batch}, init {cfg.init}; "
          f"estimator {cfg.estimator or 'logistic regression (default)'}")
    try:
        with redis_url(args.redis_url) as url:
            report = simulate(ds, cfg, url, progress=not args.no_progress)
    except (ValueError, RedisUnavailable) as exc:  # ValueError: what the data allows only shows in a campaign
        return fail(str(exc))
    report["wall_seconds"] = time.perf_counter() - t0
    print_table(report)
    print_summary(report, cfg.seconds_per_label)
    print_estimates(report)
    report["recommendation"] = recommend(report["strategies"], default=DEFAULT_STRATEGY)
    print(f"\n{report['recommendation']['line']}")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2))
    png = plot_report(report, report_path.with_suffix(".png"))
    print(f"\nreport: {report_path}  plot: {png}  ({report['wall_seconds']:.1f} s)")
    return 0


def run_estimators(ds: Dataset, args: argparse.Namespace, configs: list[SimConfig], report_path: Path) -> int:
    """Several ``--estimator``: every strategy with each, one after the other; one table and summary each.

    The report holds each estimator's report under ``by_estimator`` (keyed by its spec), the
    ``recommendation`` over every strategy x estimator arm (``"margin @ RandomForestClassifier"``),
    and a plot per estimator beside it (``<report>.<Estimator>.png``); ``--export-labels DIR`` writes each estimator's
    campaigns under ``DIR/<Estimator>/``.
    """
    from activestream.devstack.redis_server import RedisUnavailable, redis_url
    from activestream.simulation.engine import simulate
    from activestream.simulation.plot import plot_report
    from activestream.simulation.recommend import arm_name, arms_across, recommend
    from activestream.simulation.summary import print_estimates, print_summary, print_table

    t0 = time.perf_counter()
    cfg = configs[0]
    print(f"{ds.name}: {len(ds.X)} items, {ds.X.shape[1]} features, {len(ds.classes)} {'labels' if ds.task == 'multilabel' else 'classes'}; "
          f"strategies {', '.join(cfg.strategies)}; {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}; budget {cfg.budget}, batch {cfg.batch}, init {cfg.init}; "
          f"estimators {', '.join(str(c.estimator) for c in configs)}")
    reports: dict[str, Any] = {}
    pngs = []
    try:
        with redis_url(args.redis_url) as url:
            for c in configs:
                spec = str(c.estimator)
                if c.export_dir:  # (one folder per estimator: the campaigns of each write the same file names)
                    c = dataclasses.replace(c, export_dir=str(Path(c.export_dir) / spec.rpartition(":")[2]))
                print(f"\n=== estimator {spec}")
                t1 = time.perf_counter()
                report = simulate(ds, c, url, progress=not args.no_progress)
                report["wall_seconds"] = time.perf_counter() - t1
                print_table(report)
                print_summary(report, c.seconds_per_label)
                print_estimates(report)
                reports[spec] = report
                pngs.append(plot_report(report, report_path.with_suffix(f".{spec.rpartition(':')[2]}.png")))
    except (ValueError, RedisUnavailable) as exc:
        return fail(str(exc))
    print("\nAUC per estimator and strategy (mean over seeds):")
    for spec, report in reports.items():
        aucs = ", ".join(f"{name} {entry['auc']:.4f}" for name, entry in report["strategies"].items())
        print(f"  {spec}: {aucs} (full-data {report['metric']} {report['full_data_score']:.4f}; {report['wall_seconds']:.0f} s)")
    combined: dict[str, Any] = {"dataset": ds.name, "estimators": list(reports), "by_estimator": reports, "wall_seconds": time.perf_counter() - t0}
    # The arms are every strategy x estimator pair; the default is the default strategy with the first estimator given.
    combined["recommendation"] = recommend(arms_across(reports), default=arm_name(DEFAULT_STRATEGY, next(iter(reports)), list(reports)))
    print(f"\n{combined['recommendation']['line']}")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(combined, indent=2))
    print(f"\nreport: {report_path}  plots: {', '.join(str(p) for p in pngs)}  ({combined['wall_seconds']:.1f} s)")
    return 0


def writable(report: Path) -> str | None:
    """Why ``report`` cannot be written (checked before a long run), or ``None``."""
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
