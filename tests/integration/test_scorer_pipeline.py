"""The scorer's pipelined writes and commit policy: offsets move only past items written to Redis."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import Trainer
from activestream.schemas import Item, decode_dead_letter
from activestream.scorer.model import OnnxClassifier
from activestream.scorer.service import MAX_INFLIGHT, Scorer
from activestream.scorer.strategies import Strategy
from activestream.scorer.uncertainty import margin
from activestream.streams.bus import CommitAborted
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import SCORER_GROUP, Topics

pytestmark = pytest.mark.integration


def make(redis_client: redis.Redis, namespace: str, n: int, **kw: object) -> tuple[InMemoryBus, Topics, RankedQueue, Scorer, np.ndarray]:
    bus, topics = InMemoryBus(), Topics("p")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    for i in range(n):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    return bus, topics, queue, Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, **kw), X  # type: ignore[arg-type]


def test_offsets_follow_the_writes(redis_client: redis.Redis, namespace: str) -> None:
    n = 100 * (MAX_INFLIGHT + 2)
    bus, topics, queue, scorer, _ = make(redis_client, namespace, n, commit_interval=0.0)
    for _ in range(MAX_INFLIGHT):
        assert scorer.score_items(0.0) == 100
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == n  # all sent, none confirmed: nothing committed
    assert scorer.score_items(0.0) == 100  # one too many in flight: the oldest is confirmed first
    assert queue.depth() >= 100 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == n - 100
    scorer.flush()
    assert queue.depth() == n - 100 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 100
    assert scorer.run(burst=True, timeout=0.0) == 100
    assert queue.depth() == n and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0


def test_commits_wait_for_the_interval(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 100 * (MAX_INFLIGHT + 1), commit_interval=3600.0)
    for _ in range(MAX_INFLIGHT + 1):
        scorer.score_items(0.0)
    assert queue.depth() >= 100 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 100 * (MAX_INFLIGHT + 1)  # confirmed, commit deferred
    scorer.flush()
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0


def test_a_failed_write_commits_nothing_from_there_on(redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 300, commit_interval=0.0)

    class Broken:
        def result(self) -> int:
            raise redis.ConnectionError("Redis went away")

    real = queue.add_nowait
    writes = iter([real, lambda *a, **k: Broken(), real])  # batch 2's write fails, batch 3's would not
    monkeypatch.setattr(queue, "add_nowait", lambda *a, **k: next(writes)(*a, **k))
    with pytest.raises(redis.ConnectionError):
        for _ in range(4):
            scorer.score_items(0.0)  # batch 1 is confirmed and committed, then confirming batch 2 fails
    scorer.flush()  # e.g. on close: batch 3 (if it was sent) must not commit past batch 2
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 200  # batches 2 and 3 are redelivered
    with pytest.raises(RuntimeError, match="restart the scorer"):
        scorer.score_items(0.0)  # it consumed past batch 2: carrying on would commit past it


def test_an_interrupt_while_abandoning_commits_nothing_after_the_failure(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 400, commit_interval=0.0)

    class Broken:
        def result(self) -> int:
            raise redis.ConnectionError("Redis went away")

    class Interrupted:
        def result(self) -> int:
            raise KeyboardInterrupt  # e.g. Ctrl-C while a hung Redis is read back

    real = queue.add_nowait
    writes = iter([real, lambda *a, **k: Broken(), lambda *a, **k: Interrupted(), real])
    monkeypatch.setattr(queue, "add_nowait", lambda *a, **k: next(writes)(*a, **k))
    with pytest.raises((KeyboardInterrupt, redis.ConnectionError)):
        for _ in range(5):
            scorer.score_items(0.0)
    scorer.close()  # flushes: only batch 1 is known to be written
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 300


def test_new_model_reranks_after_the_writes_in_flight(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, X = make(redis_client, namespace, 250)
    assert scorer.score_items(0.0) == 100  # in flight when the model arrives
    y = (X[:, 0] > 0).astype(int)
    heads = Trainer().fit(X, list(y))
    model = OnnxClassifier(to_onnx(heads))
    assert scorer.swap(model, 1, "multiclass", [0, 1]) == 100
    assert queue.get_meta_fields("classes", "task") == {"classes": "[0, 1]", "task": "multiclass"}  # (for the labeling page)
    scorer.run(burst=True, timeout=0.0)
    ranking = dict(queue.ranking())
    assert len(ranking) == 250 and queue.ranked_version() == 1
    want = margin(model.predict_proba_many(X))
    assert [ranking[f"i{i}"] for i in range(250)] == pytest.approx(want.tolist())
    assert scorer.rerank() == 0  # already ranked by this version (e.g. after a restart)


def test_a_failed_commit_is_not_retried_without_its_dead_letters(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, topics, queue, scorer, _ = make(redis_client, namespace, 100, commit_interval=0.0)
    bus.publish(topics.items, b"not an item", key=b"bad")  # batch 2: a dead letter
    assert scorer.score_items(0.0) == 100
    scorer.flush()
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 1

    def aborted(*a: object, **k: object) -> None:
        raise RuntimeError("transaction aborted")

    monkeypatch.setattr(bus, "publish_and_commit", aborted)
    with pytest.raises(RuntimeError, match="aborted"):
        scorer.score_items(0.0)
        scorer.flush()  # the dead letter and its offset go out together, or not at all
    monkeypatch.undo()
    scorer.close()  # must not commit the offset without the dead letter
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 1 and not bus.messages(topics.dead_letters)


def test_a_rolled_back_commit_reads_again_from_the_committed_offsets(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebalance during the transaction that carries a batch's dead letters and offsets rolls
    # it back. The scorer must carry on (not stop), and at no moment may the committed offset
    # be past a bad item whose dead letter is not out: a crash then would lose it.
    bus, topics, queue = InMemoryBus(partitions=2), Topics("p"), RankedQueue(redis_client, QueueKeys(namespace))
    X = np.random.default_rng(0).standard_normal((900, 8)).astype(np.float32)
    for i in range(900):
        if i % 40 == 7:  # every 100-item batch carries dead letters: every commit is a transaction
            bus.publish(topics.items, b"not an item", key=f"b{i}".encode())
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    bad_at = {(m.partition, m.offset): m.key.decode() for m in bus.messages(topics.items) if m.value == b"not an item"}  # type: ignore[union-attr]
    assert {p for p, _ in bad_at} == {0, 1}
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, commit_interval=0.0)
    real, calls = bus.publish_and_commit, []

    def flaky(consumer: object, records: list, messages: list) -> None:
        calls.append(len(records))
        if len(calls) == 3:  # the third transaction: batches after it are already in flight
            raise CommitAborted("Kafka transaction aborted (ILLEGAL_GENERATION)", rolled_back=True, group_moved=True)
        real(consumer, records, messages)  # type: ignore[arg-type]

    monkeypatch.setattr(bus, "publish_and_commit", flaky)

    def dead_letter_ids() -> list[str]:
        return [decode_dead_letter(m.value).item_id for m in bus.messages(topics.dead_letters)]

    for _ in range(40):
        scorer.score_items(0.0)
        committed = [bus._committed[("scorer", topics.items, p)] for p in range(2)]
        missing = {item for (p, offset), item in bad_at.items() if offset < committed[p]} - set(dead_letter_ids())
        assert not missing, f"offsets committed past {sorted(missing)} without their dead letters"
    scorer.close()
    assert scorer.rewinds == 1 and len(calls) > 3
    assert bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0
    assert sorted(dead_letter_ids()) == sorted(bad_at.values())  # each once: none lost, none twice
    assert queue.depth() == 900
    # The batches read twice are counted once: counters move when offsets commit.
    assert scorer.dead_letters == len(bad_at) == scorer.metrics.dead_letters.labels(source=topics.items, reason="message")._value.get()
    m = scorer.metrics
    # Each record counts once; those the rolled-back read had queued are duplicates when read again.
    assert m.items_enqueued._value.get() == 900 == m.items_scored._value.get() + m.items_duplicate._value.get()
    assert m.items_read._value.get() == 900 + len(bad_at)


def test_an_item_the_model_overflows_on_is_a_dead_letter_not_a_stuck_stream(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, X = make(redis_client, namespace, 99)
    huge = np.array([3e38, -3e38] + [1.0] * 6, dtype=np.float32)  # finite, so the schema accepts it
    bus.publish(topics.items, Item("huge", huge).encode(binary=True), key=b"huge")
    heads = Trainer().fit(X, list((X[:, 0] > 0).astype(int)))
    model = OnnxClassifier(to_onnx(heads))
    assert not np.isfinite(model.predict_proba_many(huge[None, :])).all()
    scorer.swap(model, 1)
    assert scorer.run(burst=True, timeout=0.0) == 100
    assert queue.depth() == 99 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0
    (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
    assert (dl.item_id, dl.field) == ("huge", "features") and "non-finite probabilities" in dl.reason


def test_a_pending_item_the_new_model_overflows_on_is_ranked_last(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, X = make(redis_client, namespace, 99)
    huge = np.array([3e38, -3e38] + [1.0] * 6, dtype=np.float32)
    bus.publish(topics.items, Item("huge", huge).encode(binary=True), key=b"huge")
    scorer.run(burst=True, timeout=0.0)  # no model yet: random scores, all 100 queued
    assert queue.depth() == 100
    model = OnnxClassifier(to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int)))))
    assert scorer.swap(model, 1) == 100  # the re-rank goes through instead of failing on every attempt
    ranking = queue.ranking()
    assert queue.ranked_version() == 1 and ranking[-1] == ("huge", -1.0)


def test_a_refused_model_changes_nothing_and_is_a_dead_letter(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.schemas import ModelVersion
    from activestream.streams.topics import MODEL_KEY

    bus, topics = InMemoryBus(), Topics("refused")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = list((X[:, 0] > 0).astype(int))

    def version(v: int, Xf: np.ndarray, threshold: float | None) -> bytes:
        blob = to_onnx(Trainer().fit(Xf, y))
        metrics = {} if threshold is None else {"auto_accept_threshold": threshold}
        return ModelVersion(version=v, onnx=blob, sha256=ModelVersion.digest(blob), classes=(0, 1), metrics=metrics).encode()

    scorer = Scorer(bus, queue, topics, batch_size=100)
    try:
        bus.publish(topics.models, version(1, X, None), MODEL_KEY)  # 8 features, no auto-accept yet
        scorer.poll_models(0.0)
        bus.publish(topics.models, version(2, X[:, :5], 0.0), MODEL_KEY)  # 5 features: refused, with a threshold that accepts all
        assert scorer.poll_models(0.0) is False
        assert (scorer.model_version, scorer.router.auto_threshold) == (1, None)
        (dl,) = [decode_dead_letter(m.value) for m in bus.messages(topics.dead_letters)]
        assert dl.item_id == "model v2" and "expects 5 features, items have 8" in dl.reason
        for i in range(100):
            bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
        scorer.run(burst=True, timeout=0.0)
        assert queue.depth() == 100 and not bus.messages(topics.auto_labels)  # v1's routing: every item queued
    finally:
        scorer.close()


def _model_version(v: int, X: np.ndarray, threshold: float | None) -> bytes:
    """A model version message for 8-feature items (``threshold``: its auto_accept_threshold)."""
    from activestream.schemas import ModelVersion

    blob = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    metrics = {} if threshold is None else {"auto_accept_threshold": threshold}
    return ModelVersion(version=v, onnx=blob, sha256=ModelVersion.digest(blob), classes=(0, 1), metrics=metrics).encode()


def _queued_and_auto_labeled(bus: InMemoryBus, topics: Topics, queue: RankedQueue) -> tuple[set[str], list[str]]:
    from activestream.schemas import decode_label

    queued = set(queue.pending_ids())
    return queued, [decode_label(m.value).item_id for m in bus.messages(topics.auto_labels)]


def test_an_item_queued_before_a_rolled_back_commit_is_not_auto_labeled_on_the_second_read(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue writes are not part of the transaction that commits the offsets. A batch queued
    # under a model without auto-accept, rolled back, then read again after a model whose
    # threshold accepts it went live, must not be auto-labeled twice: the queue's first write wins (the
    # new version's re-rank auto-labels the items it queued; the second read finds them taken).
    from activestream.streams.topics import MODEL_KEY

    bus, topics, queue, scorer, X = make(redis_client, namespace, 200, commit_interval=3600.0, audit_share=0.0)
    bus.publish(topics.models, _model_version(1, X, None), MODEL_KEY)
    scorer.poll_models(0.0)
    assert scorer.score_items(0.0) == 100  # i0..i99 queued by v1, offsets not committed yet
    real, aborted = bus.publish_and_commit, []

    def flaky(consumer: object, records: list, messages: list) -> None:
        if consumer is not None and not aborted:
            aborted.append(len(messages))
            raise CommitAborted("Kafka transaction aborted (ILLEGAL_GENERATION)", rolled_back=True, group_moved=True)
        real(consumer, records, messages)  # type: ignore[arg-type]

    monkeypatch.setattr(bus, "publish_and_commit", flaky)
    bus.publish(topics.models, _model_version(2, X, 0.0), MODEL_KEY)  # accepts every item
    scorer.run(burst=True, timeout=0.0)  # swap (its flush's commit is rolled back), then i0..i199 again
    scorer.close()
    assert aborted and scorer.rewinds == 1 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 0
    queued, auto = _queued_and_auto_labeled(bus, topics, queue)
    assert queued == set() and scorer.metrics.items_auto_accepted_at_rerank._value.get() == 100
    assert sorted(auto) == sorted(f"i{i}" for i in range(200))  # each once: i0..i99 at the re-rank, the others on the stream
    # (counted once, though read twice: the queued ones as duplicates, their first read was not counted)
    assert scorer.auto_accepted == 100 and scorer.metrics.items_duplicate._value.get() == 100
    assert scorer.metrics.items_auto_accepted._value.get() == 100 and scorer.metrics.items_read._value.get() == 200


def test_an_item_queued_before_a_restart_is_not_auto_labeled_after_it(redis_client: redis.Redis, namespace: str) -> None:
    # A crash between the queue write and the offset commit redelivers the batch; a model that
    # auto-accepts it went live meanwhile. The restarted scorer must leave it to the queue.
    from activestream.streams.topics import MODEL_KEY

    bus, topics, queue, first, X = make(redis_client, namespace, 200, commit_interval=3600.0)
    assert first.score_items(0.0) == 100  # no model: i0..i99 queued at random scores
    first._finish_write()  # written to Redis; the crash comes before the commit
    assert queue.depth() == 100 and bus.lag(topics.items, topics.group(SCORER_GROUP)) == 200
    bus.publish(topics.models, _model_version(1, X, 0.0), MODEL_KEY)
    restarted = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, audit_share=0.0)
    restarted.poll_models(to_end=True)
    restarted.run(burst=True, timeout=0.0)
    restarted.close()
    queued, auto = _queued_and_auto_labeled(bus, topics, queue)
    assert queued == set()  # the queued ones auto-labeled at the new version's re-rank; their records again are duplicates
    assert sorted(auto) == sorted(f"i{i}" for i in range(200))
    assert restarted.auto_accepted == 100


def test_a_rerank_ranks_last_the_items_the_model_cannot_read(redis_client: redis.Redis, namespace: str) -> None:
    # Items of another width in the queue (written by a scorer configured with another
    # ACTIVESTREAM_N_FEATURES) must not make every re-rank fail, and with it every model swap.
    bus, topics, queue, scorer, X = make(redis_client, namespace, 100)
    scorer.run(burst=True, timeout=0.0)
    queue.add(["odd"], np.array([0.99]), np.ones((1, 5), dtype=np.float32))
    model = OnnxClassifier(to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int)))))
    assert scorer.swap(model, 1) == 101 and queue.ranked_version() == 1
    assert queue.score_of("odd") == -1.0 and min(s for i, s in queue.ranking() if i != "odd") >= 0


def test_a_scorer_refuses_a_feature_count_its_namespace_does_not_hold(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics, queue, scorer, X = make(redis_client, namespace, 100)
    scorer.run(burst=True, timeout=0.0)  # the first items fix 8 features for the namespace
    with pytest.raises(ValueError, match=r"n_features=5, but this queue namespace holds items of 8 features"):
        Scorer(bus, queue, topics, n_features=5)
    assert Scorer(bus, queue, topics, n_features=8).n_features == 8
    fresh = RankedQueue(redis_client, QueueKeys(namespace + "-new"))
    Scorer(bus, fresh, topics, n_features=5)
    assert fresh.get_meta("n_features") == "5"  # recorded: a scorer without the setting enforces it too


def test_a_rerank_ranks_last_the_items_a_model_of_unnamed_width_cannot_read(redis_client: redis.Redis, namespace: str) -> None:
    # A model whose input width is symbolic (n_features None) reads the namespace's width:
    # an item of another width must go last, not fail the re-rank and the swap with it.
    import onnx

    bus, topics, queue, scorer, X = make(redis_client, namespace, 100)
    scorer.run(burst=True, timeout=0.0)
    queue.add(["odd"], np.array([0.99]), np.ones((1, 5), dtype=np.float32))
    graph = onnx.load_from_string(to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int)))))
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "n_features"
    model = OnnxClassifier(graph.SerializeToString())
    assert model.n_features is None
    assert scorer.swap(model, 1) == 101 and queue.ranked_version() == 1
    assert queue.score_of("odd") == -1.0 and min(s for i, s in queue.ranking() if i != "odd") >= 0


def test_a_scorer_refuses_a_feature_count_its_namespace_holds_items_of_another_without_recording_it(redis_client: redis.Redis, namespace: str) -> None:
    # Items written without the width recorded (a scorer given n_features before it recorded
    # it, or RankedQueue.add): their stored rows say what the namespace holds.
    bus, topics, queue = InMemoryBus(), Topics("p"), RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.5, 0.4]), np.ones((2, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"n_features=5, but this queue namespace holds items of 8 features"):
        Scorer(bus, queue, topics, n_features=5)
    assert queue.get_meta("n_features") is None  # not recorded by the scorer refused
    assert Scorer(bus, queue, topics, n_features=8).n_features == 8 and queue.get_meta("n_features") == "8"


def test_the_live_versions_stop_signal_is_kept_with_the_queue(redis_client: redis.Redis, namespace: str) -> None:
    # (the labeling page's stop banner reads it from GET /status)
    import json

    from prometheus_client import CollectorRegistry

    from activestream.schemas import ModelVersion
    from activestream.streams.topics import MODEL_KEY

    registry = CollectorRegistry()
    bus, topics, queue, scorer, X = make(redis_client, namespace, 50, registry=registry)
    blob = to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))
    fired = {"stop": 1.0, "stop_stable_predictions_version": 3.0, "stop_stable_predictions_n_labels": 505.0,
             "stop_budget_version": 5.0, "stop_budget_n_labels": 900.0}
    bus.publish(topics.models, ModelVersion(version=5, onnx=blob, sha256=ModelVersion.digest(blob), classes=(0, 1), metrics=fired).encode(), MODEL_KEY)
    assert scorer.poll_models(0.0)
    assert json.loads(queue.get_meta("stop") or "null") == {
        "version": 5, "should_stop": True, "first": "stable_predictions",
        "fired": {"stable_predictions": {"version": 3.0, "n_labels": 505.0}, "budget": {"version": 5.0, "n_labels": 900.0}}}
    # (every metric carries the campaign: the queue's namespace)
    assert registry.get_sample_value("activestream_scorer_model_version", {"namespace": namespace}) == 5.0
    # (and GET /campaign reads the live version's whole record from it)
    record = json.loads(queue.get_meta("campaign") or "null")
    assert (record["version"], record["metrics"]) == (5, fired)
    scorer.close()


@pytest.mark.parametrize("capacity", [1000, None])  # (without a capacity the max age was not applied at all)
def test_pending_items_age_out_while_no_new_items_arrive(redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch,
                                                         capacity: int | None) -> None:
    # (ACTIVESTREAM_POOL_MAX_AGE evicted only when a batch came: 119,880 items stayed pending past their age on a quiet stream)
    from activestream.rankedqueue.pool import PoolLimits
    from activestream.scorer import admission

    monkeypatch.setattr(admission, "AGE_EVICT_SECONDS", 0.0)
    bus, topics = InMemoryBus(), Topics("age")
    queue = RankedQueue(redis_client, QueueKeys(namespace), pool=PoolLimits(capacity, 0, 0.5))
    X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    for i in range(20):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=100, commit_interval=0.0)
    assert scorer.score_items(0.0) == 20
    scorer.flush()
    assert queue.depth() == 20
    time.sleep(1.5)
    assert scorer.score_items(0.0) == 0  # (nothing new: an idle poll)
    assert queue.depth() == 0
