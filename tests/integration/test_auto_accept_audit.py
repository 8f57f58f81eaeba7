"""Auto-accept's audit and re-rank auto-accept through the real scorer, queue (Redis), labeling service and retrainer."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_digits

from activestream.labeling.factory import make_label_service
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.export import to_onnx
from activestream.retrainer.logs import read_log
from activestream.retrainer.service import Retrainer
from activestream.retrainer.trainer import Trainer
from activestream.schemas import Item, ModelVersion, decode_label
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.streams.bus import Bus
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import MODEL_KEY, Topics


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.data.astype(np.float32), d.target


def _produce(bus: InMemoryBus, topics: Topics, X: np.ndarray, start: int) -> None:
    for j, x in enumerate(X):
        bus.publish(topics.items, Item(str(start + j), x).encode(binary=True), key=str(start + j).encode())


def _version(v: int, heads: object, **metrics: float) -> bytes:
    blob = to_onnx(heads)  # type: ignore[arg-type]
    return ModelVersion(v, blob, ModelVersion.digest(blob), heads.classes, metrics=metrics).encode()  # type: ignore[attr-defined]


def _autos(bus: InMemoryBus, topics: Topics) -> list[str]:
    return [decode_label(m.value).item_id for m in bus.messages(topics.auto_labels)]


def _audit_flow(buses: tuple[Bus, Bus, Bus], topics: Topics, redis_client: redis.Redis, namespace: str,
                digits: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture, *, wait: float = 0.0) -> None:
    """Scorer, labeling service and retrainer, each on its own bus (``buses``), as separate services are."""
    X, y = digits
    scorer_bus, labeling_bus, retrainer_bus = buses
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    registry = CollectorRegistry()
    scorer = Scorer(scorer_bus, queue, topics, strategy=Strategy("margin"), batch_size=100, audit_share=0.3, registry=registry,
                    group=f"{topics.prefix}.scorer")
    labeling = make_label_service(Strategy("margin"), queue, labeling_bus, topics)
    retrainer = Retrainer(retrainer_bus, topics, task="multiclass", auto_accept_precision=0.95, retrain_every=1)

    def autos() -> list[str]:
        return [decode_label(m.value).item_id for m in read_log(scorer_bus, topics.auto_labels, 10.0)]

    def poll_until(version: int) -> None:
        deadline = time.monotonic() + 30
        while scorer.model_version < version:
            scorer.poll_models(0.5 if wait else 0.0)
            assert time.monotonic() < deadline, f"model v{version} never reached the scorer"

    def score_all(n: int) -> None:
        deadline = time.monotonic() + 60
        got = 0
        while got < n:
            got += scorer.score_items(0.5 if wait else 0.0)
            assert time.monotonic() < deadline, f"{got} of {n} items scored"
        scorer.flush()

    try:
        heads = Trainer().fit(X[:600], list(y[:600]))
        scorer_bus.publish(topics.models, _version(1, heads, auto_accept_threshold=0.9), key=MODEL_KEY)
        scorer_bus.flush()
        poll_until(1)
        _produce(scorer_bus, topics, X[600:800], 600)
        score_all(200)
        auto = autos()
        audits = {i.decode(): None for i in redis_client.hkeys(queue.k.audit)}  # type: ignore[union-attr]
        assert len(auto) > 50 and 0 < len(audits) < len(auto) and set(audits) <= set(auto)
        # Served first, as ordinary items: nothing a labeler sees says audit.
        leased = labeling.lease(len(audits), "ann")
        assert {e.id for e in leased} == set(audits)
        assert all("audit" not in e.metadata and not e.control for e in leased)
        pred = dict(zip(map(str, range(600, 800)), heads.predict_proba(X[600:800]).argmax(axis=1), strict=True))
        wrong = [e.id for e in leased][:8]
        for item_id in wrong:  # the labeler disagrees with the auto-label
            assert labeling.submit(item_id, labeler_id="ann", label=int(heads.classes[pred[item_id]] + 1) % 10)
        labels = [decode_label(m.value) for m in read_log(retrainer_bus, topics.labels, 10.0)]
        assert len(labels) == len(wrong) and all(lab.audit and lab.audited_label == heads.classes[pred[lab.item_id]] for lab in labels)
        assert redis_client.hlen(queue.k.audit) == len(audits) - len(wrong)  # answered: no longer audits
        deadline = time.monotonic() + 60
        while len(retrainer.training) < len(wrong) or retrainer.version < 1:
            retrainer.watch_models(0.5 if wait else 0.0)  # (v1, published by another: its next is v2)
            retrainer.ingest(0.5 if wait else 0.0)
            assert time.monotonic() < deadline, "the retrainer never got the labels"
        mv = retrainer.retrain()
        assert mv is not None and mv.version == 2
        assert (mv.metrics["audit_n"], mv.metrics["audit_correct"], mv.metrics["auto_accept_paused"]) == (8.0, 0.0, 1.0)
        assert "auto-accept paused: audited precision 0 of 8" in caplog.text
        # The scorer follows: the gauge, and nothing auto-accepted while paused, even by a version with a threshold.
        poll_until(mv.version)
        assert registry.get_sample_value("activestream_auto_accept_paused", {"namespace": namespace}) == 1.0
        scorer_bus.publish(topics.models, _version(mv.version + 1, heads, auto_accept_threshold=0.9, auto_accept_paused=1.0), key=MODEL_KEY)
        scorer_bus.flush()
        poll_until(mv.version + 1)
        assert scorer.router.auto_threshold is None and scorer.router.shadow_threshold == 0.9
        before = len(autos())
        _produce(scorer_bus, topics, X[800:900], 800)
        score_all(100)
        assert len(autos()) == before
        # Resumed (a version whose audit bound is met again): auto-accept is back.
        scorer_bus.publish(topics.models, _version(mv.version + 2, heads, auto_accept_threshold=0.9, auto_accept_paused=0.0), key=MODEL_KEY)
        scorer_bus.flush()
        poll_until(mv.version + 2)
        assert registry.get_sample_value("activestream_auto_accept_paused", {"namespace": namespace}) == 0.0
        assert len(autos()) > before  # (the pending ones it is sure of, at its re-rank)
    finally:
        scorer.close()
        labeling.close()


def test_audited_items_reach_labelers_blind_and_wrong_answers_pause_auto_accept(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    bus = InMemoryBus()
    _audit_flow((bus, bus, bus), Topics("audit"), redis_client, namespace, digits, caplog)


@pytest.mark.kafka
def test_the_audit_across_services_over_kafka(
    kafka_bus_factory: Any, redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(prefix=f"a{uuid.uuid4().hex[:10]}")
    scorer_bus = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"scorer-{uuid.uuid4().hex[:8]}")
    scorer_bus.ensure_topics(topics.all())
    buses = (scorer_bus, kafka_bus_factory(prefix=topics.prefix), kafka_bus_factory(prefix=topics.prefix))
    _audit_flow(buses, topics, redis_client, namespace, digits, caplog, wait=1.0)


def test_a_new_version_moves_the_pending_items_it_is_sure_of_to_the_auto_labels(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    bus, topics = InMemoryBus(), Topics("rerank")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=200, audit_share=0.0)
    labeling = make_label_service(Strategy("margin"), queue, bus, topics)
    try:
        weak = Trainer().fit(X[:40], list(y[:40]))
        bus.publish(topics.models, _version(1, weak), key=MODEL_KEY)  # no threshold: everything queued
        scorer.poll_models(0.0)
        _produce(bus, topics, X[600:1000], 600)
        scorer.run(burst=True, timeout=0.0)
        assert queue.depth() == 400 and not _autos(bus, topics)
        held = {e.id for e in labeling.lease(5, "ann")}  # leased: stays with the labeler whatever the model says
        strong = Trainer().fit(X[:600], list(y[:600]))
        bus.publish(topics.models, _version(2, strong, auto_accept_threshold=0.9), key=MODEL_KEY)
        scorer.poll_models(0.0)
        conf = strong.predict_proba(X[600:1000]).max(axis=1)
        sure = {str(600 + j) for j in np.flatnonzero(conf >= 0.9)} - held
        autos = _autos(bus, topics)
        assert len(autos) >= len(sure) > 100 and sure <= set(autos)
        assert set(queue.pending_ids()) == {str(i) for i in range(600, 1000)} - set(autos) - held
        assert scorer.metrics.items_auto_accepted_at_rerank._value.get() == len(sure)
        # An auto-label published for a leased item (the labeler answers it) is all the crash window can leave:
        # the same label id again, never an item gone from both.
        assert len(set(autos)) == len(autos)
        labels = [decode_label(m.value) for m in bus.messages(topics.auto_labels)]
        assert all(lab.label_id == f"auto:{lab.item_id}:v2" and lab.threshold == 0.9 for lab in labels)
        # A later record of an auto-accepted id is a duplicate, not queued again.
        again = int(min(sure, key=int))
        _produce(bus, topics, X[again : again + 1], again)
        scorer.run(burst=True, timeout=0.0)
        assert str(again) not in set(queue.pending_ids()) and scorer.metrics.items_duplicate._value.get() == 1
    finally:
        scorer.close()
        labeling.close()


def test_queue_topic_labelers_get_audits_and_the_dispatcher_flags_their_answers(redis_client: redis.Redis, namespace: str) -> None:
    """Issue 20: audits reach labelers who read the queue topic too; their labels come by the labels topic unflagged, so
    the dispatcher publishes a flagged copy (same label id), and the retrainer trains once and counts the audit once."""
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.rankedqueue.auto_accept import record_audits
    from activestream.schemas import Label, decode_queue_entry

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    bus, topics = InMemoryBus(), Topics(namespace)
    rng = np.random.default_rng(3)
    ids = [f"it{i}" for i in range(20)]
    queue.add(ids, np.zeros(20), rng.normal(size=(20, 4)).astype(np.float32))
    queue.rerank(lambda batch, _X: np.array([0.5 + int(i[2:]) / 100 for i in batch]), version=1)
    record_audits(queue, {"audit-1": (3, 1)})  # (as the scorer does: recorded, then queued at score 0, below every ranked item)
    queue.add(["audit-1"], np.zeros(1), np.ones((1, 4), dtype=np.float32))
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=5)
    assert dispatcher.dispatch() == 5
    entries = [decode_queue_entry(m.value) for m in bus.messages(topics.queue)]
    assert entries[0].id == "audit-1" and not entries[0].metadata.get("control")  # first, and like any item
    for e in entries:  # a queue-topic labeler publishes its own labels (wrong on the audit: 4, the auto-label said 3)
        lab = Label(item_id=e.id, label_id=f"q-{e.id}", labeler_id="qt", label=4 if e.id == "audit-1" else 0, features=e.features)
        bus.publish(topics.labels, lab.encode(), key=e.id.encode())
    dispatcher.acknowledge(0.0)
    flagged = [lab for lab in (decode_label(m.value) for m in bus.messages(topics.labels)) if lab.audit]
    assert [(lab.item_id, lab.label_id, lab.audited_label, lab.label) for lab in flagged] == [("audit-1", "q-audit-1", 3, 4)]
    assert redis_client.hlen(queue.k.audit) == 0 and queue.n_leased_by(dispatcher.owner) == 0
    dispatcher.acknowledge(0.0)  # (its own flagged copy comes back: nothing more)
    bus.publish(topics.labels, flagged[0].encode(), key=b"audit-1")  # (and a redelivered copy)
    assert sum(decode_label(m.value).audit for m in bus.messages(topics.labels)) == 2
    retrainer = Retrainer(bus, topics, task="multiclass", auto_accept_precision=0.95, retrain_every=1)
    retrainer.ingest(0.0)
    assert len(retrainer.training) == 5 and retrainer.campaign.audit_outcomes == [False]


def test_the_dispatcher_flags_one_answer_per_audit_item_and_a_skipped_one_waits(redis_client: redis.Redis, namespace: str) -> None:
    """Two answers to one audit item in a batch (a correction): one flagged copy, the first; baseline labels are no
    audit answers; an audit item the group passed on is not sent again at once (other work first, as for any item)."""
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.rankedqueue.auto_accept import record_audits
    from activestream.schemas import Label, Skip, decode_queue_entry

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    bus, topics = InMemoryBus(), Topics(namespace)
    ids = [f"it{i}" for i in range(20)]
    queue.add(ids, np.zeros(20), np.random.default_rng(4).normal(size=(20, 4)).astype(np.float32))
    queue.rerank(lambda batch, _X: np.array([0.5 + int(i[2:]) / 100 for i in batch]), version=1)
    record_audits(queue, {"a1": (3, 1), "a2": (5, 1), "a3": (7, 1)})
    queue.add(["a1", "a2", "a3"], np.zeros(3), np.ones((3, 4), dtype=np.float32))
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=3, ack_timeout=60.0)
    assert dispatcher.dispatch() == 3
    sent = [decode_queue_entry(m.value).id for m in bus.messages(topics.queue)]
    assert sorted(sent) == ["a1", "a2", "a3"]
    x = np.ones(4, dtype=np.float32)
    for lab in (Label(item_id="a1", label_id="first", labeler_id="qt", label=3, features=x),
                Label(item_id="a1", label_id="second", labeler_id="qt", label=4, features=x),  # (a correction)
                Label(item_id="a2", label_id="imported", labeler_id="qt", label=5, features=x, source="baseline")):
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    bus.publish(topics.skips, Skip(item_id="a3", labeler_id="qt").encode(), key=b"a3")
    dispatcher.acknowledge(0.0)
    flagged = [lab for lab in (decode_label(m.value) for m in bus.messages(topics.labels)) if lab.audit]
    assert [(lab.item_id, lab.label_id, lab.audited_label) for lab in flagged] == [("a1", "first", 3)]
    dispatcher.dispatch()  # a3 came back (skipped): the ranked items go out before it
    resent = [decode_queue_entry(m.value).id for m in bus.messages(topics.queue)][3:]
    assert resent and "a3" not in resent


def test_an_audit_item_waiting_in_the_queue_is_auto_labeled_once_not_at_every_re_rank(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """An audit item stays queued until a labeler answers it; each new version's re-rank is sure of it again. Its
    auto-label went out once (when it was auto-accepted): a re-rank publishes no other record of it (each waiting audit
    got one more ``auto:<item>:v<N>`` per version, an item waiting 17 versions 17 records) and keeps its audit record
    (the auto-label the labeler's answer is checked against is the one that went out)."""
    X, y = digits
    bus, topics = InMemoryBus(), Topics("audit-once")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=200, audit_share=0.3)
    try:
        heads = Trainer().fit(X[:600], list(y[:600]))
        bus.publish(topics.models, _version(1, heads, auto_accept_threshold=0.9), key=MODEL_KEY)
        scorer.poll_models(0.0)
        _produce(bus, topics, X[600:1000], 600)
        scorer.run(burst=True, timeout=0.0)
        audits = {i.decode(): v for i, v in redis_client.hgetall(queue.k.audit).items()}  # type: ignore[union-attr]
        assert len(audits) > 10 and set(audits) <= set(queue.pending_ids())
        before = _autos(bus, topics)
        assert len(before) == len(set(before))  # (one auto-label per item so far)
        for v in (2, 3):  # new versions, as sure of those items: they re-rank the queue
            bus.publish(topics.models, _version(v, heads, auto_accept_threshold=0.9), key=MODEL_KEY)
            scorer.poll_models(0.0)
        autos = _autos(bus, topics)
        assert len(autos) == len(set(autos)), f"{len(autos) - len(set(autos))} auto-labels published again for waiting audit items"
        assert {i.decode(): v for i, v in redis_client.hgetall(queue.k.audit).items()} == audits  # type: ignore[union-attr]
        assert set(audits) <= set(queue.pending_ids())  # (still waiting for a labeler)
    finally:
        scorer.close()


