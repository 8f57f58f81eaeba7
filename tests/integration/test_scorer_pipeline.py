"""The scorer's pipelined writes and commit policy: offsets move only past items written to Redis."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from retrainer.export import to_onnx
from retrainer.trainer import Trainer
from schemas import Item
from scorer.keys import QueueKeys
from scorer.model import OnnxClassifier
from scorer.queue import RankedQueue
from scorer.service import Scorer
from scorer.strategies import Strategy
from scorer.uncertainty import margin
from streams.memory import InMemoryBus
from streams.topics import Topics

pytestmark = pytest.mark.integration


def make(redis_client: redis.Redis, namespace: str, n: int, **kw: object) -> tuple[InMemoryBus, Topics, RankedQueue, Scorer, np.ndarray]:
    bus, topics = InMemoryBus(), Topics("p")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    for i in range(n):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    return bus, topics, queue, Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, **kw), X  # type: ignore[arg-type]


def test_offsets_follow_the_writes(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 300, commit_interval=3600.0)
    assert scorer.score_items(0.0) == 100
    assert queue.depth() in (0, 100) and bus.lag(topics.items, "scorer") == 300  # sent, not confirmed: nothing committed
    assert scorer.score_items(0.0) == 100
    assert queue.depth() >= 100 and bus.lag(topics.items, "scorer") == 300  # confirmed, commit deferred
    scorer.flush()
    assert queue.depth() == 200 and bus.lag(topics.items, "scorer") == 100
    assert scorer.run(burst=True, timeout=0.0) == 100
    assert queue.depth() == 300 and bus.lag(topics.items, "scorer") == 0


def test_a_failed_write_commits_nothing(redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 200, commit_interval=0.0)
    scorer.score_items(0.0)

    class Broken:
        def result(self) -> int:
            raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(queue, "add_nowait", lambda *a, **k: Broken())
    with pytest.raises(redis.ConnectionError):
        scorer.score_items(0.0)  # confirms batch 1 (commits it), sends batch 2
        scorer.score_items(0.0)  # confirming batch 2 fails
    assert bus.lag(topics.items, "scorer") == 100  # batch 2 stays uncommitted: redelivered


def test_new_model_reranks_after_the_writes_in_flight(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, X = make(redis_client, namespace, 250)
    assert scorer.score_items(0.0) == 100  # in flight when the model arrives
    y = (X[:, 0] > 0).astype(int)
    heads = Trainer().fit(X, list(y))
    model = OnnxClassifier(to_onnx(heads))
    assert scorer.swap(model, 1) == 100
    scorer.run(burst=True, timeout=0.0)
    ranking = dict(queue.ranking())
    assert len(ranking) == 250 and queue.ranked_version() == 1
    want = margin(model.predict_proba_many(X))
    assert [ranking[f"i{i}"] for i in range(250)] == pytest.approx(want.tolist())
    assert scorer.rerank() == 0  # already ranked by this version (e.g. after a restart)
