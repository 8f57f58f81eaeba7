"""The adaptive control share's AUC cost against a fixed share (issue 23, Deliver 3), paired per seed.

For each suite and seed, two campaigns of the default strategy run through the real services
(:func:`activestream.simulation.campaign.run_campaign`) on the same split and seed labels: one with
the fixed share (``--explore``, the product's 0.1), one with the adaptive rule
(:class:`activestream.labeling.control_share.ControlShare`), whose retrainer computes the live
estimates inline every ``--every`` labels (the share follows the newest one, as in the services,
where a background thread makes them). Reported per suite: the per-seed AUC difference (adaptive
minus fixed) mean +- standard error, labels to 99% of the full-data score (of the seed-averaged
curve, and the per-seed mean where reached), the control labels each arm spent, and how many of
the adaptive arm's versions carried an accuracy estimate and one narrow enough to lower the share.
Results are written after every seed (a partial run keeps its pairs).

    python benchmarks/control_share.py --suites breast_cancer,digits --seeds 10 --out benchmarks/results/control_share.json
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

import numpy as np  # noqa: E402
import redis  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.labeling.control_share import ControlShare, accuracy_width  # noqa: E402
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY  # noqa: E402
from activestream.simulation.campaign import CampaignResult, SimConfig, run_campaign  # noqa: E402
from activestream.simulation.curves import auc, labels_to_target, mean_curve  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402


def _arm(results: list[CampaignResult], rule: ControlShare | None) -> dict[str, Any]:
    full = float(np.mean([r.full_data_score for r in results]))
    curve = mean_curve([r.curve for r in results])
    per_seed_99 = [labels_to_target(r.curve, 0.99 * r.full_data_score) for r in results]
    reached = [n for n in per_seed_99 if n is not None]
    out: dict[str, Any] = {
        "auc": auc(curve), "per_seed_auc": [auc(r.curve) for r in results], "labels_to_99": labels_to_target(curve, 0.99 * full),
        "per_seed_labels_to_99": per_seed_99, "mean_labels_to_99_reached": float(np.mean(reached)) if reached else None,
        "n_reached_99": len(reached), "final_n_control": [r.versions[-1]["n_control"] if r.versions else 0.0 for r in results],
        "wall_seconds": [r.seconds for r in results],
    }
    if rule is not None:
        widths = [[accuracy_width(v) for v in r.versions] for r in results]
        out["versions"] = sum(len(w) for w in widths)
        out["versions_with_estimates"] = sum(w is not None for ws in widths for w in ws)
        out["versions_narrow"] = sum(w is not None and w <= rule.width for ws in widths for w in ws)
        out["first_estimate_at_labels"] = [next((v["n_labels"] for v in r.versions if accuracy_width(v) is not None), None) for r in results]
    return out


def run_suite(name: str, seeds: int, budget: int | None, every: int, rule: ControlShare, client: redis.Redis, explore: float,
              on_seed: Any) -> dict[str, Any]:
    suite = SUITES[name]
    ds = suite.load()
    common = {"budget": budget or suite.budget, "batch": suite.batch, "init": suite.init, "metric": suite.metric,
              "test_size": suite.test_size, "strategies": (DEFAULT_STRATEGY,), "target_fraction": 0.99}
    fixed_cfg = SimConfig(explore=explore, **common)
    adaptive_cfg = SimConfig(explore_adaptive=rule, live_estimates=True, live_estimates_every=every, **common)
    fixed: list[CampaignResult] = []
    adaptive: list[CampaignResult] = []
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    for seed in range(seeds):
        fixed.append(run_campaign(ds, DEFAULT_STRATEGY, seed, fixed_cfg, client))
        adaptive.append(run_campaign(ds, DEFAULT_STRATEGY, seed, adaptive_cfg, client))
        d = np.array([auc(a.curve) - auc(f.curve) for a, f in zip(adaptive, fixed, strict=True)])
        res = {"suite": name, "strategy": DEFAULT_STRATEGY, "budget": common["budget"], "seeds": seed + 1, "explore": explore,
               "rule": {"high": rule.high, "low": rule.low, "width": rule.width}, "estimates_every": every,
               "auc_diff_mean": float(d.mean()), "auc_diff_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None,
               "fixed": _arm(fixed, None), "adaptive": _arm(adaptive, rule), "wall_seconds": time.perf_counter() - t0}
        on_seed(res)
    return res


def table(results: dict[str, Any]) -> str:
    lines = ["| suite | budget | seeds | AUC fixed | AUC adaptive | diff +- s.e. | to 99%: fixed / adapt. "
             "| control: fixed / adapt. | versions: estimates / narrow / all |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        f, a = r["fixed"], r["adaptive"]
        se = "" if r["auc_diff_se"] is None else f" +- {r['auc_diff_se']:.4f}"
        lines.append(f"| {r['suite']} | {r['budget']} | {r['seeds']} | {f['auc']:.4f} | {a['auc']:.4f} | {r['auc_diff_mean']:+.4f}{se} "
                     f"| {f['labels_to_99']} / {a['labels_to_99']} | {np.mean(f['final_n_control']):.1f} / {np.mean(a['final_n_control']):.1f} "
                     f"| {a['versions_with_estimates']} / {a['versions_narrow']} / {a['versions']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suites", default="breast_cancer,digits")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=None, help="labels per campaign (default: the suite's)")
    ap.add_argument("--every", type=int, default=30, help="the adaptive arm's live estimates every this many labels")
    ap.add_argument("--explore", type=float, default=DEFAULT_EXPLORE, help="the fixed arm's share")
    ap.add_argument("--high", type=float, default=ControlShare().high)
    ap.add_argument("--low", type=float, default=ControlShare().low)
    ap.add_argument("--width", type=float, default=ControlShare().width)
    ap.add_argument("--out", default="benchmarks/results/control_share.json")
    args = ap.parse_args()
    rule = ControlShare(args.high, args.low, args.width)
    out = Path(args.out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}

    def save(res: dict[str, Any]) -> None:
        results[res["suite"]] = res
        out.write_text(json.dumps(results, indent=1))
        out.with_suffix(".md").write_text(table(results) + "\n")
        print(f"{res['suite']} seed {res['seeds']}: diff {res['auc_diff_mean']:+.4f} (se {res['auc_diff_se']}) {res['wall_seconds']:.0f} s", flush=True)

    with redis_url() as url:
        client = redis.Redis.from_url(url)
        for name in args.suites.split(","):
            run_suite(name, args.seeds, args.budget, args.every, rule, client, args.explore, save)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
