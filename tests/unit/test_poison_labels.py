"""Poison never loops in the retrainer: a label record that would stop it is a dead letter, and training goes on.

The issue-18 triggers on the labels topic (before the fix: RecursionError or ValueError out of
decode_label, and a lone-surrogate label id that stopped every retrain at the training set's
digest), and a label whose folding raises after it decoded. In-process bus: no services.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from activestream.retrainer.service import Retrainer
from activestream.retrainer.training_set import TrainingSet
from activestream.schemas import Label, decode_dead_letter
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

GOOD = {"item_id": "p", "label_id": "LP", "labeler_id": "ann", "label": 1, "features": [1.0, 2.0, 3.0]}
TRIGGERS = {
    "deep": b"[" * 100_000,
    "huge-int": json.dumps({**GOOD, "seconds": 1}).encode().replace(b'"seconds": 1', b'"seconds": ' + b"9" * 5000),
    "lone-surrogate": json.dumps({**GOOD, "label_id": "ps-\ud800"}).encode(),
    "huge-class": json.dumps({**GOOD, "label": 2**64}).encode(),  # (ONNX's int64 class labels could not hold it)
}


def labels(n: int) -> list[Label]:
    rng = np.random.default_rng(0)
    return [Label(f"i{i}", f"L{i}", "ann", label=i % 2, features=rng.normal(size=3).astype(np.float32)) for i in range(n)]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_a_poison_label_is_a_dead_letter_and_the_retrainer_trains_on_the_rest(trigger: str) -> None:
    bus, topics = InMemoryBus(), Topics("t")
    good = labels(20)
    for lab in good[:10]:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    bus.publish(topics.labels, TRIGGERS[trigger], key=b"poison")
    for lab in good[10:]:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, min_holdout=10**9)
    assert r.run(burst=True, timeout=0.0) == 21  # (before: the exception stopped it; or, for the surrogate, the retrain)
    assert set(r.training.items) == {lab.item_id for lab in good} and r.version == 1
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert dl.item_id in ("poison", "p") and dl.reason


def test_a_label_whose_folding_raises_is_a_dead_letter_with_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    real = TrainingSet.add

    def add(self: TrainingSet, label: Label) -> str:
        if label.item_id == "i3":
            raise KeyError("no room for i3")
        return real(self, label)

    monkeypatch.setattr(TrainingSet, "add", add)
    bus, topics = InMemoryBus(), Topics("f")
    for lab in labels(8):
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10**9)
    r.ingest(0.0)
    assert sorted(r.training.items) == [f"i{i}" for i in range(8) if i != 3]
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert dl.item_id == "i3" and dl.reason.startswith("training on it failed: KeyError")
