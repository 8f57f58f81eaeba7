"""Wall time of one ``simulate`` campaign of the default strategy against modAL margin's own loop (issue 23, Deliver 5).

    .venv-bench/bin/python benchmarks/simulate_speed.py --suites breast_cancer,digits --seeds 2 \\
        --out benchmarks/results/simulate_speed.json

Per suite and seed, the two campaigns run one after the other in this process, alternating
which goes first (A B, then B A), so machine load hits both alike:

- ours: :func:`activestream.simulation.campaign.run_campaign` of the default strategy with its
  random-control share, as ``benchmarks/run_strategies.py`` runs it (the real scorer, Redis queue,
  labeling service and retrainer; the post-campaign auto-accept figures included);
- modAL margin: :func:`benchmarks.peers.run_peer_detailed` (``modal_margin``; on the multi-label
  suite ``modal_ml_min_confidence``, modAL's multi-label loop) on the same split, seed labels and budget.

Both times are whole calls, each including its full-data fit (the reference score). Our campaign
fits with one BLAS thread (``run_campaign`` sets it); the peer's loop gets the same limit unless
``--peer-threads 0`` (its libraries' default, as a user would run it). The peers
need ``benchmarks/requirements-peers.txt`` (``.venv-bench``). ``--rows N`` adds a pool-scaling
campaign on a synthetic10-like set of N rows (``--rows-budget`` labels). Prints a table and
writes JSON: per suite the median seconds per campaign of each, their ratio (median of the
per-pair ratios) and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import redis  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY  # noqa: E402
from activestream.simulation.campaign import SimConfig, run_campaign  # noqa: E402
from activestream.simulation.datasets import Dataset, from_arrays  # noqa: E402
from benchmarks.peers import run_peer_detailed  # noqa: E402
from benchmarks.suites import SUITES, Suite  # noqa: E402


def peer_for(task: str) -> str:
    """modAL margin, or modAL's multi-label loop where margin does not apply."""
    return "modal_ml_min_confidence" if task == "multilabel" else "modal_margin"


def big_pool(rows: int) -> Dataset:
    """A synthetic10-like set (40 features, 10 imbalanced classes, 2 clusters each) of ``rows`` rows."""
    from sklearn.datasets import make_classification

    w = 0.8 ** np.arange(10)
    X, y = make_classification(n_samples=rows, n_features=40, n_informative=12, n_redundant=10, n_classes=10, n_clusters_per_class=2,
                               weights=list(w / w.sum()), class_sep=1.0, flip_y=0.01, random_state=7)
    return from_arrays(f"synthetic 10-class, {rows} rows", X, y)


def time_pair(ds: Dataset, suite: Suite, budget: int, seed: int, client: redis.Redis, ours_first: bool, peer_threads: int | None = 1) -> dict[str, Any]:
    """One campaign of ours and one of the peer on ``seed``, in the given order; seconds of each whole call."""
    cfg = SimConfig(budget=budget, batch=suite.batch, init=suite.init, seeds=(seed,), strategies=(DEFAULT_STRATEGY,), metric=suite.metric,
                    test_size=suite.test_size, target_fraction=0.99, workers=1, explore=DEFAULT_EXPLORE)
    peer = peer_for(ds.task)
    out: dict[str, Any] = {"seed": seed, "ours_first": ours_first, "load_before": os.getloadavg()[0]}

    def ours() -> None:
        t = time.perf_counter()
        r = run_campaign(ds, DEFAULT_STRATEGY, seed, cfg, client)
        out["ours_s"] = time.perf_counter() - t
        out["ours_final"] = r.curve[-1][1]

    def theirs() -> None:
        t = time.perf_counter()
        with threadpool_limits(limits=peer_threads) if peer_threads else contextlib.nullcontext():
            r = run_peer_detailed(ds, peer, seed, budget, suite.batch, suite.init, suite.test_size, suite.metric)
        out["peer_s"] = time.perf_counter() - t
        out["peer_loop_s"] = r.seconds  # without its full-data fit
        out["peer_final"] = r.curve[-1][1]

    for f in (ours, theirs) if ours_first else (theirs, ours):
        f()
    out["ratio"] = out["ours_s"] / out["peer_s"]
    out["load_after"] = os.getloadavg()[0]
    return out


