"""The labeler HTTP API over a real Redis (in-process bus)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from labeling.api import serve
from labeling.service import LabelService
from schemas import decode_label
from scorer.keys import QueueKeys
from scorer.queue import RankedQueue
from streams.memory import InMemoryBus
from streams.topics import Topics

pytestmark = pytest.mark.integration


@pytest.fixture
def api(redis_client: redis.Redis, namespace: str) -> Iterator[tuple[str, InMemoryBus, Topics, RankedQueue]]:
    bus, topics = InMemoryBus(), Topics("api")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32), [{"url": "x"}, {}, {}])
    server = serve(LabelService(queue, bus, topics), 0)
    yield f"http://127.0.0.1:{server.server_port}", bus, topics, queue
    server.shutdown()
    server.server_close()


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_lease_submit_skip_status(api) -> None:
    base, bus, topics, queue = api
    code, body = call(f"{base}/lease?k=2&labeler=ann")
    assert code == 200 and [i["id"] for i in body["items"]] == ["a", "b"]
    assert body["items"][0]["metadata"] == {"url": "x"} and body["items"][0]["features"] == [1.0, 0.0, 0.0]
    assert call(f"{base}/labels", {"item_id": "a", "label": "cat", "labeler_id": "ann", "label_id": "L1", "seconds": 3})[1] == {"accepted": True}
    assert call(f"{base}/labels", {"item_id": "a", "label": "cat", "labeler_id": "ann", "label_id": "L1"})[1] == {"accepted": False}
    (msg,) = bus.messages(topics.labels)
    lab = decode_label(msg.value)
    assert (lab.item_id, lab.label, lab.seconds) == ("a", "cat", 3.0)
    # The first label fixes what this campaign takes: one class per item.
    code, reply = call(f"{base}/labels", {"item_id": "b", "labels": ["cat"], "labeler_id": "ann"})
    assert code == 400 and "field 'labels': this campaign's answers come as 'label'" in reply["error"]
    assert len(bus.messages(topics.labels)) == 1 and queue.n_leased() == 1  # b is still ann's to label
    assert call(f"{base}/skip", {"item_id": "b", "labeler_id": "ann"})[1] == {"skips": 1}
    assert call(f"{base}/status")[1] == {"pending": 2, "leased": 0, "labeled": 1, "model_version": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": 1, "labeler_id": "x"}, "field 'item_id': missing"),
        ({"item_id": "c", "labeler_id": "x"}, "item 'c': field 'label'"),
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": "slow"}, "item 'c': field 'seconds'"),
        ({"item_id": "zz", "label": 1, "labeler_id": "x"}, "item 'zz': not in the queue"),
        # Labels the retrainer would dead-letter are refused while the item is still queued.
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": -1}, "item 'c': field 'seconds'"),
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": float("nan")}, "item 'c': field 'seconds'"),
        ({"item_id": "c", "label": 1, "labeler_id": ""}, "item 'c': field 'labeler_id'"),
        ({"item_id": "c", "labels": [1.5], "labeler_id": "x"}, "item 'c': field 'labels[0]'"),
    ],
)
def test_bad_requests_name_item_and_field(api, body: dict, message: str) -> None:
    base, bus, topics, queue = api
    code, reply = call(f"{base}/labels", body)
    assert code == 400 and message in reply["error"]
    assert queue.depth() == 3 and not bus.messages(topics.labels)  # nothing published, nothing left the queue
    assert call(f"{base}/lease?k=many&labeler=a")[0] == 400
