"""Learning curves of our strategies on the benchmark suites, next to random and the peers.

Runs :func:`activestream.simulation.engine.simulate` (the real scorer, queue, labeling service and
retrainer) for each suite and strategy with the suite's protocol, then joins the peers'
own implementations measured by ``benchmarks/run_peers.py`` (``results/peers.json``).

    python benchmarks/run_strategies.py --suites digits,breast_cancer,synthetic10,multilabel8 \\
        --strategies margin+kcenter,margin,random --explore 0.1 --out benchmarks/results/strategies.json

Writes the JSON, a markdown table (``.md`` beside it) and one PNG of curves per suite.
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

import numpy as np  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.scorer.strategies import DEFAULT_EXPLORE  # noqa: E402
from activestream.simulation.campaign import SimConfig  # noqa: E402
from activestream.simulation.curves import Curve, auc, labels_to_target  # noqa: E402
from activestream.simulation.engine import simulate  # noqa: E402
from activestream.simulation.recommend import paired_difference  # noqa: E402 - the product's maths (simulate recommends with it)
from benchmarks.suites import SUITES  # noqa: E402


def _truncate_entry(e: dict[str, Any], budget: int, full: float) -> dict[str, Any]:
    """One strategy's (or peer's) results up to ``budget`` labels: a campaign's curve is a prefix of a longer one."""
    curve = [p for p in e["curve"] if p[0] <= budget]
    if not curve or curve[-1][0] != budget:
        raise SystemExit(f"no point at {budget} labels to truncate to")
    c = _pairs(curve)
    per_seed = [[p for p in ps if p[0] <= budget] for ps in e["per_seed"]]
    out = {**e, "curve": curve, "per_seed": per_seed, "labels_to_95": labels_to_target(c, 0.95 * full),
           "labels_to_99": labels_to_target(c, 0.99 * full), "auc": auc(c), "final_score": curve[-1][1],
           "truncated_from": e["curve"][-1][0]}  # (wall times stay those of the longer run)
    if "per_seed_labels_to_99" in e:
        # Each seed's figure was measured against its own run's full-data score (run_peers);
        # the truncated curve is a prefix, so a seed that got there within the budget keeps it.
        out["per_seed_labels_to_99"] = [n if n is not None and n <= budget else None for n in e["per_seed_labels_to_99"]]
    return out


def truncated(res: dict[str, Any], budget: int) -> dict[str, Any]:
    """A suite's results as if run with the smaller ``budget`` (campaigns do not depend on it)."""
    full = res["full_data_score"]
    return {**res, "budget": budget, "strategies": {s: _truncate_entry(e, budget, full) for s, e in res["strategies"].items()}}


def _curve(entry: dict[str, Any]) -> Curve:
    return _pairs(entry["curve"])


def run_suite(name: str, strategies: list[str], seeds: int | None, workers: int, url: str, explore: float = 0.0,
              cold_start: str = "random", budget: int | None = None) -> dict[str, Any]:
    suite = SUITES[name]
    seeds = seeds or suite.seeds
    budget = budget or suite.budget
    ds = suite.load()
    cfg = SimConfig(
        budget=budget, batch=suite.batch, init=suite.init, seeds=tuple(range(seeds)), strategies=tuple(strategies),
        metric=suite.metric, test_size=suite.test_size, target_fraction=0.99, workers=workers, explore=explore, cold_start=cold_start,
    )
    t0 = time.perf_counter()
    rep = simulate(ds, cfg, url, progress=False)
    full = rep["full_data_score"]
    out: dict[str, Any] = {"full_data_score": full, "metric": suite.metric, "budget": budget, "wall_seconds": time.perf_counter() - t0, "strategies": {}}
    for s, e in rep["strategies"].items():
        c = _curve(e)
        key = s if cold_start == "random" or s == "random" else f"{s} ({cold_start} cold start)"
        out["strategies"][key] = {
            "curve": e["curve"],
            "per_seed": e["per_seed"],
            "seeds": e["seeds"],
            "labels_to_95": labels_to_target(c, 0.95 * full),
            "labels_to_99": labels_to_target(c, 0.99 * full),
            "auc": auc(c),
            "final_score": e["final_score"],
            "wall_seconds": e["wall_seconds"],
        }
    return out


def _pairs(curve: list[Any]) -> Curve:
    return [(int(x), float(y)) for x, y in curve]


