"""Labels the retrainer refuses (in-process bus: no services)."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.retrainer.service import Retrainer
from activestream.schemas import Item, Label, decode_dead_letter, decode_model_version
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics


def test_a_label_of_the_other_type_takes_the_campaigns_or_is_a_dead_letter() -> None:
    from prometheus_client import CollectorRegistry

    bus, topics, registry = InMemoryBus(), Topics("t"), CollectorRegistry()
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10**9, registry=registry, namespace="camp")
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
    # (every metric carries the campaign, its reason-labelled ones too)
    assert registry.get_sample_value("activestream_labels_received_total", {"namespace": "camp"}) == 3
    assert registry.get_sample_value("activestream_retrainer_dead_letters_total", {"namespace": "camp", "reason": dl.reason_code}) == 1


def test_a_label_set_mixing_types_is_a_dead_letter() -> None:
    bus, topics = InMemoryBus(), Topics("m")
    r = Retrainer(bus, topics, task="multilabel", retrain_every=10**9)
    lab = Label("a", "L1", "ann", labels=(1, "1"), features=np.zeros(3, dtype=np.float32))
    bus.publish(topics.labels, lab.encode(), key=b"a")
    r.ingest(0.0)
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert len(r.training) == 0 and dl.field == "labels" and "mixes integers and strings" in dl.reason


def test_labels_with_unusable_features_are_dead_letters_and_training_goes_on() -> None:
    bus, topics = InMemoryBus(), Topics("f")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=4)
    rng = np.random.default_rng(0)
    good = [Label(str(i), f"L{i}", "ann", label=i % 2, features=rng.normal(size=3).astype(np.float32)) for i in range(4)]
    short = b'{"item_id":"x","label_id":"LX","labeler_id":"ann","label":1,"features_b64":"AAAA"}'  # 3 bytes: no float32 vector
    empty = b'{"item_id":"e","label_id":"LE","labeler_id":"ann","label":1,"features":[]}'
    longer = Label("w", "LW", "ann", label=1, features=np.zeros(5, dtype=np.float32))  # 5 values where the campaign has 3
    for payload in (good[0].encode(), short, empty, longer.encode(), *(g.encode() for g in good[1:])):
        bus.publish(topics.labels, payload)
    r.step(0.0)
    dead = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert [(d.item_id, d.field) for d in dead] == [("x", "features_b64"), ("e", "features"), ("w", "features")]
    assert "expected 3 values, got 5" in dead[2].reason
    assert r.version == 1 and len(r.training) == 4
    # A restart replays the same log: it must not crash either (and dead-letters nothing twice).
    again = Retrainer(bus, topics, task="multiclass", retrain_every=4)
    again.rebuild(0.0)
    again.run(burst=True, timeout=0.0)
    assert len(again.training) == 4 and len(bus.messages(topics.dead_letters)) == 3


def test_an_item_of_another_length_stays_out_of_the_stop_set_and_versions_stay_consecutive() -> None:
    bus, topics = InMemoryBus(), Topics("s")
    rng = np.random.default_rng(1)
    for i in range(5):
        bus.publish(topics.items, Item(str(i), rng.normal(size=3).astype(np.float32)).encode())
    bus.publish(topics.items, Item("bad", np.zeros(4, dtype=np.float32)).encode())  # the scorer dead-letters it
    r = Retrainer(bus, topics, task="multiclass", retrain_every=4)
    for batch in range(2):
        for j in range(4):
            lab = Label(f"{batch}-{j}", f"L{batch}-{j}", "ann", label=j % 2, features=rng.normal(size=3).astype(np.float32))
            bus.publish(topics.labels, lab.encode())
        r.step(0.0)
    assert len(r.campaign.stop_set) == 5
    assert [decode_model_version(m.value).version for m in bus.messages(topics.models)] == [1, 2] and r.version == 2


def test_the_service_retrainer_trains_the_committee_a_committee_strategy_scores_with() -> None:
    from prometheus_client import CollectorRegistry

    from activestream.config import Settings
    from activestream.scorer.strategies import ENSEMBLE_MEMBERS
    from activestream.wiring import make_retrainer

    bus, topics = InMemoryBus(), Topics("c")
    for strategy, members in (("bald", ENSEMBLE_MEMBERS), ("vote_entropy", ENSEMBLE_MEMBERS), ("margin", 1)):
        rt = make_retrainer(bus, topics, Settings.from_env({}, strategy=strategy, n_features=3), CollectorRegistry())
        assert (rt._n_members, rt.n_features) == (members, 3), strategy


def test_bad_labels_sent_while_no_retrainer_ran_are_dead_lettered_once() -> None:
    bus, topics = InMemoryBus(), Topics("d")
    x = np.zeros(3, dtype=np.float32)
    bus.publish(topics.labels, Label("a", "L1", "ann", label=1, features=x).encode())
    bus.publish(topics.labels, b'{"item_id":"b","label_id":"L2","labeler_id":"ann","label":1}')  # no features
    bus.publish(topics.labels, Label("c", "L3", "ann", label="cat", features=x).encode())  # not an integer
    first = Retrainer(bus, topics, task="multiclass", retrain_every=10**9)
    first.rebuild(0.0)  # the retrainer starts after they were sent: it never read them live
    dead = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert sorted((d.item_id, d.field) for d in dead) == [("b", "features_b64"), ("c", "label")]
    Retrainer(bus, topics, task="multiclass", retrain_every=10**9).rebuild(0.0)  # a restart sends none of them again
    assert len(bus.messages(topics.dead_letters)) == 2


def test_integer_labels_in_any_script_are_integers_and_superscripts_are_not() -> None:
    from activestream.schemas import coerce_label_value, int_label

    assert [int_label(t) for t in ("3", " -2 ", "\uff13", "\u0663")] == [3, -2, 3, 3]  # ASCII, fullwidth, Arabic-Indic
    assert [int_label(t) for t in ("\u00b2", "cat", "", "-", "--5", "1" * 4001)] == [None] * 6
    assert coerce_label_value("\uff13", "integers") == 3 and coerce_label_value("\u00b2", "integers") is None


def test_the_budget_setting_is_a_stop_rule_of_the_services_as_of_simulate() -> None:
    bus, topics = InMemoryBus(), Topics("b")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=4, holdout_fraction=0.0, budget=8)
    rng = np.random.default_rng(0)
    for i in range(12):
        lab = Label(str(i), f"L{i}", "ann", label=i % 2, features=rng.normal(size=3).astype(np.float32))
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
        r.step(0.0)
    fired = [decode_model_version(m.value).metrics.get("stop_budget_n_labels") for m in bus.messages(topics.models)]
    assert fired[0] is None and fired[-1] == 8  # (not before the budget; from the version at 8 labels on)


def test_an_imported_baseline_does_not_spend_the_budget() -> None:
    # (100 baseline labels fired "the label budget is spent" at a budget of 50 with no labeler's answer yet)
    bus, topics = InMemoryBus(), Topics("bb")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0, budget=50)
    rng = np.random.default_rng(1)
    for i in range(100):
        lab = Label(f"b{i}", f"B{i}", "import", label=i % 2, features=rng.normal(size=3).astype(np.float32), source="baseline")
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r.step(0.0)
    assert r.version >= 1 and "stop_budget_n_labels" not in decode_model_version(bus.messages(topics.models)[-1].value).metrics
    for i in range(50):
        lab = Label(f"h{i}", f"H{i}", "ann", label=i % 2, features=rng.normal(size=3).astype(np.float32))
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
        r.step(0.0)
    fired = decode_model_version(bus.messages(topics.models)[-1].value).metrics
    assert fired["stop_budget_n_labels"] == 150  # (fired at the version with 50 labelers' answers: 150 labels in its training set)


def test_hours_spent_count_every_answer_a_corrected_one_and_each_labelers() -> None:
    # (a docs audit: ann's 4 s answer, corrected without seconds, left 0 s spent: only each item's answer in use counted,
    # while export and report sum every answer's time)
    bus, topics = InMemoryBus(), Topics("hours")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=1, holdout_fraction=0.0)
    rng = np.random.default_rng(2)
    answers = [Label("a", "L1", "ann", label=0, seconds=4.0), Label("a", "L2", "ann", label=1, seconds=0.0),  # her correction
               Label("b", "L3", "ann", label=0, seconds=6.0), Label("b", "L4", "bob", label=0, seconds=8.0),  # two labelers
               Label("b", "L4", "bob", label=0, seconds=8.0)]  # (a redelivery: once)
    for lab in answers:
        lab = Label(lab.item_id, lab.label_id, lab.labeler_id, label=lab.label, seconds=lab.seconds, features=rng.normal(size=3).astype(np.float32))
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    r.step(0.0)
    metrics = decode_model_version(bus.messages(topics.models)[-1].value).metrics
    assert metrics["est_hours_spent"] * 3600 == pytest.approx(18.0)


def test_a_long_running_retrainer_does_not_keep_every_version_it_published() -> None:
    # Each ModelVersion holds its whole ONNX graph; a retrainer publishes one every few labels for as long as the campaign
    # runs, so keeping them all grows its memory with the campaign's age (a soak: ~800 versions an hour).
    bus, topics = InMemoryBus(), Topics("v")
    r = Retrainer(bus, topics, task="multiclass", retrain_every=4, tolerance=1.0, estimates="off")
    rng = np.random.default_rng(2)
    for batch in range(30):
        for j in range(4):
            x = rng.normal(size=3).astype(np.float32)
            lab = Label(f"{batch}-{j}", f"L{batch}-{j}", "ann", label=int(x[0] > 0), features=x)
            bus.publish(topics.labels, lab.encode())
        r.step(0.0)
    versions = [decode_model_version(m.value).version for m in bus.messages(topics.models)]
    assert len(versions) == r.version >= 25  # (every version is on the topic)
    assert len(r.published) <= 4 and r.published[-1].version == r.version
    assert r.n_published == r.version  # (simulate counts them)
