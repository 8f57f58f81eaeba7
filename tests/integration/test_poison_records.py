"""Poison never loops: a record that would stop the scorer is a dead letter and the items behind it are scored.

Each trigger of issue 18 on the real scorer path (real Redis; the in-memory bus, and one on
real Kafka). Before the fix, each raised out of ``Scorer.score_items`` (RecursionError,
ValueError, UnicodeEncodeError), so a restarted scorer read the same batch and stopped again,
and no item behind the poison on its partition was ever scored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import Item, ModelVersion, decode_dead_letter
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import MODEL_KEY, SCORER_GROUP, Topics

pytestmark = pytest.mark.integration

TRIGGERS = {
    "deep": b"[" * 100_000,  # RecursionError out of the JSON decoder
    "huge-int": b'{"id":"h","features":[' + b"9" * 5000 + b"]}",  # ValueError: int()'s 4300-digit limit
    "lone-surrogate": json.dumps({"id": "ps-\ud800", "features": [1.0] * 8}).encode(),  # UnicodeEncodeError when scored
}


def publish_around(bus: Any, topics: Topics, poison: bytes, n: int = 100) -> list[str]:
    """``n`` valid items with ``poison`` in the middle (key ``poison``); returns the valid ids."""
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    ids = [f"i{i}" for i in range(n)]
    for i, item_id in enumerate(ids):
        if i == n // 2:
            bus.publish(topics.items, poison, key=b"poison")
        bus.publish(topics.items, Item(item_id, X[i]).encode(binary=True), key=item_id.encode())
    return ids


def dead_letters(bus: InMemoryBus, topics: Topics) -> list[Any]:
    return [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_a_poison_record_is_a_dead_letter_and_the_items_behind_it_are_scored(redis_client: redis.Redis, namespace: str, trigger: str) -> None:
    bus, topics = InMemoryBus(), Topics("p")
    ids = publish_around(bus, topics, TRIGGERS[trigger])
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=30, n_features=8)
    assert scorer.run(burst=True, timeout=0.0) == 101  # (before: the exception stopped it at the poison's batch)
    scorer.close()
    assert sorted(queue.pending_ids()) == sorted(ids)
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0
    (dl,) = dead_letters(bus, topics)
    assert dl.item_id == "poison" and dl.reason and dl.source == topics.items


def test_a_record_scoring_fails_on_is_a_dead_letter_with_the_exception(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A record that passes decoding and still makes scoring raise (what the lone surrogate did
    # before ids were checked; here the id check is switched off to let it through again): the
    # batch is scored again item by item, that item is a dead letter naming the exception.
    monkeypatch.setattr("activestream.schemas.fields.is_text", lambda value: True)
    bus, topics = InMemoryBus(), Topics("p")
    ids = publish_around(bus, topics, TRIGGERS["lone-surrogate"])
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    scorer = Scorer(bus, queue, topics, batch_size=30, n_features=8)  # no model yet: seeded random scores hash the ids
    assert scorer.run(burst=True, timeout=0.0) == 101
    scorer.close()
    assert sorted(queue.pending_ids()) == sorted(ids)
    (dl,) = dead_letters(bus, topics)
    assert dl.item_id == "ps-\\ud800" and dl.reason.startswith("scoring it failed: UnicodeEncodeError")
    m = scorer.metrics
    assert m.items_scored._value.get() == 100 and m.items_read._value.get() == 101
    assert m.dead_letters.labels(source=topics.items, reason="message")._value.get() == 1


def test_a_record_the_live_model_fails_on_is_a_dead_letter(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a model live, a failure in routing (auto-accept) for one item: the same isolation.
    from activestream.retrainer.export import to_onnx
    from activestream.retrainer.trainer import Trainer
    from activestream.scorer import planning

    bus, topics = InMemoryBus(), Topics("p")
    ids = publish_around(bus, topics, Item("poison", np.full(8, 7.0, dtype=np.float32)).encode(binary=True))
    X = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    blob = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    mv = ModelVersion(1, blob, ModelVersion.digest(blob), (0, 1), metrics={"auto_accept_threshold": 0.5})
    bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
    real = planning.Label

    def label(item_id: str, *a: Any, **kw: Any) -> Any:
        if item_id == "poison":
            raise ValueError("cannot label this one")
        return real(item_id, *a, **kw)

    monkeypatch.setattr(planning, "Label", label)
    scorer = Scorer(bus, RankedQueue(redis_client, QueueKeys(namespace)), topics, batch_size=30, n_features=8)
    scorer.poll_models(to_end=True)
    assert scorer.run(burst=True, timeout=0.0) == 101
    scorer.close()
    (dl,) = dead_letters(bus, topics)
    assert dl.item_id == "poison" and "ValueError: 'cannot label this one'" in dl.reason
    handled = set(scorer.queue.pending_ids()) | {decode_label_id(m.value) for m in bus.messages(topics.auto_labels)}
    assert handled == set(ids)


def decode_label_id(value: bytes) -> str:
    from activestream.schemas import decode_label

    return decode_label(value).item_id


@pytest.mark.kafka
def test_a_poison_record_on_kafka_is_a_dead_letter_and_the_partition_goes_on(
    kafka_bus_factory: Any, redis_client: redis.Redis, namespace: str
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, partitions=1, transactional_id=f"scorer-{uuid.uuid4().hex[:8]}")
    bus.ensure_topics(topics.all())
    ids = publish_around(bus, topics, TRIGGERS["deep"])
    bus.flush()
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    group = f"scorer-{uuid.uuid4().hex[:8]}"
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=30, commit_interval=0.0, group=group, n_features=8)
    try:
        deadline = time.monotonic() + 60
        while queue.depth() < len(ids) or bus.lag(topics.items, group) > 0:
            assert time.monotonic() < deadline, f"depth {queue.depth()}, lag {bus.lag(topics.items, group)}"
            scorer.step(0.2)
            scorer.flush()
    finally:
        scorer.close()
    assert sorted(queue.pending_ids()) == sorted(ids)
    reader = bus.consumer([topics.dead_letters], None)
    try:
        dead = [decode_dead_letter(m.value) for m in reader.read_to_end(20.0)]
    finally:
        reader.close()
    assert [(d.item_id, "nested too deeply" in d.reason) for d in dead] == [("poison", True)]


def _reshape_model(width: int) -> bytes:
    """An ONNX model that loads, declares a probability output, and fails whenever it is run (Reshape to a fixed 5x2)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    shape = numpy_helper.from_array(np.array([5, 2], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["X", "shape"], ["probabilities"])], "g", [x], [y], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_a_model_version_that_fails_when_run_is_rejected_and_the_scorer_goes_on(redis_client: redis.Redis, namespace: str) -> None:
    # A security audit: one such record on the models topic (anyone who may produce to it; a far-off version number
    # too) made the scorer's re-rank raise: the scorer exited with status 1, and again at every restart (it reads the
    # models topic to its end at start), so no item was scored any more.
    from activestream.retrainer.export import to_onnx
    from activestream.retrainer.trainer import Trainer

    bus, topics = InMemoryBus(), Topics("p")
    ids = publish_around(bus, topics, Item("also-valid", np.zeros(8, dtype=np.float32)).encode(binary=True), n=40)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    scorer = Scorer(bus, queue, topics, batch_size=30, n_features=8)
    assert scorer.run(burst=True, timeout=0.0) == 41
    blob = _reshape_model(8)
    bus.publish(topics.models, ModelVersion(2**62, blob, ModelVersion.digest(blob), (0, 1)).encode(), key=MODEL_KEY)
    assert scorer.poll_models() is False and scorer.model_version == 0
    (dl,) = dead_letters(bus, topics)
    assert dl.source == topics.models and "running it on" in dl.reason and "pending row(s) failed" in dl.reason, dl.reason
    assert sorted(queue.pending_ids()) == sorted([*ids, "also-valid"])
    X = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    good = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    bus.publish(topics.models, ModelVersion(3, good, ModelVersion.digest(good), (0, 1)).encode(), key=MODEL_KEY)
    assert scorer.poll_models() is True and scorer.model_version == 3  # (a good version after it goes live as before)
    scorer.close()
