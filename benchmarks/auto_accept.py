"""Does auto-accept keep its precision? Realized precision of auto-accepted items per (suite, seed, version).

Runs simulated campaigns (the real scorer, queue, labeling service and retrainer,
:func:`activestream.simulation.campaign.run_campaign`) on the multi-class benchmark suites. Each
model version the retrainer publishes calibrates the auto-accept thresholds on the random-control
labels (per class where a class's own labels reach the 95% Clopper-Pearson bound, the rest pooled:
``retrainer.auto_accept_rule``); at its re-rank the scorer moves the pending items it is sure of to
the auto-labels topic. Each (seed, version) that auto-accepted items is a pair; its realized
precision is the share of those auto-labels that match the ground truth. Acceptance: realized
precision >= the target in >= 95% of the pairs.

    python benchmarks/auto_accept.py --suites digits,breast_cancer,synthetic10 --seeds 0,1,2 \\
        --target 0.95 --explore 0.3 --budgets breast_cancer=250 --out benchmarks/results/auto_accept.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.scorer.strategies import DEFAULT_STRATEGY  # noqa: E402
from activestream.simulation.campaign import SimConfig, run_campaign  # noqa: E402
from benchmarks.suites import MULTICLASS, SUITES  # noqa: E402


def pairs_table(pairs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """The acceptance figures over ``pairs`` (each ``{"suite", "seed", "version", "n", "correct"}``)."""
    met = [p for p in pairs if p["correct"] / p["n"] >= target]
    items = sum(p["n"] for p in pairs)
    return {"pairs": len(pairs), "pairs_at_target": len(met), "share_at_target": len(met) / len(pairs) if pairs else None,
            "items_auto_accepted": items, "pooled_precision": sum(p["correct"] for p in pairs) / items if items else None,
            "worst_precision": min((p["correct"] / p["n"] for p in pairs), default=None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(MULTICLASS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--target", type=float, default=0.95, help="auto-accept precision target")
    ap.add_argument("--explore", type=float, default=0.3, help="random-control share of each leased batch")
    ap.add_argument("--budget", type=int, default=None, help="labels per campaign (default: the suite's)")
    ap.add_argument("--budgets", default="", help="per suite, e.g. breast_cancer=250 (over --budget)")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--strategy", default=DEFAULT_STRATEGY)
    ap.add_argument("--out", default="benchmarks/results/auto_accept.json")
    args = ap.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    pairs: list[dict[str, Any]] = []
    per_suite: dict[str, Any] = {}
    t0 = time.perf_counter()
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        for name in args.suites.split(","):
            suite = SUITES[name]
            ds = suite.load()
            budget = dict((k, int(v)) for k, v in (b.split("=") for b in args.budgets.split(",") if b)).get(name) or args.budget or suite.budget
            cfg = SimConfig(budget=budget, batch=args.batch, seeds=seeds, strategies=(args.strategy,), auto_accept_precision=args.target,
                            explore=args.explore)
            suite_pairs: list[dict[str, Any]] = []
            for seed in seeds:
                res = run_campaign(ds, args.strategy, seed, cfg, client)
                got = [{"suite": name, "seed": seed, **v} for v in res.auto_by_version]
                suite_pairs += got
                print(f"{name} seed {seed}: budget {budget}, {len(got)} versions auto-accepted "
                      + ", ".join(f"v{p['version']} {p['correct']}/{p['n']}" for p in got), flush=True)
            per_suite[name] = {"budget": budget, **pairs_table(suite_pairs, args.target)}
            pairs += suite_pairs
    report = {"target": args.target, "explore": args.explore, "strategy": args.strategy, "seeds": list(seeds), "batch": args.batch,
              "suites": per_suite, "overall": pairs_table(pairs, args.target), "pairs": pairs, "wall_seconds": time.perf_counter() - t0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{'suite':<14} {'pairs':>5} {'>=target':>8} {'share':>6} {'items':>6} {'precision':>9} {'worst':>6}")
    for name, r in [*per_suite.items(), ("overall", report["overall"])]:
        share = "-" if r["share_at_target"] is None else f"{r['share_at_target']:.3f}"
        prec = "-" if r["pooled_precision"] is None else f"{r['pooled_precision']:.4f}"
        worst = "-" if r["worst_precision"] is None else f"{r['worst_precision']:.3f}"
        print(f"{name:<14} {r['pairs']:>5} {r['pairs_at_target']:>8} {share:>6} {r['items_auto_accepted']:>6} {prec:>9} {worst:>6}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