def summarize(name: str, budget: int, pool: int, peer: str, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "suite": name, "budget": budget, "pool_rows": pool, "peer": peer, "pairs": pairs,
        "ours_seconds": statistics.median(p["ours_s"] for p in pairs),
        "peer_seconds": statistics.median(p["peer_s"] for p in pairs),
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "ratio_max": max(p["ratio"] for p in pairs),
        "load_average": round(statistics.mean(p["load_before"] for p in pairs), 2),
    }


def run(suites: list[str], seeds: int, budget: int | None, rows: int | None, rows_budget: int, rows_seeds: int,
        peer_threads: int | None = 1) -> dict[str, Any]:
    report: dict[str, Any] = {"suites": {}, "meta": {"strategy": DEFAULT_STRATEGY, "explore": DEFAULT_EXPLORE, "seeds": seeds,
                                                     "peer_blas_threads": peer_threads or "default",
                                                     "python": platform.python_version(), "cpus": os.cpu_count()}}
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        jobs: list[tuple[str, Dataset, Suite, int, int]] = [
            (name, SUITES[name].load(), SUITES[name], budget or SUITES[name].budget, seeds) for name in suites]
        if rows:
            base = SUITES["synthetic10"]
            jobs.append((f"synthetic10_{rows}", big_pool(rows), base, rows_budget, rows_seeds))
        for name, ds, suite, b, n in jobs:
            pairs = []
            for seed in range(n):
                p = time_pair(ds, suite, b, seed, client, ours_first=seed % 2 == 0, peer_threads=peer_threads)
                pairs.append(p)
                print(f"  {name:18s} seed {seed}: ours {p['ours_s']:7.2f} s  {peer_for(ds.task)} {p['peer_s']:7.2f} s  "
                      f"ratio {p['ratio']:.2f}  load {p['load_before']:.2f}", file=sys.stderr, flush=True)
            report["suites"][name] = summarize(name, b, int(len(ds.X) * (1 - suite.test_size)), peer_for(ds.task), pairs)
    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"{'suite':18s} {'budget':>6s} {'pool':>7s} {'ours s':>8s} {'peer s':>8s} {'ratio':>6s} {'max':>6s} {'load':>5s}")
    for r in report["suites"].values():
        print(f"{r['suite']:18s} {r['budget']:6d} {r['pool_rows']:7d} {r['ours_seconds']:8.2f} {r['peer_seconds']:8.2f} "
              f"{r['ratio']:6.2f} {r['ratio_max']:6.2f} {r['load_average']:5.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, from {', '.join(SUITES)}")
    ap.add_argument("--seeds", type=int, default=2, help="pairs per suite (seeds 0..N-1, alternating which runs first)")
    ap.add_argument("--budget", type=int, default=None, help="override every suite's budget (quick checks)")
    ap.add_argument("--rows", type=int, default=None, help="also a pool of this many rows (synthetic10-like)")
    ap.add_argument("--rows-budget", type=int, default=300)
    ap.add_argument("--rows-seeds", type=int, default=1)
    ap.add_argument("--peer-threads", type=int, default=1,
                    help="BLAS/OpenMP threads of the peer's loop (ours runs with one); 0: the library's default, as a user runs it")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate_speed.json"))
    args = ap.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    for s in suites:
        if s not in SUITES:
            ap.error(f"--suites: unknown {s!r} ({', '.join(SUITES)})")
    report = run(suites, args.seeds, args.budget, args.rows, args.rows_budget, args.rows_seeds, args.peer_threads or None)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
