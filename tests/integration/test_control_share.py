"""The adaptive control share on the real queue (issue 23): leases follow the live version's estimates in the queue's meta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from activestream.labeling.control_picks import ControlPicker
from activestream.labeling.control_share import ControlShare
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.keys import META_CAMPAIGN, META_RANKED_VERSION
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


def publish(q: RankedQueue, version: int, metrics: dict[str, float]) -> None:
    """What the scorer writes when a version goes live (scorer.versions.campaign_record)."""
    q.set_meta(**{META_CAMPAIGN: json.dumps({"version": version, "n_labels": 10 * version, "created_at": 0.0, "metrics": metrics})})


NARROW = {"est_accuracy": 0.92, "est_accuracy_low": 0.88, "est_accuracy_high": 0.95, "est_sample_size": 150.0}
WIDE = {"est_accuracy": 0.8, "est_accuracy_low": 0.7, "est_accuracy_high": 0.88, "est_sample_size": 45.0}


def test_the_control_count_follows_the_newest_estimate_and_keeps_its_credit(redis_client: redis.Redis, namespace: str) -> None:
    q = RankedQueue(redis_client, QueueKeys(namespace))
    picker = ControlPicker(q, ControlShare(high=0.2, low=0.05, width=0.1), np.random.default_rng(0))
    assert [picker.count(10) for _ in range(3)] == [2, 2, 2]  # no version yet: the high share
    publish(q, 1, {"est_hours_spent": 0.1, "est_control_labels_needed": 20.0})
    assert picker.count(10) == 2  # too few control labels: still high
    publish(q, 2, NARROW)
    assert [picker.count(10) for _ in range(4)] == [0, 1, 0, 1]  # 5%: the credit carries over between leases
    publish(q, 3, {"est_hours_spent": 0.2})  # a version that carries no estimate of its own: the newest seen steers
    assert picker.count(20) == 1
    publish(q, 4, WIDE)  # the interval widened again (0.18): back to the high share
    assert picker.count(10) == 2
    publish(q, 5, NARROW)
    assert picker.count(20) == 1
    publish(q, 1, {"est_hours_spent": 0.0})  # a new campaign in the namespace (its first version): the old estimate is gone
    assert picker.count(10) == 2


def test_a_fixed_share_ignores_the_estimates(redis_client: redis.Redis, namespace: str) -> None:
    q = RankedQueue(redis_client, QueueKeys(namespace))
    picker = ControlPicker(q, 0.1, np.random.default_rng(0))
    publish(q, 2, NARROW)
    assert [picker.count(10) for _ in range(3)] == [1, 1, 1]


def test_leases_hand_out_the_adaptive_share_as_control_items(redis_client: redis.Redis, namespace: str) -> None:
    q = RankedQueue(redis_client, QueueKeys(namespace))
    n = 200
    q.add([f"i{j}" for j in range(n)], np.linspace(1, 0, n), np.zeros((n, 2), dtype=np.float32))
    q.set_meta(**{META_RANKED_VERSION: 1, "model_version": 1})  # a model ranks the queue: leases are not cold
    service = LabelService(q, InMemoryBus(), Topics("t"), explore=ControlShare(high=0.2, low=0.05, width=0.1), seed=0)
    assert sum(item.control for item in service.lease(20, "ann")) == 4
    publish(q, 2, NARROW)
    assert sum(item.control for item in service.lease(20, "bob")) == 1
