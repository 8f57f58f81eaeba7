"""Learning curves of the peers' own active-learning strategies under our simulator's protocol.

Runs every peer of ``benchmarks/peers.py`` on every chosen multi-class suite of
``benchmarks/suites.py`` at the suite's recommended budget, for ``--seeds`` seeds, and
writes one JSON file::

    {DATASET: {PEER: {"curve", "per_seed", "labels_to_95", "labels_to_99", "auc",
                      "final_score", "wall_seconds", ...}},
     "full_data_score": {DATASET: mean over seeds},
     "meta": {...}}

``labels_to_95`` / ``labels_to_99`` are read off the seed-averaged curve against 95% / 99%
of the mean full-data score (``activestream.simulation.curves.labels_to_target``); ``auc`` is
``activestream.simulation.curves.auc`` of that curve.

Needs the peers' libraries (``benchmarks/requirements-peers.txt``), e.g.::

    .venv-bench/bin/python benchmarks/run_peers.py --datasets digits,breast_cancer,synthetic10 \\
        --workers 2 --out benchmarks/results/peers.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from activestream.simulation.curves import auc, labels_to_target, mean_curve  # noqa: E402
from benchmarks.peers import CONTROL, MULTILABEL_PEERS, NAMES, PeerRun, run_peer_detailed  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402


def applies(dataset: str, peer: str) -> bool:
    """Whether ``peer`` runs on ``dataset``: multi-label strategies on multi-label suites only, and the reverse."""
    return peer == CONTROL or (peer in MULTILABEL_PEERS) == (SUITES[dataset].task == "multilabel")

# Rough relative cost, to start the long jobs first so two workers finish together.
_COST = {"skactiveml_typiclust": 3.0, "skactiveml_clue": 2.0}

Job = tuple[str, str, int, int, str, bool, int]


def _job(args: Job) -> tuple[Job, PeerRun]:
    return args, _run_job(args)


def _run_job(args: Job) -> PeerRun:
    suite_name, peer, seed, budget, features, single_thread, offset = args
    suite = SUITES[suite_name]
    ds = suite.load()
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread per worker: the workers already fill the cores.
    with threadpool_limits(limits=1) if single_thread else contextlib.nullcontext():
        return run_peer_detailed(ds, peer, seed, budget, suite.batch, suite.init, suite.test_size, suite.metric, features=features,
                                 query_seed_offset=offset)


def summarize(runs: list[PeerRun], full: float) -> dict[str, Any]:
    """Seed-averaged curve and its figures for one (dataset, peer)."""
    runs = sorted(runs, key=lambda r: r.seed)
    curve = mean_curve([r.curve for r in runs])
    return {
        "curve": [[x, round(y, 6)] for x, y in curve],
        "per_seed": [[[x, round(y, 6)] for x, y in r.curve] for r in runs],
        "seeds": [r.seed for r in runs],
        "labels_to_95": labels_to_target(curve, 0.95 * full),
        "labels_to_99": labels_to_target(curve, 0.99 * full),
        "per_seed_labels_to_99": [labels_to_target(r.curve, 0.99 * r.full_data_score) for r in runs],
        "auc": auc(curve),
        "final_score": curve[-1][1] if curve else None,
        "wall_seconds": float(sum(r.seconds for r in runs)),
        "wall_seconds_per_seed": [round(r.seconds, 3) for r in runs],
        "query_seconds": float(sum(r.query_seconds for r in runs)),
        "cold_start_fallback_rounds": [r.extra.get("cold_start_fallback_rounds", 0) for r in runs],
    }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "scikit-learn", "modAL-python", "scikit-activeml", "activestream"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def run(
    datasets: list[str], peers: list[str], seeds: int | None, workers: int, features: str, budget: int | None, query_seed_offset: int = 0
) -> dict[str, Any]:
    """Run every (dataset, peer, seed) job and build the JSON report (``seeds=None``: each suite's own count)."""
    budgets = {d: budget or SUITES[d].budget for d in datasets}
    n_seeds = {d: seeds or SUITES[d].seeds for d in datasets}
    peers_of = {d: [p for p in peers if applies(d, p)] for d in datasets}
    jobs: list[Job] = [(d, p, s, budgets[d], features, workers > 1, query_seed_offset) for d in datasets for p in peers_of[d] for s in range(n_seeds[d])]
    jobs.sort(key=lambda j: -budgets[j[0]] * _COST.get(j[1], 1.0))
    results: list[PeerRun] = []
    by_job: dict[tuple[str, str, int], PeerRun] = {}
    t0 = time.perf_counter()

    def done(job: Job, r: PeerRun) -> None:
        results.append(r)
        by_job[(job[0], job[1], job[2])] = r
        print(f"  [{len(results):3d}/{len(jobs)}] {job[0]:14s} {job[1]:24s} seed {job[2]}  final {r.curve[-1][1]:.4f}  "
              f"{r.seconds:7.1f} s (query {r.query_seconds:6.1f} s)", file=sys.stderr, flush=True)

    if workers > 1:
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for job, r in pool.imap_unordered(_job, jobs):
                done(job, r)
    else:
        for job in jobs:
            done(*_job(job))
    report: dict[str, Any] = {}
    fulls: dict[str, float] = {}
    for d in datasets:
        full = float(np.mean([by_job[(d, peers_of[d][0], s)].full_data_score for s in range(n_seeds[d])]))
        fulls[d] = full
        report[d] = {p: summarize([by_job[(d, p, s)] for s in range(n_seeds[d])], full) for p in peers_of[d]}
    report["full_data_score"] = fulls
    report["meta"] = {
        "protocol": {d: {"budget": budgets[d], **{k: v for k, v in asdict(SUITES[d]).items() if k in ("init", "batch", "test_size", "metric")}} for d in datasets},
        "random_labels_to_99_simulator": {d: SUITES[d].random_labels_to_99 for d in datasets},
        "seeds": {d: list(range(n_seeds[d])) for d in datasets},
        "features": features,
        "query_seed_offset": query_seed_offset,
        "model": "make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)), refit on every label after each batch",
        "control": f"{CONTROL}: our random order in this harness (not a peer)",
        "workers": workers,
        "total_wall_seconds": time.perf_counter() - t0,
        "versions": _versions(),
    }
    return report


def print_table(report: dict[str, Any], datasets: list[str], peers: list[str]) -> None:
    """One line per (dataset, peer): labels to 95% / 99%, AUC, final score, wall time."""
    print(f"{'dataset':14s} {'peer':24s} {'to95':>5s} {'to99':>5s} {'auc':>7s} {'final':>7s} {'wall s':>8s}")
    for d in datasets:
        ref = report["meta"]["random_labels_to_99_simulator"][d]
        print(f"{d:14s} full-data {report['full_data_score'][d]:.4f}; budget {report['meta']['protocol'][d]['budget']}; "
              f"our simulator's random reaches 99% at {ref}")
        for p in report[d]:
            e = report[d][p]
            print(f"{'':14s} {p:24s} {_fmt(e['labels_to_95']):>5s} {_fmt(e['labels_to_99']):>5s} {e['auc']:7.4f} "
                  f"{e['final_score']:7.4f} {e['wall_seconds']:8.1f}")


def _fmt(v: int | None) -> str:
    return "-" if v is None else str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(SUITES), help=f"comma-separated, from {', '.join(SUITES)}")
    p.add_argument("--peers", default=",".join(NAMES), help=f"comma-separated, from {', '.join(NAMES)} (each runs where it applies)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: each suite's own count)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (one job = one dataset, peer and seed)")
    p.add_argument("--features", choices=("standardized", "raw"), default="standardized", help="what the peers' queries see")
    p.add_argument("--budget", type=int, default=None, help="override every suite's recommended budget (quick checks)")
    p.add_argument("--query-seed-offset", type=int, default=0,
                   help="added to each seed for the scikit-activeml strategies' own draws only (a second draw of a stochastic peer)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/peers.json"))
    args = p.parse_args(argv)
    datasets = args.datasets.split(",")
    peers = args.peers.split(",")
    for d in datasets:
        if d not in SUITES:
            p.error(f"--datasets: unknown {d!r} ({', '.join(SUITES)})")
    for name in peers:
        if name not in NAMES:
            p.error(f"--peers: unknown {name!r} ({', '.join(NAMES)})")
    report = run(datasets, peers, args.seeds, args.workers, args.features, args.budget, args.query_seed_offset)
    print_table(report, datasets, peers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['meta']['total_wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