def summarize(results: dict[str, Any], peers: dict[str, Any], default: str) -> dict[str, Any]:
    """Ratios to random (labels to 99%) and AUC vs the best peer.

    A target missed within the budget counts as the budget, which makes the ratio a lower
    bound; a suite where the default missed it is listed in ``default_missed`` (a ratio of 1.0
    there is no pass: the default needed more labels than random, how many more is unknown).
    """
    summary: dict[str, Any] = {"per_suite": {}, "default_missed": []}
    ratios = []
    for name, res in results.items():
        st = res["strategies"]
        if default not in st or "random" not in st:
            continue
        budget = res["budget"]
        d99 = st[default]["labels_to_99"]
        r99 = st["random"]["labels_to_99"]
        ratio = (d99 if d99 is not None else budget) / (r99 if r99 is not None else budget)
        ratios.append(ratio)
        if d99 is None:
            summary["default_missed"].append(name)
        best_peer = None
        if name in peers:
            real = {p: v for p, v in peers[name].items() if p != "control_random"}
            if real:
                best = max(real, key=lambda p: real[p]["auc"])
                best_peer = {"name": best, "auc": real[best]["auc"], "labels_to_99": real[best]["labels_to_99"],
                             "paired_auc_difference": paired_difference(st[default], real[best])}
        summary["per_suite"][name] = {
            "default_labels_to_99": d99, "random_labels_to_99": r99, "ratio_to_random": ratio,
            "default_auc": st[default]["auc"], "best_peer": best_peer,
            "auc_ge_best_peer": None if best_peer is None else st[default]["auc"] >= best_peer["auc"],
        }
    summary["mean_ratio_to_random"] = float(np.mean(ratios)) if ratios else None
    summary["max_ratio_to_random"] = float(np.max(ratios)) if ratios else None
    return summary


