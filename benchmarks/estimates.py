"""Validate the retrainer's live estimates (issue 20) where the truth is known: the benchmark suites.

For each multi-class suite and seed, one campaign of the default strategy (with a random-control share
``explore``) runs to ``budget`` labels through the real services, and one campaign of ``random`` runs
over the whole pool (so the measured random curve reaches the scores the default strategy reaches).
At every model version the retrainer's ``est_*`` metrics are set beside the truth
(:mod:`activestream.simulation.estimates`):

- coverage: the share of versions with >= 100 control labels whose test-split score lies inside the
  95% interval of ``est_accuracy`` (target >= 90%);
- savings at the budget: ``est_savings_share`` of the version at ``budget`` labels minus the measured
  one, ``1 - budget / L``, ``L`` the labels the seed-averaged measured random curve needs to reach
  that version's test score (target within +-0.15); ``None`` where random never gets there within the pool;
- random's accuracy at the budget: ``est_accuracy_at_budget`` beside the measured random curve there;
- cost: seconds of :func:`activestream.retrainer.estimates.estimate` at 100 / 500 / 2,000 control labels.

    python benchmarks/estimates.py --seeds 3 --out benchmarks/results/estimates.json

(multilabel8 is left out: control labels are scored as one class, so a multi-label campaign has no estimates.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.retrainer.estimates import EstimateConfig, estimate, power_law, trainer_fit  # noqa: E402
from activestream.scorer.strategies import DEFAULT_STRATEGY, RANDOM  # noqa: E402
from activestream.simulation.campaign import SimConfig, run_campaign, split  # noqa: E402
from activestream.simulation.curves import mean_curve  # noqa: E402
from activestream.simulation.estimates import beside_truth, score_at, validation_summary  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402

# Per suite: labels the default strategy's campaign runs to and its random-control share (enough versions
# past 100 control labels for the coverage), and the budget the savings are judged at: one where the default
# strategy's score is one that random sampling reaches within the pool (past it, on the plateau, random never
# does and the measured savings are only a lower bound).
PROTOCOL: dict[str, dict[str, Any]] = {
    "digits": {"run": 500, "budget": 300, "explore": 0.25},
    "breast_cancer": {"run": 300, "budget": 150, "explore": 0.4},
    "synthetic10": {"run": 1000, "budget": 600, "explore": 0.2},
}
BATCH = 20  # labels per version (the suites' 10 would double the versions, and the estimates' cost, for little)


def run_suite(name: str, seeds: int, client: redis.Redis, first_seed: int = 0) -> dict[str, Any]:
    suite, proto = SUITES[name], PROTOCOL[name]
    seed_list = tuple(range(first_seed, first_seed + seeds))
    ds = suite.load()
    pool = len(split(ds, 0, suite.test_size)[0])
    common = {"batch": BATCH, "init": suite.init, "seeds": seed_list, "metric": suite.metric, "test_size": suite.test_size}
    active_cfg = SimConfig(budget=proto["run"], strategies=(DEFAULT_STRATEGY,), explore=proto["explore"], live_estimates=True, **common)
    random_cfg = SimConfig(budget=pool, strategies=(RANDOM,), **common)
    t0 = time.perf_counter()
    randoms = [run_campaign(ds, RANDOM, s, random_cfg, client) for s in seed_list]
    random_curve = mean_curve([r.curve for r in randoms])
    actives = [run_campaign(ds, DEFAULT_STRATEGY, s, active_cfg, client) for s in seed_list]
    rows = [a.versions for a in actives]
    res = {"suite": name, "strategy": DEFAULT_STRATEGY, "seeds": seeds, "seed_list": list(seed_list), "pool": pool, "n_test": len(ds.X) - pool, "batch": BATCH, **proto,
           "full_data_score": float(np.mean([a.full_data_score for a in actives])), "random_curve": random_curve, "versions": rows,
           "wall_seconds": time.perf_counter() - t0}
    return judge(res)


def judge(res: dict[str, Any]) -> dict[str, Any]:
    """Coverage and the figures at the budget from a suite's ``versions`` (also to re-judge a saved run)."""
    budget, random_curve = res["budget"], [tuple(p) for p in res["random_curve"]]
    keep = ("version", "n_labels", "n_control", "test_score")  # (a saved run's rows are judged afresh)
    rows = [beside_truth([{k: x for k, x in v.items() if k in keep or k.startswith("est_")} for v in seed_rows], random_curve, res["n_test"])
            for seed_rows in res["versions"]]
    res = {**res, "versions": rows}
    at_budget = []
    for seed, seed_rows in zip(res.get("seed_list", range(len(rows))), rows, strict=True):
        last = next(r for r in seed_rows if r["n_labels"] >= budget)
        if "est_curve_a" in last:  # random's accuracy at the judged budget, from the version's curve
            last = {**last, "est_accuracy_at_budget": float(power_law(budget, last["est_curve_a"], last["est_curve_b"], last["est_curve_c"])),
                    "measured_random_at_budget": score_at(random_curve, budget)}
        at_budget.append({
            "seed": seed, "n_labels": last["n_labels"], "n_control": last["n_control"], "test_score": last["test_score"],
            **{k: last.get(k) for k in ("est_accuracy", "est_accuracy_low", "est_accuracy_high", "est_savings_share", "est_savings_share_low",
                                        "est_savings_share_high", "measured_savings_share", "measured_savings_share_at_least", "savings_error",
                                        "est_random_labels", "measured_random_labels", "est_accuracy_at_budget", "measured_random_at_budget")},
        })
    flat = [r for s in rows for r in s]
    errs = [b["savings_error"] for b in at_budget if b.get("savings_error") is not None]
    budget_errs = [b["est_accuracy_at_budget"] - b["measured_random_at_budget"] for b in at_budget
                   if b.get("est_accuracy_at_budget") is not None and b.get("measured_random_at_budget") is not None]
    return {
        **res,
        "validation_100": validation_summary(flat, min_control=100),
        "validation_40": validation_summary(flat, min_control=40),
        "at_budget": at_budget,
        "savings_at_budget_abs_error": [abs(e) for e in errs],
        "savings_at_budget_within_0.15": sum(abs(e) <= 0.15 for e in errs),
        "savings_at_budget_compared": len(errs),
        "random_accuracy_at_budget_error": budget_errs,
    }