def test_audits_reach_labelers_with_their_metadata_from_a_full_capped_pool(redis_client: redis.Redis, namespace: str,
                                                                         digits: tuple[np.ndarray, np.ndarray]) -> None:
    """A drift audit: on a full capped pool (an endless stream's normal state) every audit from the stream was queued at
    score 0, which outranks nothing, and one picked at a re-rank (a sure, low score) was the first the pool evicted: no
    audit reached a labeler, and a drift could never pause auto-accept. Stream audits also came without their metadata
    (an image's URL: all a labeler looks at). A review: items a labeler skipped must stay skipped (evicted and queued
    again, an audit item lost its skips and came back to the same labeler)."""
    from activestream.rankedqueue.pool import PoolLimits

    X, y = digits
    bus, topics = InMemoryBus(), Topics("audit-full")
    queue = RankedQueue(redis_client, QueueKeys(namespace), pool=PoolLimits(100, 0, None))
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, audit_share=0.3)
    rng = np.random.default_rng(0)
    try:
        bus.publish(topics.models, _version(1, Trainer().fit(X[:600], list(y[:600])), auto_accept_threshold=0.9), key=MODEL_KEY)
        scorer.poll_models(0.0)
        # The stream fills the pool with items the model is unsure of, then brings digits it is sure of.
        queue.add([f"u{i}" for i in range(100)], rng.uniform(0.3, 0.9, 100), rng.normal(8, 4, size=(100, 64)).astype(np.float32))
        for j in range(600, 900):
            bus.publish(topics.items, Item(str(j), X[j], {"url": f"img/{j}.png"}).encode(), key=str(j).encode())
        scorer.run(burst=True, timeout=0.0)
        audits = {i.decode() for i in redis_client.hkeys(queue.k.audit)}  # type: ignore[union-attr]
        assert 1 <= len(audits) <= 10 and audits <= set(_autos(bus, topics))  # (a tenth of the capacity waits at most)
        # More unsure items push the lowest pending items out, never an audit item (score 0), and the cap holds.
        queue.add([f"v{i}" for i in range(200)], rng.uniform(0.3, 0.9, 200), rng.normal(8, 4, size=(200, 64)).astype(np.float32))
        assert audits <= set(queue.pending_ids()) and queue.depth() == 100
        assert queue.thresholds().pool > 0.3  # (the pool's threshold is its lowest other item, not an audit's 0)
        # Every one is served to a labeler, first, with its features and metadata.
        service = make_label_service(Strategy("margin"), queue, bus, topics)
        batch = service.lease(len(audits) + 5, "ann")
        assert {e.id for e in batch[: len(audits)]} == audits
        for e in batch[: len(audits)]:
            assert e.metadata == {"url": f"img/{e.id}.png"} and np.allclose(e.features, X[int(e.id)])
        # Skipped, an audit item stays skipped by that labeler through the evictions that follow.
        first = batch[0].id
        service.skip(first, "ann")
        queue.add([f"w{i}" for i in range(100)], rng.uniform(0.3, 0.9, 100), rng.normal(8, 4, size=(100, 64)).astype(np.float32))
        assert first in queue.pending_ids() and first not in {e.id for e in service.lease(len(audits) + 5, "ann")}
        assert int(redis_client.hget(queue.k.skips, first) or 0) == 1
    finally:
        scorer.close()


def test_audit_items_waiting_at_once_are_bounded(redis_client: redis.Redis, namespace: str) -> None:
    # (audit items now enter a full pool past its cap and the pool does not evict them for their rank: on a fast stream
    # auto-accept would pile them up faster than labelers answer; nothing may grow with the stream)
    from activestream.rankedqueue import auto_accept

    assert auto_accept.audit_room(None) == auto_accept.AUDIT_MAX_WAITING == auto_accept.audit_room(10**7)
    assert auto_accept.audit_room(100) == 10 and auto_accept.audit_room(5) == 1
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    assert auto_accept.record_audits(queue, {f"a{i}": (1, 1) for i in range(2)}, room=3) == ["a0", "a1"]
    assert auto_accept.record_audits(queue, {f"a{i}": (2, 2) for i in range(1, 5)}, room=3) == ["a1", "a2"]  # (a1 known: updated)
    assert sorted(k.decode() for k in redis_client.hkeys(queue.k.audit)) == ["a0", "a1", "a2"]  # type: ignore[union-attr]
    auto_accept.forget_audits(queue, ["a0"])
    assert auto_accept.record_audits(queue, {"a5": (1, 1)}, room=3) == ["a5"]
