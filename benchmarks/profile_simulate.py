"""Where ``simulate``'s wall time goes: cProfile of one campaign of a suite (issue 23, Deliver 5).

    python benchmarks/profile_simulate.py --suite digits --strategy margin+kcenter --budget 300 \\
        --out benchmarks/results/profiles/simulate_digits.json

Runs :func:`activestream.simulation.campaign.run_campaign` (the real scorer, Redis queue,
labeling service and retrainer) in this process under cProfile and writes the functions
with the most cumulative and own time (JSON, and the raw pstats text beside it).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.simulation.campaign import SimConfig, run_campaign  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402


def _top(stats: pstats.Stats, key: str, n: int) -> list[dict[str, object]]:
    rows = []
    for (file, line, func), (_cc, calls, tt, ct, _callers) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][3 if key == "cumulative" else 2], reverse=True  # type: ignore[attr-defined]
    )[:n]:
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": calls, "own_s": round(tt, 3), "cumulative_s": round(ct, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="digits")
    ap.add_argument("--strategy", default="margin+kcenter")
    ap.add_argument("--budget", type=int, default=None, help="default: the suite's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/profiles/simulate.json"))
    args = ap.parse_args(argv)
    suite = SUITES[args.suite]
    ds = suite.load()
    cfg = SimConfig(budget=args.budget or suite.budget, batch=suite.batch, init=suite.init, seeds=(args.seed,), strategies=(args.strategy,),
                    metric=suite.metric, test_size=suite.test_size, workers=1)
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        run_campaign(ds, args.strategy, args.seed, cfg, client)
        prof.disable()
        wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    out = {"suite": args.suite, "strategy": args.strategy, "budget": cfg.budget, "seed": args.seed, "wall_seconds": round(wall, 2),
           "by_cumulative": _top(stats, "cumulative", args.top), "by_own_time": _top(stats, "own", args.top)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
    args.out.with_suffix(".txt").write_text(text.getvalue())
    print(f"{args.suite} {args.strategy} budget {cfg.budget}: {wall:.1f} s")
    for r in out["by_own_time"][:15]:
        print(f"  own {r['own_s']:8.2f} s  cum {r['cumulative_s']:8.2f} s  {r['calls']:>8}  {r['function']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
