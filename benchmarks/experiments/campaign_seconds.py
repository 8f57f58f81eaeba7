"""Seconds per campaign of the default strategy on each suite, with the code of the checkout it runs in (issue 23, Deliver 5).

    python benchmarks/experiments/campaign_seconds.py digits,breast_cancer 2   # suites, seeds: prints JSON

One warm-up campaign per suite, then seeds 0..S-1, one after the other in this process; prints
``{suite: {"seconds": [...], "final": last campaign's final test score}}``. Run from the root of
the checkout whose code it should time (see README.md here for a before/after comparison).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.getcwd())  # `benchmarks` of the checkout it is run from

import redis  # noqa: E402

from activestream.devstack.redis_server import redis_url  # noqa: E402
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY  # noqa: E402
from activestream.simulation.campaign import SimConfig, run_campaign  # noqa: E402
from benchmarks.suites import SUITES  # noqa: E402


def main() -> None:
    names, seeds = sys.argv[1].split(","), int(sys.argv[2])
    out = {}
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        for name in names:
            suite = SUITES[name]
            ds = suite.load()
            cfg = SimConfig(budget=suite.budget, batch=suite.batch, init=suite.init, seeds=(0,), strategies=(DEFAULT_STRATEGY,),
                            metric=suite.metric, test_size=suite.test_size, target_fraction=0.99, workers=1, explore=DEFAULT_EXPLORE)
            run_campaign(ds, DEFAULT_STRATEGY, 99, cfg, client)  # (warm-up: imports, caches)
            seconds = []
            for seed in range(seeds):
                t = time.perf_counter()
                result = run_campaign(ds, DEFAULT_STRATEGY, seed, cfg, client)
                seconds.append(time.perf_counter() - t)
            out[name] = {"seconds": seconds, "final": result.curve[-1][1]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
