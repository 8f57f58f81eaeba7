"""Labels the retrainer refuses (in-process bus: no services)."""

from __future__ import annotations

import numpy as np

from retrainer.service import Retrainer
from schemas import Label, decode_dead_letter
from streams.memory import InMemoryBus
from streams.topics import Topics


def test_a_label_of_the_other_type_takes_the_campaigns_or_is_a_dead_letter() -> None:
    bus, topics = InMemoryBus(), Topics("t")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10**9)
    x = np.zeros(3, dtype=np.float32)
    labels = (Label("a", "L1", "ann", label=1, features=x), Label("b", "L2", "bob", label="1", features=x),
              Label("c", "L3", "ann", label=0, features=x), Label("d", "L4", "bob", label="cat", features=x))
    for lab in labels:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r.ingest(0.0)
    # "1" (e.g. from a UI) is the class 1 a terminal labeler typed, not a third class; "cat" is no integer
    assert {k: v.label for k, v in r.training.items.items()} == {"a": 1, "b": 1, "c": 0}
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert (dl.item_id, dl.field) == ("d", "label") and "labels are integers" in dl.reason


def test_a_label_set_mixing_types_is_a_dead_letter() -> None:
    bus, topics = InMemoryBus(), Topics("m")
    r = Retrainer(bus, topics, task="multilabel", retrain_every=10**9)
    lab = Label("a", "L1", "ann", labels=(1, "1"), features=np.zeros(3, dtype=np.float32))
    bus.publish(topics.labels, lab.encode(), key=b"a")
    r.ingest(0.0)
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert len(r.training) == 0 and dl.field == "labels" and "mixes integers and strings" in dl.reason
