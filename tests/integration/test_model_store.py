"""The scorer dead-letters a model version it may not read (artifact_uri outside its store) and keeps scoring."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import Trainer
from activestream.schemas import Item, ModelVersion, decode_dead_letter
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.scorer.versions import ArtifactStore
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


def test_models_come_only_from_the_wire_or_the_configured_store(redis_client: redis.Redis, namespace: str, tmp_path: Path) -> None:
    X = np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32)
    blob = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    (store / "v2.onnx").write_bytes(blob)
    (elsewhere / "v3.onnx").write_bytes(blob)
    os.mkfifo(store / "v4.onnx")
    bus, topics = InMemoryBus(), Topics("ms")
    for i in range(20):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True))
    scorer = Scorer(bus, RankedQueue(redis_client, QueueKeys(namespace)), topics, strategy=Strategy("margin"),
                    artifacts=ArtifactStore.from_setting(str(store)))
    try:
        for v, uri in ((2, store / "v2.onnx"), (3, elsewhere / "v3.onnx"), (4, store / "v4.onnx")):
            bus.publish(topics.models, ModelVersion(version=v, onnx=None, sha256=ModelVersion.digest(blob), classes=(0, 1),
                                                    artifact_uri=f"file://{uri}").encode())
            scorer.step(0.1)
        scorer.run(burst=True, timeout=0.1)
        assert scorer.model_version == 2  # from the store; v3 (outside it) and v4 (a FIFO) are dead letters
        dead = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
        assert [(d.item_id, d.field) for d in dead] == [("model v3", "artifact_uri"), ("model v4", "artifact_uri")]
        assert "not under" in dead[0].reason and "not a regular file" in dead[1].reason
        assert scorer.queue.depth() == 20
    finally:
        scorer.close()
