"""Measure each suite's recommended label budget with our own simulator.

The budget is the first label count at which *random* sampling (our ``random``
strategy through the real scorer, queue and retrainer; LR head, 20 seed labels,
batches of 10) reaches 99% of the full-data score on the curve averaged over the
seeds. Each campaign runs until the whole training pool is labeled, so the target
is always reachable in principle.

Usage::

    python benchmarks/measure_budgets.py --suites digits,breast_cancer,synthetic10,multilabel8 \\
        --workers 2 --out benchmarks/results/budgets.json

Copy the printed budgets into ``SUITES`` in ``benchmarks/suites.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.simulation.campaign import SimConfig, split  # noqa: E402
from activestream.simulation.curves import labels_to_target  # noqa: E402
from activestream.simulation.engine import simulate  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402


def measure(name: str, seeds: int | None, workers: int, url: str, target_fraction: float = 0.99) -> dict[str, object]:
    """Run random over the whole pool for ``seeds`` seeds (``None``: the suite's count); labels to 95% / 99% of the full-data score."""
    suite = SUITES[name]
    seeds = seeds or suite.seeds
    ds = suite.load()
    pool = len(split(ds, 0, suite.test_size)[0])
    cfg = SimConfig(
        budget=pool, batch=suite.batch, init=suite.init, seeds=tuple(range(seeds)), strategies=("random",),
        metric=suite.metric, test_size=suite.test_size, target_fraction=target_fraction, workers=workers,
    )
    t0 = time.perf_counter()
    rep = simulate(ds, cfg, url, progress=False)
    entry = rep["strategies"]["random"]
    curve = [(int(x), float(y)) for x, y in entry["curve"]]
    full = float(rep["full_data_score"])
    return {
        "dataset": ds.name,
        "task": ds.task,
        "metric": suite.metric,
        "pool": pool,
        "full_data_score": full,
        "random_labels_to_99": labels_to_target(curve, 0.99 * full),
        "random_labels_to_95": labels_to_target(curve, 0.95 * full),
        "per_seed_labels_to_99": entry["per_seed_labels_to_target"],
        "curve": entry["curve"],
        "wall_seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suites", default=",".join(SUITES))
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: each suite's own count)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/budgets.json"))
    args = p.parse_args(argv)
    out: dict[str, object] = {}
    with redis_url() as url:
        for name in args.suites.split(","):
            res = measure(name, args.seeds, args.workers, url)
            out[name] = res
            print(f"{name:14s} pool {res['pool']:5d}  full {res['full_data_score']:.4f} ({res['metric']})  "
                  f"random to 95%: {res['random_labels_to_95']}  to 99%: {res['random_labels_to_99']}  "
                  f"per seed to 99%: {res['per_seed_labels_to_99']}  ({res['wall_seconds']:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
