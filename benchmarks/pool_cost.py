"""The cost of a capped pool: ``simulate --stream`` on the suites, uncapped vs capacities of 20% and 5% of the pool.

Each suite is replayed as a stream (the training split in file order, a slice before each round)
with the default strategy, the suite's budget, batch, seed labels and test share
(``benchmarks/suites.py``), and the target of the strategy benchmark: 99% of the full-data score
(``benchmarks/run_strategies.py``). The pool is the training split; a capacity is a share of it
(rounded up), with the product's reservoir of a tenth of the capacity.

Per suite and capacity it reports labels to 99% (mean curve over seeds; ``None``: not within the
budget), per-seed labels to 99%, AUC and the final score, and the ratio of labels to 99% to the
uncapped run's (a target missed within the budget counts as the budget: a lower bound). The
acceptance line: at 20% capacity, the ratio is at most 1.1 on every suite.

Run (the results file is merged per suite, so suites can run one at a time)::

    .venv/bin/python benchmarks/pool_cost.py --seeds 3 --workers 1 --suites breast_cancer,digits
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY  # noqa: E402
from activestream.simulation.campaign import SimConfig  # noqa: E402
from activestream.simulation.curves import auc, labels_to_target  # noqa: E402
from activestream.simulation.engine import simulate  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402

#: Capacities as shares of the pool (``None``: uncapped, the reference).
SHARES: tuple[float | None, ...] = (None, 0.2, 0.05)
TARGET_FRACTION = 0.99
MAX_RATIO_AT_20 = 1.1


def run_suite(name: str, seeds: int, workers: int, url: str, budget: int | None) -> dict[str, Any]:
    """One suite at every capacity of :data:`SHARES`: labels to 99%, AUC and the ratio to uncapped."""
    suite = SUITES[name]
    ds = suite.load()
    budget = budget or suite.budget
    out: dict[str, Any] = {"budget": budget, "metric": suite.metric, "seeds": seeds, "capacities": {}}
    pool = len(ds.X) - math.ceil(len(ds.X) * suite.test_size)  # sklearn's train_test_split: the test share rounded up
    for share in SHARES:
        capacity = None if share is None else max(1, math.ceil(share * pool))
        cfg = SimConfig(budget=budget, batch=suite.batch, init=suite.init, seeds=tuple(range(seeds)), strategies=(DEFAULT_STRATEGY,),
                        metric=suite.metric, test_size=suite.test_size, target_fraction=TARGET_FRACTION, workers=workers,
                        explore=DEFAULT_EXPLORE, stream=True, pool_capacity=capacity)
        t0 = time.perf_counter()
        rep = simulate(ds, cfg, url, progress=False)
        e = rep["strategies"][DEFAULT_STRATEGY]
        curve = [(int(x), float(y)) for x, y in e["curve"]]
        key = "uncapped" if share is None else f"{share:.0%}"
        out["full_data_score"] = rep["full_data_score"]
        out["pool"] = pool
        out["capacities"][key] = {
            "pool_capacity": capacity, "labels_to_99": labels_to_target(curve, TARGET_FRACTION * rep["full_data_score"]),
            "per_seed_labels_to_99": e["per_seed_labels_to_target"], "auc": auc(curve), "final_score": e["final_score"],
            "curve": e["curve"], "wall_seconds": time.perf_counter() - t0,
        }
        print(f"{name} {key:>8} (capacity {capacity}): labels to 99% {out['capacities'][key]['labels_to_99']}, "
              f"per seed {e['per_seed_labels_to_target']}, AUC {out['capacities'][key]['auc']:.4f}, "
              f"{out['capacities'][key]['wall_seconds']:.0f} s", flush=True)
    ref = out["capacities"]["uncapped"]["labels_to_99"] or budget
    for entry in out["capacities"].values():
        entry["ratio_to_uncapped"] = (entry["labels_to_99"] or budget) / ref
        entry["ratio_is_lower_bound"] = entry["labels_to_99"] is None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default="breast_cancer,digits,multilabel8,synthetic10")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--budget", type=int, default=None, help="labels per campaign (default: each suite's own)")
    ap.add_argument("--out", default="benchmarks/results/pool_cost.json")
    args = ap.parse_args()
    path = Path(args.out)
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("suites", {})
    results["strategy"], results["target_fraction"], results["shares"] = DEFAULT_STRATEGY, TARGET_FRACTION, [s for s in SHARES if s]
    with redis_url() as url:
        for name in args.suites.split(","):
            results["suites"][name] = run_suite(name, args.seeds, args.workers, url, args.budget)
            at20 = results["suites"][name]["capacities"]["20%"]
            results["suites"][name]["meets_target_at_20"] = at20["ratio_to_uncapped"] <= MAX_RATIO_AT_20
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))
    print("\n| suite | uncapped labels to 99% | 20%: labels (ratio) | 5%: labels (ratio) | AUC uncapped / 20% / 5% |")
    for name, r in results["suites"].items():
        c = r["capacities"]
        cells = [f"{c[k]['labels_to_99']} ({c[k]['ratio_to_uncapped']:.2f})" for k in ("20%", "5%")]
        print(f"| {name} | {c['uncapped']['labels_to_99']} | {cells[0]} | {cells[1]} | "
              f"{c['uncapped']['auc']:.4f} / {c['20%']['auc']:.4f} / {c['5%']['auc']:.4f} |")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