def timing(sizes: tuple[int, ...] = (100, 500, 2000), repeat: int = 2) -> dict[str, float]:
    """Seconds per version of the estimates (logistic regression) at ``sizes`` control labels, 10 labels per control one
    (``explore`` 0.1) up to 5,000 labels, 64 features, 10 classes (digits-like)."""
    out = {}
    for n_control in sizes:
        n = min(10 * n_control, 5000)
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, size=n)
        X = (rng.normal(size=(n, 64)) + 1.5 * np.eye(10, 64)[y]).astype(np.float32)
        control = np.zeros(n, dtype=bool)
        control[rng.choice(n, n_control, replace=False)] = True
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            estimate(X, y, control, np.full(n, 30.0), n, trainer_fit(), budget=1000, cfg=EstimateConfig())
            best = min(best, time.perf_counter() - t0)
        out[f"{n_control} control of {n} labels"] = best
    return out


def markdown(results: dict[str, Any]) -> str:
    """Two tables (lines under 160 characters): the accuracy's coverage, then the savings and random's accuracy at the budget."""
    fmt = lambda x: "—" if x is None else f"{x:.2f}"  # noqa: E731
    cov_lines = ["| suite | seeds | run, budget | explore | versions | coverage (widened) | bias |", "|---|---|---|---|---|---|---|"]
    sav_lines = ["| suite | savings at budget: est. / meas. | error | savings in interval | random acc. at budget: est. / meas. |",
                 "|---|---|---|---|---|"]
    for r in results["suites"]:
        v = r["validation_100"]
        sav = "; ".join(f"{fmt(b['est_savings_share'])} / {fmt(b['measured_savings_share']) if b['measured_savings_share'] is not None else '>=' + fmt(b['measured_savings_share_at_least'])}"
                        for b in r["at_budget"])
        err = ", ".join(f"{e:.2f}" for e in r["savings_at_budget_abs_error"]) or "—"
        acc = "; ".join(f"{fmt(b['est_accuracy_at_budget'])} / {fmt(b['measured_random_at_budget'])}" for b in r["at_budget"])
        cov = "—" if v["coverage"] is None else f"{100 * v['coverage']:.0f}% ({100 * v['coverage_widened_by_test_noise']:.0f}%)"
        bias = "—" if v.get("accuracy_bias") is None else f"{v['accuracy_bias']:+.3f}"
        w = r["validation_40"]  # (the savings are compared at every version with >= 40 control labels)
        inside = "—" if w.get("savings_inside") is None else f"{100 * w['savings_inside']:.0f}% of {w['savings_compared']}"
        cov_lines.append(f"| {r['suite']} | {r['seeds']} | {r['run']}, {r['budget']} | {r['explore']} | {v['versions']} | {cov} | {bias} |")
        sav_lines.append(f"| {r['suite']} | {sav} | {err} | {inside} | {acc} |")
    return "\n".join(cov_lines) + "\n\n" + "\n".join(sav_lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suites", default=",".join(PROTOCOL))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="run seeds first..first+seeds-1 (more seeds of a saved run: join them with --rejudge)")
    p.add_argument("--out", default="benchmarks/results/estimates.json")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--rejudge", metavar="JSON[,JSON]", help="judge the versions of saved runs again, together (no campaign is run)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"suites": []}
    if args.rejudge:
        saved = [json.loads(Path(f).read_text()) for f in args.rejudge.split(",")]  # (runs of some suites each)
        results = {k: v for s in saved for k, v in s.items() if k != "suites"}
        results["suites"] = [judge({"n_test": len(SUITES[r["suite"]].load().X) - r["pool"], **r, **PROTOCOL[r["suite"]]})
                             for r in join_seeds([r for s in saved for r in s["suites"]])]
        args.no_timing = True
    else:
        run_all(args, results)
    finish(args, results)
    return 0


