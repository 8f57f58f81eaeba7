"""Control labels imported before any model (``import-labels --random-sample``) calibrate once scored out of fold (in-process bus)."""

from __future__ import annotations

import numpy as np

from activestream.retrainer.control_log import ControlObservation
from activestream.retrainer.service import Retrainer
from activestream.schemas import Label
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics


def test_random_sample_labels_before_any_model_are_scored_out_of_fold_at_the_first_retrain() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)  # separable: out of fold, almost every label is predicted right
    bus, topics = InMemoryBus(), Topics("oof")
    for j in range(400):  # as `import-labels --random-sample` writes them
        lab = Label(f"i{j}", f"b{j}", "import", label=int(y[j]), features=X[j], source="baseline", control=True)
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    first = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, auto_accept_precision=0.95)
    first.ingest(0.0)
    mv = first.retrain()
    assert mv is not None and mv.version == 1 and mv.metrics["n_control"] == 400  # (before: 0, no model had scored them)
    logged = [ControlObservation.decode(m.value) for m in bus.messages(topics.control)]
    assert len(logged) == 400 and {o.version for o in logged} == {0} and sum(o.correct for o in logged) >= 380
    assert "auto_accept_threshold" in mv.metrics or any(k.startswith("auto_accept_threshold_class_") for k in mv.metrics)
    # Once: the next retrain does not score them again, and a restart reads the observations back.
    again = first.retrain()
    assert again is None or again.metrics["n_control"] == 400
    assert len(bus.messages(topics.control)) == 400
    restarted = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, auto_accept_precision=0.95)
    restarted.rebuild(0.0)
    assert len(restarted.campaign.control_correct) == 400
