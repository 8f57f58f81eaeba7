"""Labels the retrainer refuses (in-process bus: no services)."""

from __future__ import annotations

import numpy as np

from retrainer.service import Retrainer
from schemas import Label, decode_dead_letter
from streams.memory import InMemoryBus
from streams.topics import Topics


def test_a_label_of_another_type_than_the_campaigns_is_a_dead_letter() -> None:
    bus, topics = InMemoryBus(), Topics("t")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10**9)
    x = np.zeros(3, dtype=np.float32)
    for lab in (Label("a", "L1", "ann", label=1, features=x), Label("b", "L2", "bob", label="1", features=x), Label("c", "L3", "ann", label=0, features=x)):
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r.ingest(0.0)
    assert len(r.training) == 2  # "1" would have become a third class beside 1
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert (dl.item_id, dl.field) == ("b", "label") and "labels are integers" in dl.reason


def test_a_label_set_mixing_types_is_a_dead_letter() -> None:
    bus, topics = InMemoryBus(), Topics("m")
    r = Retrainer(bus, topics, task="multilabel", retrain_every=10**9)
    lab = Label("a", "L1", "ann", labels=(1, "1"), features=np.zeros(3, dtype=np.float32))
    bus.publish(topics.labels, lab.encode(), key=b"a")
    r.ingest(0.0)
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert len(r.training) == 0 and dl.field == "labels" and "of one type" in dl.reason