def markdown(results: dict[str, Any], peers: dict[str, Any], summary: dict[str, Any], default: str) -> str:
    lines = [f"# Strategy benchmark (default: `{default}`)", "",
             "Labels to reach 95% / 99% of the full-data score (mean curve over seeds; '—' = not within the budget), "
             "area under the learning curve, final score. Rows marked *peer* are the peers' own implementations "
             "(modAL, scikit-activeml) run by `benchmarks/run_peers.py` under the same split, seed labels, model, batch and budget.", ""]
    for name, res in results.items():
        n_seeds = {len(e["per_seed"]) for e in res["strategies"].values()}
        lines += [f"## {name} (budget {res['budget']}, {res['metric']}, full-data {res['full_data_score']:.4f}, "
                  f"seeds: {'/'.join(str(n) for n in sorted(n_seeds))})", "",
                  "| strategy | labels to 95% | labels to 99% | AUC | final | wall s |", "|---|---|---|---|---|---|"]
        rows = [(s, e, "") for s, e in res["strategies"].items()]
        rows += [(p, e, " *peer*") for p, e in peers.get(name, {}).items() if p != "control_random"]
        for s, e, tag in sorted(rows, key=lambda r: -r[1]["auc"]):
            fmt = lambda v: "—" if v is None else str(v)  # noqa: E731
            lines.append(f"| {s}{tag} | {fmt(e['labels_to_95'])} | {fmt(e['labels_to_99'])} | {e['auc']:.4f} | {e['final_score']:.4f} | {e['wall_seconds']:.1f} |")
        lines.append("")
    lines += ["## Summary", "", "| suite | default labels to 99% | random | ratio | default AUC | best peer (AUC) | AUC ≥ best peer "
              "| per-seed AUC difference (± s.e.) |", "|---|---|---|---|---|---|---|---|"]
    for name, s in summary["per_suite"].items():
        bp = s["best_peer"]
        diff = bp.get("paired_auc_difference") if bp else None
        ratio = f"{s['ratio_to_random']:.2f}" + (" or more (not reached)" if s["default_labels_to_99"] is None else "")
        lines.append(f"| {name} | {s['default_labels_to_99']} | {s['random_labels_to_99']} | {ratio} | {s['default_auc']:.4f} | "
                     + (f"{bp['name']} ({bp['auc']:.4f})" if bp else "—") + f" | {s['auc_ge_best_peer']} | "
                     + (f"{diff['mean']:+.4f} ± {diff['se']:.4f}" if diff else "—") + " |")
    lines += ["", "The last column pairs each seed's default curve with the best peer's (same split, same seed labels): "
              "a gap within about two standard errors is within the noise of this many seeds."]
    if summary["mean_ratio_to_random"] is not None:
        lines += ["", f"Mean ratio to random: **{summary['mean_ratio_to_random']:.2f}** (max {summary['max_ratio_to_random']:.2f})."]
    if summary.get("default_missed"):
        lines += ["", f"The default did not reach 99% within the budget on: {', '.join(summary['default_missed'])} "
                      "(its ratio there is a lower bound, and the mean and max are too)."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], peers: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, res in results.items():
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        for s, e in res["strategies"].items():
            ax.plot([x for x, _ in e["curve"]], [y for _, y in e["curve"]], label=s, linewidth=2 if s != "random" else 1.5)
        for p, e in peers.get(name, {}).items():
            if p != "control_random":
                ax.plot([x for x, _ in e["curve"]], [y for _, y in e["curve"]], label=f"{p} (peer)", linestyle="--", linewidth=1)
        ax.axhline(0.99 * res["full_data_score"], color="grey", linestyle=":", label="99% of full data")
        ax.set_title(f"{name}: learning curves")
        ax.set_xlabel("labels")
        ax.set_ylabel(res["metric"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out_dir / f"curves_{name}.png")
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="digits,breast_cancer,synthetic10,multilabel8")
    ap.add_argument("--strategies", default="margin+kmeans,margin,entropy,random")
    ap.add_argument("--default", default=None, help="strategy judged against the targets (default: the first)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: each suite's own count)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget", type=int, default=None,
                    help="override the suites' budget (e.g. where random reaches 99%% over more seeds: benchmarks/measure_budgets.py --seeds)")
    ap.add_argument("--explore", type=float, default=DEFAULT_EXPLORE, help="random-control share of each batch (not for random; default: the product's)")
    ap.add_argument("--cold-start", choices=("random", "representative"), default="random",
                    help="first labels of the non-random strategies (rows are tagged when not random)")
    ap.add_argument("--peers", default="benchmarks/results/peers.json")
    ap.add_argument("--out", default="benchmarks/results/strategies.json")
    ap.add_argument("--reuse", action="append", default=[], metavar="JSON",
                    help="an earlier output of this script: its suites are taken from it instead of run again "
                         "(repeatable; runs of the same suite under the same protocol add their strategies to one table)")
    args = ap.parse_args()
    strategies = args.strategies.split(",")
    default = args.default or strategies[0]
    peers_path = Path(args.peers)
    peers_doc = json.loads(peers_path.read_text()) if peers_path.exists() else {}
    peers = {k: v for k, v in peers_doc.items() if k not in ("full_data_score", "meta")}
    if args.budget is not None:  # peers run with a larger budget: compare over the same labels
        peers = {d: ps for d, ps in peers.items() if d in args.suites.split(",")}  # (--budget is one number: the suites run now)
        short = sorted({d for d, ps in peers.items() for e in ps.values() if e["curve"][-1][0] < args.budget})
        if short:
            raise SystemExit(f"{peers_path}: the peers of {', '.join(short)} ran to fewer than {args.budget} labels; run them to it")
        peers = {d: {p: _truncate_entry(e, args.budget, peers_doc["full_data_score"][d]) if e["curve"][-1][0] > args.budget else e
                     for p, e in ps.items()} for d, ps in peers.items()}
    reused: dict[str, Any] = {}
    for path in args.reuse:
        earlier = json.loads(Path(path).read_text())
        if earlier.get("explore") != args.explore:
            raise SystemExit(f"{path} was run with explore {earlier.get('explore')}, not {args.explore}")
        for name, res in earlier["results"].items():
            if name not in args.suites.split(","):
                continue
            if args.budget is not None and res["budget"] > args.budget:
                res = truncated(res, args.budget)  # a campaign's curve up to a smaller budget is a prefix of it
            elif args.budget is not None and res["budget"] < args.budget:
                raise SystemExit(f"{path}: {name} ran to {res['budget']} labels, fewer than --budget {args.budget}")
            if name not in reused:
                reused[name] = res
            elif reused[name]["budget"] != res["budget"] or not math.isclose(reused[name]["full_data_score"], res["full_data_score"], rel_tol=1e-9):
                # (the full-data score may differ in its last bit between processes: BLAS summation order)
                raise SystemExit(f"{path}: {name} was run under another protocol (budget, seeds or split differ)")
            else:  # the same suite and protocol, other strategies: one table
                reused[name]["strategies"].update(res["strategies"])
    results: dict[str, Any] = {}
    with redis_url() as url:
        for name in args.suites.split(","):
            if name in reused:
                results[name] = reused[name]
                continue
            results[name] = run_suite(name, strategies, args.seeds, args.workers, url, args.explore, args.cold_start, args.budget)
            r = results[name]
            print(f"{name}: full {r['full_data_score']:.4f} ({r['wall_seconds']:.0f}s)")
            for s, e in r["strategies"].items():
                print(f"  {s:>24}: l95={e['labels_to_95']} l99={e['labels_to_99']} auc={e['auc']:.4f} final={e['final_score']:.4f}")
    summary = summarize(results, peers, default)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"default": default, "explore": args.explore, "summary": summary, "results": results}, indent=1))
    out.with_suffix(".md").write_text(markdown(results, peers, summary, default))
    plot(results, peers, out.parent)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
