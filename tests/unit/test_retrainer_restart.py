"""A restarted retrainer keeps the auto-accept calibration it had (in-process bus: no services)."""

from __future__ import annotations

import time

import numpy as np

from retrainer.service import Retrainer
from schemas import Label
from streams.memory import InMemoryBus
from streams.topics import Topics


def labels(rng: np.random.Generator, w: np.ndarray, n: int, start: int, control: bool) -> list[Label]:
    X = rng.normal(size=(n, len(w))).astype(np.float32)
    y = ((X @ w + 3.0 * rng.normal(size=n)) > 0).astype(int)  # noisy: a model fits its own training labels better
    return [Label(f"i{start + j}", f"l{start + j}", "ann", label=int(y[j]), features=X[j], control=control) for j in range(n)]


def publish(bus: InMemoryBus, topics: Topics, batch: list[Label]) -> None:
    for lab in batch:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())


def test_a_restart_does_not_rescore_control_labels_with_a_model_trained_on_them() -> None:
    rng, w = np.random.default_rng(0), np.random.default_rng(1).normal(size=40)
    bus, topics = InMemoryBus(), Topics("r")
    first = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, holdout_fraction=0.0)
    publish(bus, topics, labels(rng, w, 60, 0, control=False))
    first.ingest(0.0)
    first.retrain()  # v1
    publish(bus, topics, labels(rng, w, 400, 1000, control=True))  # scored by v1, then trained on by v2
    first.ingest(0.0)
    before = first.retrain()
    assert before is not None and before.metrics["n_control"] == 400
    assert len(bus.messages(topics.control)) == 400  # each first observation is logged once

    time.sleep(0.01)
    late = labels(rng, w, 30, 9000, control=True)  # made while the retrainer was down: v2 never saw them
    publish(bus, topics, late)
    restarted = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, holdout_fraction=0.0)
    restarted.rebuild(5.0)
    # The 400 from the log, as v1 saw them; the 30 late ones observed now, by v2.
    assert len(restarted.campaign.control_correct) == 430
    assert restarted.campaign.control_correct[:400] == first.campaign.control_correct
    assert len(bus.messages(topics.control)) == 430
