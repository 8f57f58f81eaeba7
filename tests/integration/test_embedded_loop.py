"""End to end on the embedded default: in-process bus + a real redis-server."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis
from sklearn.datasets import load_digits

from activestream.labeling.factory import FALCUN_CANDIDATES, make_label_service
from activestream.labeling.live_model import LiveModel
from activestream.labeling.selection import falcun
from activestream.labeling.service import LabelService, UnknownItem
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.service import Retrainer
from activestream.schemas import Item, decode_dead_letter, decode_label
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.scorer.uncertainty import margin
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import SCORER_GROUP, Topics

pytestmark = pytest.mark.integration


class Loop:
    def __init__(self, client: redis.Redis, namespace: str, **retrainer_kw: object) -> None:
        self.bus = InMemoryBus()
        self.topics = Topics("t")
        self.queue = RankedQueue(client, QueueKeys(namespace))
        self.scorer = Scorer(self.bus, self.queue, self.topics, strategy=Strategy("margin"), batch_size=256)
        self.retrainer = Retrainer(self.bus, self.topics, retrain_every=10, holdout_fraction=0.0, **retrainer_kw)  # type: ignore[arg-type]
        self.labeling = LabelService(self.queue, self.bus, self.topics, lease_ttl=60)

    def produce(self, X: np.ndarray, start: int = 0) -> None:
        for i, x in enumerate(X, start):
            self.bus.publish(self.topics.items, Item(str(i), x).encode(), key=str(i).encode())

    def enqueue(self, X: np.ndarray, start: int = 0) -> int:
        """Publish ``X (n, d)`` as items ``start..`` and let the scorer queue them; returns items queued."""
        self.produce(X, start)
        return int(self.scorer.run(burst=True, timeout=0.0))

    def label(self, k: int, y: np.ndarray) -> None:
        for e in self.labeling.lease(k, "ann"):
            self.labeling.submit(e.id, labeler_id="ann", label=int(y[int(e.id)]), label_id=f"L-{e.id}")

    def cycle(self) -> None:
        self.retrainer.run(burst=True, timeout=0.0)
        self.scorer.poll_models()


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.data.astype(np.float32), d.target


def test_full_loop(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    pool, test = np.arange(0, 1200), np.arange(1200, 1797)
    loop = Loop(redis_client, namespace)
    assert loop.enqueue(X[pool]) == 1200
    assert loop.queue.depth() == 1200 and loop.scorer.model is None

    # Cold start: a first batch before any model.
    loop.label(20, y)
    loop.cycle()
    assert loop.scorer.model_version == 1

    # The queue is ranked by uncertainty under the live model.
    ranking = loop.queue.ranking()
    ids = [i for i, _ in ranking]
    expected = margin(loop.scorer.model.predict_proba_many(X[[int(i) for i in ids]]))
    np.testing.assert_allclose([s for _, s in ranking], expected, atol=1e-6)
    assert all(a >= b for a, b in zip(expected, expected[1:], strict=False))

    # The model improves as labels arrive, and each new version re-ranks what is pending.
    accs = [(loop.scorer.model.predict_proba_many(X[test]).argmax(1) == y[test]).mean()]
    before = dict(ranking)
    for _ in range(8):
        loop.label(10, y)
        loop.cycle()
        accs.append((loop.scorer.model.predict_proba_many(X[test]).argmax(1) == y[test]).mean())
    assert loop.scorer.model_version == 9
    after = dict(loop.queue.ranking())
    common = [i for i in after if i in before]
    assert len(common) > 1000
    assert sum(before[i] != after[i] for i in common) > 0.9 * len(common)
    fresh = margin(loop.scorer.model.predict_proba_many(X[[int(i) for i in common]]))
    np.testing.assert_allclose([after[i] for i in common], fresh, atol=1e-6)
    assert accs[-1] > accs[0] + 0.1, accs
    assert accs[-1] > 0.85
    assert loop.queue.n_labeled() == 100 and len(loop.retrainer.training) == 100


def test_expired_lease_returns_item(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = digits
    loop = Loop(redis_client, namespace)
    loop.labeling.lease_ttl = 5.0
    loop.enqueue(X[:50])
    (first,) = loop.labeling.lease(1, "ann", now=1000.0)
    assert loop.queue.score_of(first.id) is None and loop.queue.depth() == 49
    assert loop.labeling.lease(1, "other", now=1002.0)[0].id != first.id  # still leased
    again = loop.labeling.lease(50, "other", now=1006.0)  # expired: back in the queue
    assert first.id in [e.id for e in again]


def test_duplicate_label_counted_once(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    loop = Loop(redis_client, namespace)
    loop.enqueue(X[:40])
    leased = loop.labeling.lease(20, "ann")
    for e in leased:
        assert loop.labeling.submit(e.id, labeler_id="ann", label=int(y[int(e.id)]), label_id=f"L-{e.id}") is True
    # A labeler's retry, and a replay of the same message on the topic: neither counts twice.
    e0 = leased[0]
    assert loop.labeling.submit(e0.id, labeler_id="ann", label=int(y[int(e0.id)]), label_id=f"L-{e0.id}") is False
    loop.bus.publish(loop.topics.labels, loop.bus.messages(loop.topics.labels)[0].value)
    loop.cycle()
    assert len(loop.retrainer.training) == 20
    assert loop.retrainer.published[-1].n_labels == 20
    assert loop.retrainer.metrics.labels_duplicate._value.get() == 1
    assert loop.queue.n_labeled() == 20
    with pytest.raises(UnknownItem, match="not in the queue"):
        loop.labeling.submit(e0.id, labeler_id="ann", label=1, label_id="fresh-id")


def test_bad_items_go_to_dead_letters_and_the_stream_goes_on(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = digits
    loop = Loop(redis_client, namespace)
    loop.enqueue(X[:30])
    before = dict(loop.queue.ranking())
    bad = [
        (b"not json at all", b"k-1"),
        (json.dumps({"features": X[0].tolist()}).encode(), None),
        (json.dumps({"id": "short", "features": [1.0, 2.0]}).encode(), b"short"),
        (b'{"id": "nan-item", "features": [' + b", ".join([b"NaN"] + [b"1"] * 63) + b"]}", b"nan-item"),
    ]
    for value, key in bad:
        loop.bus.publish(loop.topics.items, value, key=key)
    loop.enqueue(X[30:40], start=30)

    dls = [decode_dead_letter(m.value) for m in loop.bus.messages(loop.topics.dead_letters)]
    assert [(d.item_id, d.field) for d in dls] == [("k-1", None), (None, "id"), ("short", "features"), ("nan-item", "features[0]")]
    assert "not valid JSON" in dls[0].reason and "expected 64 values, got 2" in dls[2].reason
    assert "not a finite number" in dls[3].reason and dls[0].payload == b"not json at all"
    assert loop.scorer.dead_letters == 4
    counted = {
        s.labels["reason"]: s.value
        for metric in loop.scorer.metrics.dead_letters.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert {r: n for r, n in counted.items() if n} == {"message": 1, "id": 1, "features": 2}
    assert counted["schema"] == counted["metadata"] == 0  # (the item-topic reasons are there at 0 from the start: alerts see a burst)
    after = dict(loop.queue.ranking())
    assert set(before) <= set(after) and len(after) == 40  # nothing already queued was lost
    assert loop.bus.lag(loop.topics.items, loop.topics.group(SCORER_GROUP)) == 0  # and the offsets moved past the bad ones


def test_live_model_follows_the_newest_version_and_skips_bad_messages(
    redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    loop = Loop(redis_client, namespace)
    live = LiveModel(loop.bus, loop.topics)  # a +falcun labeler's view of the models topic
    assert live.refresh() == 0 and live.live is None
    loop.enqueue(X[:300])
    loop.bus.publish(loop.topics.models, b"not a model version")
    loop.label(20, y)
    loop.cycle()
    loop.label(10, y)
    loop.cycle()
    assert loop.scorer.model_version == 2
    assert live.refresh() == 2  # the garbage skipped, the newest of the two versions loaded
    assert loop.scorer.model is not None
    assert live.live is not None and live.live.task == "multiclass"
    np.testing.assert_allclose(live.live.model.predict_proba_many(X[:5]), loop.scorer.model.predict_proba_many(X[:5]), atol=1e-6)
    late = LiveModel(loop.bus, loop.topics)  # started after the versions: reads the log to its end
    assert late.refresh(to_end=True) == 2
    live.close()
    late.close()


def test_falcun_batches_are_drawn_by_the_live_model(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    loop = Loop(redis_client, namespace)
    loop.enqueue(X[:500])
    svc = make_label_service(Strategy("margin+falcun", 5), loop.queue, loop.bus, loop.topics)
    head = [i for i, _ in loop.queue.top(20)]
    cold = svc.lease(20, "a")  # no model yet: the queue's cold-start order
    assert sorted(e.id for e in cold) == sorted(head)
    for e in cold:
        svc.submit(e.id, labeler_id="a", label=int(y[int(e.id)]))
    loop.cycle()
    assert loop.scorer.model is not None and loop.scorer.model_version == 1

    ids = [i for i, _ in loop.queue.top(10 * FALCUN_CANDIDATES + 16)]
    P = loop.scorer.model.predict_proba_many(np.vstack(loop.queue.features_of(ids)))
    seed = int(np.random.default_rng(5).integers(2**63))  # the service's first draw (strategy seed 5)
    expected = [ids[j] for j in falcun(margin(P) / margin(P).max(), P, 10, seed=seed)]
    leased = svc.lease(10, "a")
    assert sorted(e.id for e in leased) == sorted(expected)
    assert sorted(expected) != sorted(ids[:10])  # a sampled, spread batch, not the plain top 10
    svc.close()


def test_falcun_leases_leave_out_items_the_model_cannot_score(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    loop = Loop(redis_client, namespace)
    huge = np.where(np.arange(X.shape[1]) % 2, 3e38, -3e38).astype(X.dtype)  # finite, but the model overflows on it
    loop.enqueue(np.vstack([X[:100], huge[None, :]]))  # before any model: all queued
    svc = make_label_service(Strategy("margin+falcun", 5), loop.queue, loop.bus, loop.topics)
    for i in range(30):
        svc.submit(str(i), labeler_id="a", label=int(y[i]))
    loop.cycle()
    assert loop.queue.ranked_version() == 1 and loop.queue.score_of("100") == -1.0  # ranked last
    leased = svc.lease(10, "a")  # the whole queue is the candidate window: "100" among them
    assert len(leased) == 10 and "100" not in {e.id for e in leased}
    svc.close()


def test_restarted_retrainer_rebuilds_from_the_log(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    loop = Loop(redis_client, namespace)
    loop.enqueue(X[:200])
    loop.label(30, y)
    loop.cycle()
    v1 = loop.retrainer.published[-1]
    fresh = Retrainer(loop.bus, loop.topics, retrain_every=10, holdout_fraction=0.0)
    assert fresh.version == v1.version
    loop.label(10, y)
    fresh.run(burst=True, timeout=0.0)
    v2 = fresh.published[-1]
    assert v2.version == v1.version + 1 and v2.n_labels == 40


def test_exploration_share_and_curriculum(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    n = 1000
    queue.add([f"i{k}" for k in range(n)], np.arange(n, dtype=float) / n, np.zeros((n, 2), dtype=np.float32))
    queue.set_meta(ranked_version=1)  # ranked by a model: a cold queue has no control slice or curriculum
    bus, topics = InMemoryBus(), Topics("x")
    svc = LabelService(queue, bus, topics, explore=0.25, seed=1)
    leased = [e for _ in range(8) for e in svc.lease(10, "ann")]
    control = [e for e in leased if e.control]
    assert len(control) == 20  # exactly a quarter, carried over between batches
    assert all(e.score >= 0.9 for e in leased if not e.control)  # the rest come from the head of the queue
    assert np.mean([e.score for e in control]) < 0.8  # the control slice is spread over the whole queue
    # The server records which leases were control: the client need not (and cannot) say so.
    svc.submit(control[0].id, labeler_id="ann", label=1)
    ranked = next(e for e in leased if not e.control)
    svc.submit(ranked.id, labeler_id="ann", label=1)
    assert [decode_label(m.value).control for m in bus.messages(topics.labels)] == [True, False]

    # A labeler who skipped the head of the queue still gets the next items (the lease reads on past them).
    head = LabelService(RankedQueue(redis_client, QueueKeys(namespace + "h")), bus, topics, explore=0.0)
    head.queue.add([f"i{k}" for k in range(n)], np.arange(n, dtype=float) / n, np.zeros((n, 2), dtype=np.float32))
    head.queue.set_meta(ranked_version=1)
    for e in head.lease(30, "cat"):
        head.skip(e.id, "cat")
    assert [e.score for e in head.lease(10, "cat")] == pytest.approx([r / n for r in range(969, 959, -1)])
    assert [e.score for e in head.lease(1, "dan")] == pytest.approx([0.999])  # others still get the head

    cur = LabelService(RankedQueue(redis_client, QueueKeys(namespace + "c")), bus, topics, curriculum_labels=100)
    cur.queue.add([f"i{k}" for k in range(n)], np.arange(n, dtype=float) / n, np.zeros((n, 2), dtype=np.float32))
    # Items the live model could not score are ranked -1 (activestream.scorer.scoring.rerank_scores): not the easy end.
    cur.queue.add([f"u{k}" for k in range(30)], np.full(30, -1.0), np.zeros((30, 2), dtype=np.float32))
    cur.queue.set_meta(ranked_version=1)
    first = cur.lease(10, "ann")
    assert 0 <= min(e.score for e in first) and max(e.score for e in first) < 0.05  # the easy (confident) end first
    for e in first:
        cur.submit(e.id, labeler_id="ann", label=0)
    for _ in range(9):
        for e in cur.lease(10, "ann"):
            cur.submit(e.id, labeler_id="ann", label=0)
    assert min(e.score for e in cur.lease(10, "ann")) > 0.95  # then the uncertain head


def test_cold_lease_is_the_head_of_the_random_order_for_every_strategy(redis_client: redis.Redis, namespace: str) -> None:
    # Before the first model, neither the control slice nor k-center batching may change the
    # first labels: every strategy (and every peer in the benchmark) starts from the same ones.
    rng = np.random.default_rng(5)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{k}" for k in range(300)], rng.uniform(size=300), rng.normal(size=(300, 4)).astype(np.float32))
    head = [c for c, _ in queue.top(20)]
    svc = make_label_service(Strategy("margin+kcenter", 0), queue, InMemoryBus(), Topics("x"), explore=0.5)
    first = svc.lease(20, "ann")
    assert [e.id for e in first] == head and not any(e.control for e in first)
    queue.set_meta(ranked_version=1)  # ranked from now on: half the next batch is the control slice
    assert sum(e.control for e in svc.lease(10, "ann")) == 5


def test_a_lease_during_the_first_rerank_is_still_cold(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    # The scorer records the new model version before its re-rank runs; until the swap that
    # installs the ranking, the queue is still in its random order and a lease must treat it so.
    X, y = digits
    loop = Loop(redis_client, namespace)
    loop.enqueue(X[:400])
    loop.label(20, y)
    other = make_label_service(Strategy("margin+kcenter", 0), loop.queue, loop.bus, loop.topics, explore=0.5)
    seen: dict[str, object] = {}
    rerank = loop.queue.rerank

    def leasing_rerank(*args: object, **kw: object) -> int | None:
        head = [c for c, _ in loop.queue.top(10)]
        seen["version"] = loop.queue.get_meta("model_version")
        seen["leased"] = other.lease(10, "bob")
        seen["head"] = head
        return rerank(*args, **kw)  # type: ignore[arg-type]

    loop.queue.rerank = leasing_rerank  # type: ignore[method-assign]
    loop.cycle()
    leased = seen["leased"]
    assert seen["version"] == "1" and loop.queue.ranked_version() == 1
    assert [e.id for e in leased] == seen["head"] and not any(e.control for e in leased)  # type: ignore[attr-defined]


def test_representative_cold_start_covers_the_clusters_until_a_model_is_live(redis_client: redis.Redis, namespace: str) -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    # 600 items in 3 tight blobs; the (random cold-start) scores favour blob 0 entirely.
    X = np.vstack([c + rng.normal(0.0, 0.5, size=(200, 2)) for c in centers]).astype(np.float32)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{k}" for k in range(600)], np.r_[np.full(200, 0.9), np.full(400, 0.1)] + rng.uniform(0, 0.01, 600), X)
    svc = LabelService(queue, InMemoryBus(), Topics("x"), cold_start="representative", seed=3)
    assert svc.lease(0, "ann") == []
    first = svc.lease(3, "ann")
    assert sorted(int(e.id[1:]) // 200 for e in first) == [0, 1, 2]  # one per blob, not the 3 best scores
    queue.set_meta(ranked_version=1)  # a model has ranked the queue: leases follow the ranking again
    assert all(int(e.id[1:]) < 200 for e in svc.lease(3, "ann"))
    with pytest.raises(ValueError, match="cold_start"):
        LabelService(queue, InMemoryBus(), Topics("x"), cold_start="clever")


def test_auto_accept_and_stream_budget_route_items(redis_client: redis.Redis, namespace: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    from activestream.retrainer.export import to_onnx
    from activestream.retrainer.trainer import Trainer
    from activestream.schemas import ModelVersion
    from activestream.scorer.budget import VariableUncertainty
    from activestream.scorer.routing import Router
    from activestream.streams.topics import MODEL_KEY

    X, y = digits
    loop = Loop(redis_client, namespace)
    heads = Trainer().fit(X[:600], list(y[:600]))
    blob = to_onnx(heads)
    mv = ModelVersion(1, blob, ModelVersion.digest(blob), heads.classes, metrics={"auto_accept_threshold": 0.95})
    loop.bus.publish(loop.topics.models, mv.encode(), key=MODEL_KEY)
    loop.scorer.poll_models()
    assert loop.scorer.router.auto_threshold == 0.95
    loop.enqueue(X[600:800], start=600)
    autos = [decode_label(m.value) for m in loop.bus.messages(loop.topics.auto_labels)]
    conf = heads.predict_proba(X[600:800]).max(axis=1)
    assert len(autos) == int((conf >= 0.95).sum()) > 0
    audits = loop.queue.r.hlen(loop.queue.k.audit)  # (the audited share of the auto-labeled: queued too, for labelers blind)
    assert 0 < audits < len(autos) / 10 and loop.queue.depth() == 200 - len(autos) + audits  # the rest went to humans
    assert all(a.source == "auto" and a.label == heads.classes[int(heads.predict_proba(X[int(a.item_id)][None]).argmax())] for a in autos)

    # A labels-per-hour budget far below the arrival rate admits only a small share.
    budgeted = Loop(redis_client, namespace + "b")
    budgeted.scorer.labels_per_hour = 3600.0  # 1 label/s
    budgeted.scorer.router = Router(budget=VariableUncertainty(budget=1.0))
    budgeted.bus.publish(budgeted.topics.models, mv.encode(), key=MODEL_KEY)
    budgeted.scorer.poll_models()
    budgeted.produce(X[:1500])
    budgeted.scorer.run(burst=True, timeout=0.0)
    admitted = budgeted.queue.depth() - budgeted.queue.r.hlen(budgeted.queue.k.audit)  # (less the audits: see above)
    assert budgeted.scorer.refused > 0 and admitted + budgeted.scorer.refused + budgeted.scorer.auto_accepted == 1500
    m = budgeted.scorer.metrics
    assert (m.items_over_budget._value.get(), m.items_auto_accepted._value.get()) == (budgeted.scorer.refused, budgeted.scorer.auto_accepted)
    assert admitted < 1500 * 0.5


def test_multilabel_queue_ranked_by_uncertainty_and_cardinality(redis_client: redis.Redis, namespace: str) -> None:
    from sklearn.datasets import make_multilabel_classification

    from activestream.scorer.uncertainty import multilabel_adaptive

    X, Y = make_multilabel_classification(n_samples=300, n_features=8, n_classes=4, n_labels=2, random_state=3)
    loop = Loop(redis_client, namespace)
    loop.enqueue(X.astype(np.float32))
    for e in loop.labeling.lease(40, "ann"):
        tags = [f"t{k}" for k in np.flatnonzero(Y[int(e.id)])]
        loop.labeling.submit(e.id, labeler_id="ann", labels=tags, label_id=f"L-{e.id}")
    loop.cycle()
    labeled = loop.retrainer.published[-1]
    want_card = float(np.mean([len(lab.labels or ()) for lab in loop.retrainer.training.items.values()]))
    assert labeled.metrics["label_cardinality"] == pytest.approx(want_card)
    assert loop.scorer.label_cardinality == pytest.approx(want_card)
    ranking = loop.queue.ranking()
    ids = [int(i) for i, _ in ranking]
    expected = multilabel_adaptive(loop.scorer.model.predict_proba_many(X[ids].astype(np.float32)), want_card)
    np.testing.assert_allclose([s for _, s in ranking], expected, atol=1e-6)


def test_many_campaigns_on_one_client_give_their_connections_back(redis_url: str) -> None:
    from sklearn.datasets import make_classification

    from activestream.simulation.campaign import SimConfig, run_campaign
    from activestream.simulation.datasets import from_arrays

    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    ds = from_arrays("small", X, y)
    client = redis.Redis.from_url(redis_url, max_connections=6)  # (redis-py's default pool holds 100)
    cfg = SimConfig(budget=40, batch=10, init=20, seeds=(0,), strategies=("margin+kcenter",), workers=1)
    for seed in range(8):  # each campaign used to keep the scorer's writer connection
        assert run_campaign(ds, "margin+falcun" if seed % 2 else "margin+kcenter", seed, cfg, client).curve[-1][0] == 40


def test_labels_take_the_campaigns_type_or_are_refused_while_queued(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.service import InvalidLabel

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.3, 0.2, 0.1]), np.zeros((3, 2), dtype=np.float32))
    bus, topics = InMemoryBus(), Topics("k")
    svc = LabelService(queue, bus, topics)
    assert svc.submit("a", labeler_id="ann", label=3)  # the first label: this campaign's classes are integers
    assert svc.submit("b", labeler_id="bob", label="4")  # converts: the retrainer folds it as 4
    with pytest.raises(InvalidLabel, match="item 'c': field 'label': this campaign's labels are integers"):
        svc.submit("c", labeler_id="bob", label="cat")
    assert queue.depth() == 1 and len(bus.messages(topics.labels)) == 2  # "c" is still queued, nothing published for it