def join_seeds(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of the same suite over other seeds joined into one: their versions side by side, the measured random
    curve averaged over all their seeds (weighted by each run's seed count)."""
    joined: dict[str, dict[str, Any]] = {}
    for r in runs:
        seeds = r.get("seed_list", list(range(r["seeds"])))
        if r["suite"] not in joined:
            joined[r["suite"]] = {**r, "seed_list": list(seeds)}
            continue
        j = joined[r["suite"]]
        if set(seeds) & set(j["seed_list"]):
            raise ValueError(f"{r['suite']}: seeds {sorted(set(seeds) & set(j['seed_list']))} are in two runs")
        a, b = dict(tuple(p) for p in j["random_curve"]), dict(tuple(p) for p in r["random_curve"])
        if a.keys() != b.keys():
            raise ValueError(f"{r['suite']}: the runs' random curves are measured at other label counts (another protocol?)")
        wa, wb = len(j["seed_list"]), len(seeds)
        j["random_curve"] = [[n, (wa * a[n] + wb * b[n]) / (wa + wb)] for n in sorted(a)]
        j["versions"] = j["versions"] + r["versions"]
        j["seed_list"] = j["seed_list"] + list(seeds)
        j["seeds"] = len(j["seed_list"])
        j["full_data_score"] = (wa * j["full_data_score"] + wb * r["full_data_score"]) / (wa + wb)
        j["wall_seconds"] = j["wall_seconds"] + r["wall_seconds"]
    return list(joined.values())


def run_all(args: argparse.Namespace, results: dict[str, Any]) -> None:
    with redis_url(None) as url:
        client = redis.Redis.from_url(url)
        for name in args.suites.split(","):
            res = run_suite(name, args.seeds, client, args.first_seed)
            results["suites"].append(res)
            print(f"{name}: coverage {res['validation_100']}; savings at budget abs errors {res['savings_at_budget_abs_error']} "
                  f"({res['wall_seconds']:.0f} s)", flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))  # (each suite as soon as it is done)
    if not args.no_timing:
        results["timing_seconds_per_version"] = timing()


def finish(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if "timing_seconds_per_version" in results:
        print("estimate seconds per version:", results["timing_seconds_per_version"])
    all_rows = [row for r in results["suites"] for s in r["versions"] for row in s]
    results["overall_100"] = validation_summary(all_rows, min_control=100)
    errs = [e for r in results["suites"] for e in r["savings_at_budget_abs_error"]]
    results["savings_at_budget"] = {"compared": len(errs), "within_0.15": sum(e <= 0.15 for e in errs),
                                    "max_abs_error": max(errs) if errs else None}
    print(markdown(results))
    print("overall (versions with >= 100 control labels):", results["overall_100"], "savings at budget:", results["savings_at_budget"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    raise SystemExit(main())
