"""A restarted retrainer keeps the auto-accept calibration it had (in-process bus: no services)."""

from __future__ import annotations

import math
import time

import numpy as np
from prometheus_client import CollectorRegistry

from activestream.retrainer.service import Retrainer
from activestream.schemas import Item, Label, decode_model_version
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics


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
    registry = CollectorRegistry()
    first = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, holdout_fraction=0.0, registry=registry, namespace="r", budget=1000,
                    estimates="inline")  # (inline: each version carries its own; services run them in the background)
    publish(bus, topics, labels(rng, w, 60, 0, control=False))
    first.ingest(0.0)
    v1 = first.retrain()
    # No control label yet: no estimate, and how many more it needs.
    assert v1 is not None and v1.metrics["est_control_labels_needed"] == 40 and "est_accuracy" not in v1.metrics
    unknown = registry.get_sample_value("activestream_campaign_estimate", {"namespace": "r", "figure": "accuracy", "bound": "low"})
    assert unknown is None or math.isnan(unknown)  # (no series, or NaN: not known)
    publish(bus, topics, labels(rng, w, 400, 1000, control=True))  # scored by v1, then trained on by v2
    first.ingest(0.0)
    before = first.retrain()
    assert before is not None and before.metrics["n_control"] == 400
    # The live estimates (issue 20's names), each inside its interval, and the gauges that show them.
    m = before.metrics
    for fig in ("accuracy", "random_labels", "labels_saved", "savings_share", "hours_saved", "accuracy_at_budget"):
        assert m[f"est_{fig}_low"] <= m[f"est_{fig}"] <= m[f"est_{fig}_high"], fig
        got = registry.get_sample_value("activestream_campaign_estimate", {"namespace": "r", "figure": fig, "bound": "estimate"})
        assert got == m[f"est_{fig}"], fig
    assert 0.5 < m["est_accuracy"] < 1.0 and m["est_budget"] == 1000 and "est_control_labels_needed" not in m
    assert m["est_labels_saved"] == m["est_random_labels"] - 460
    assert {"est_curve_a", "est_curve_b", "est_curve_c", "est_hours_spent"} <= m.keys()
    # Noisy labels: no threshold keeps 0.99 precision's lower bound; the version says how many more control labels it needs.
    assert "auto_accept_threshold" not in before.metrics and before.metrics["auto_accept_labels_needed"] >= 1
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


class StopCampaign:
    """Labels of a 40-item stream, and a retrainer whose stop rule fires at its second version (20 labels)."""

    def __init__(self, prefix: str) -> None:
        from activestream.retrainer.stopping import StopRules

        self.bus, self.topics = InMemoryBus(), Topics(prefix)
        rng = np.random.default_rng(3)
        self.X = rng.normal(size=(40, 3)).astype(np.float32)
        self.y = (self.X[:, 0] > 0).astype(int)
        for i in range(20):
            self.bus.publish(self.topics.items, Item(str(i), self.X[i]).encode())
        self.rules = StopRules(kappa=-1.0, window=1, min_gain=None)  # fires at the second version, whatever the predictions
        self.first = self.retrainer()
        for lo in (0, 10):
            self.label(lo, lo + 10)
            self.first.run(burst=True, timeout=0.0)
        assert self.first.version == 2 and self.first.campaign.status.fired["stable_predictions"]["n_labels"] == 20

    def retrainer(self, **kw: object) -> Retrainer:
        return Retrainer(self.bus, self.topics, task="multiclass", retrain_every=10, stop_rules=self.rules, **kw)  # type: ignore[arg-type]

    def label(self, lo: int, hi: int) -> None:
        for i in range(lo, hi):
            self.bus.publish(self.topics.labels, Label(str(i), f"L{i}", "ann", label=int(self.y[i]), features=self.X[i]).encode())


def test_a_stop_rule_that_fired_still_holds_after_a_restart() -> None:
    c = StopCampaign("stop")
    again = c.retrainer()
    again.rebuild(0.0)
    c.label(20, 30)
    again.run(burst=True, timeout=0.0)  # its first version: no previous one in its own history to compare with
    assert again.version == 3 and again.campaign.status.fired["stable_predictions"] == {"version": 2.0, "n_labels": 20.0}
    newest = decode_model_version(c.bus.messages(c.topics.models)[-1].value)
    assert newest.metrics["stop"] == 1.0 and newest.metrics["stop_stable_predictions_n_labels"] == 20.0


def test_a_user_version_published_over_the_campaign_keeps_its_fired_stop_rules_across_a_resume() -> None:
    # (a docs audit: after publish-model and a restart with --resume, stable_predictions fired again at a later version
    # and was logged twice; the retrainer read the campaign's record back from the user's version, which has none)
    import dataclasses

    from activestream.streams.topics import MODEL_KEY

    c = StopCampaign("stopuser")
    own = decode_model_version(c.bus.messages(c.topics.models)[-1].value)
    user = dataclasses.replace(own, version=3, source="user", metrics={"holdout_accuracy": 0.9})
    c.bus.publish(c.topics.models, user.encode(), key=MODEL_KEY)
    again = c.retrainer(resume=True)
    assert again.version == 3 and again.campaign.status.fired["stable_predictions"] == {"version": 2.0, "n_labels": 20.0}


def test_a_corrected_control_answer_counts_once_as_the_newest_and_after_a_restart_too() -> None:
    # (a concurrency audit: a labeler's correction of a control pick was a second control observation, charging the
    # model a miss for the labeler's own mistake: n_control 176 for 170 control items)
    import dataclasses

    rng, w = np.random.default_rng(0), np.random.default_rng(1).normal(size=40)
    bus, topics = InMemoryBus(), Topics("c")
    first = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, holdout_fraction=0.0)
    publish(bus, topics, labels(rng, w, 60, 0, control=False))
    first.ingest(0.0)
    assert first.retrain() is not None
    picks = labels(rng, w, 10, 500, control=True)
    publish(bus, topics, picks)
    first.ingest(0.0)
    assert len(first.campaign.control_correct) == 10
    # Three answers corrected (a new label id, the other class; the control flag comes with a correction)
    fixed = [dataclasses.replace(lab, label_id=f"fix-{lab.label_id}", label=1 - int(lab.label)) for lab in picks[:3]]  # type: ignore[arg-type]
    publish(bus, topics, fixed)
    first.ingest(0.0)
    c = first.campaign
    assert len(c.control_correct) == 10 and len(bus.messages(topics.control)) == 13
    for j, lab in enumerate(fixed):  # judged against what the model predicted before training on the item
        assert c.control_correct[j] == (c.control_pred[j] == lab.label)
    restarted = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, holdout_fraction=0.0)
    restarted.rebuild(5.0)
    assert restarted.campaign.control_correct == c.control_correct and restarted.campaign.control_pred == c.control_pred
