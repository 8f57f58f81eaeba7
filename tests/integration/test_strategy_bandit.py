"""The strategy bandit (albl) on the real queue, labeling service, scorer and retrainer (simulate's code path)."""

from __future__ import annotations

import numpy as np
import redis

from activestream.labeling.bandit import read_state
from activestream.labeling.factory import make_label_service
from activestream.labeling.routes import status
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.scorer.strategies import BANDIT, BANDIT_ARMS, Strategy
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics


def test_albl_campaign_chooses_an_arm_per_batch_and_learns_from_control_labels(redis_url: str) -> None:
    from sklearn.datasets import make_classification

    from activestream.simulation.campaign import SimConfig, run_campaign
    from activestream.simulation.datasets import from_arrays

    X, y = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    ds = from_arrays("small", X, y)
    client = redis.Redis.from_url(redis_url)
    cfg = SimConfig(budget=120, batch=10, init=20, seeds=(0,), strategies=(BANDIT,), workers=1, explore=0.2)
    res = run_campaign(ds, BANDIT, 0, cfg, client)
    assert res.curve[-1][0] == 120
    st = res.bandit
    picks = [st[f"strategy_picks_{a}"] for a in BANDIT_ARMS]
    assert sum(picks) == 10  # one arm per ranked lease: (120 - 20 seed labels) / 10
    weights = [st[f"strategy_weight_{a}"] for a in BANDIT_ARMS]
    assert abs(sum(weights) - 1.0) < 1e-9 and min(weights) >= 0.2 / len(BANDIT_ARMS) - 1e-12
    # Rewards came in (control labels scored by two successive versions): the weights moved off uniform.
    assert any(st[f"strategy_reward_{a}"] != 0.0 for a in BANDIT_ARMS)
    assert max(weights) - min(weights) > 1e-6


def test_random_arm_leases_the_whole_batch_as_control_picks(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    rng = np.random.default_rng(0)
    queue.add([f"i{j}" for j in range(200)], np.linspace(1, 0, 200), rng.normal(size=(200, 4)).astype(np.float32))
    queue.set_meta(ranked_version=1)  # ranked: the lease is not a cold one
    svc = make_label_service(Strategy(BANDIT, 0), queue, InMemoryBus(), Topics(namespace), explore=0.0)
    try:
        bandit = svc.select_batch
        bandit.bandit.log_w[:] = [-50.0, -50.0, -50.0, 0.0]  # the random arm all but certain (gamma keeps 5% each)
        bandit.bandit.gamma = 0.0
        leased = svc.lease(10, "ann")
        assert len(leased) == 10 and all(x.control for x in leased)  # uniform draws: every one is a control label
        st = read_state(queue)
        assert st["strategy_picks_random"] == 1.0
        assert status(svc)["strategy_bandit"] == st  # the labeler API's /status shows the arms
    finally:
        svc.close()
