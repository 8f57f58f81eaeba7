"""Round trips to Redis per accepted label (issue 23: ``submit``'s latency is mostly waiting on Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.connection import Connection

from activestream.labeling.service import Answer, InvalidLabel, LabelService, LeasedToAnother, UnknownItem
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import decode_label
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

SUBMIT_ROUND_TRIPS = 3  # facts with the features; expire, claim and holder after the claim; mark labeled with the last label
LEASE_ROUND_TRIPS = 6  # clock with the ranked version; expire; top; skipped; claim; features with the metadata (+ audits once ranked)


class RoundTrips:
    """Counts what redis-py sends: one ``send_packed_command`` per round trip (a pipeline sends all its commands in one)."""

    def __init__(self) -> None:
        self.n = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips()
    send = Connection.send_packed_command

    def counted(self: Connection, command: object, check_health: bool = True) -> None:
        counter.n += 1
        send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    yield counter


def _service(redis_client: redis.Redis, namespace: str, n: int) -> LabelService:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{j}" for j in range(n)], np.linspace(0.1, 0.9, n), np.random.default_rng(0).random((n, 4)).astype(np.float32))
    return LabelService(queue, InMemoryBus(), Topics(namespace))


def test_a_label_takes_a_fixed_few_round_trips(redis_client: redis.Redis, namespace: str, round_trips: RoundTrips) -> None:
    service = _service(redis_client, namespace, 8)
    leased = [x.id for x in service.lease(4, "alice")]
    assert service.submit(leased[0], labeler_id="alice", label=1)  # (loads the scripts, fixes the campaign's shape)
    for item_id in leased[1:]:
        before = round_trips.n
        assert service.submit(item_id, labeler_id="alice", label=0, label_id=f"l-{item_id}")
        assert round_trips.n - before == SUBMIT_ROUND_TRIPS
    before = round_trips.n
    assert not service.submit(leased[1], labeler_id="alice", label=0, label_id=f"l-{leased[1]}")  # a retry: one round trip
    assert round_trips.n - before == 1


def test_the_checks_still_hold_with_the_facts_read_up_front(redis_client: redis.Redis, namespace: str) -> None:
    service = _service(redis_client, namespace, 4)
    (item,) = service.lease(1, "alice")
    with pytest.raises(LeasedToAnother, match="'bob'"):
        service.submit(item.id, labeler_id="bob", label=1)
    assert service.queue.lease_holder(item.id) == "alice"
    assert service.submit(item.id, labeler_id="alice", label=1)
    (other,) = service.lease(1, "alice")
    with pytest.raises(ValueError, match="this campaign's answers come as 'label'"):
        service.submit(other.id, labeler_id="alice", labels=[1, 2])
    assert service.queue.lease_holder(other.id) == "alice"  # (still leased: nothing changed)


def test_a_label_for_an_item_whose_lease_ran_out_is_taken_and_claimed(redis_client: redis.Redis, namespace: str) -> None:
    service = _service(redis_client, namespace, 4)
    (item,) = service.queue.claim(["i3"], "bob", 1.0, now=service.queue.now() - 10.0)  # (bob's lease ran out 9 s ago)
    assert item[0] == "i3" and service.queue.lease_holder("i3") is None
    assert service.submit("i3", labeler_id="alice", label=1)
    assert service.queue.is_labeled("i3") and service.queue.n_leased_by("bob") == 0


def test_a_label_after_the_scripts_are_flushed_still_goes_through_every_step(redis_client: redis.Redis, namespace: str) -> None:
    service = _service(redis_client, namespace, 4)
    leased = [x.id for x in service.lease(2, "alice")]
    assert service.submit(leased[0], labeler_id="alice", label=1)
    redis_client.script_flush()  # (as a restarted Redis: the pipelined EVALSHAs get NOSCRIPT)
    assert service.submit(leased[1], labeler_id="alice", label=0, label_id="l1")
    assert service.queue.is_labeled(leased[1]) and service.queue.is_label_id_known("l1")
    assert service.queue.n_leased_by("alice") == 0 and service.last_label("alice").label_id == "l1"  # type: ignore[union-attr]
    redis_client.script_flush()
    (item,) = service.lease(1, "carol")
    assert item.features is not None and item.features.shape == (4,)


@pytest.mark.parametrize("ranked", [False, True])
def test_a_lease_takes_a_fixed_few_round_trips(redis_client: redis.Redis, namespace: str, round_trips: RoundTrips, ranked: bool) -> None:
    service = _service(redis_client, namespace, 30)
    if ranked:
        service.queue.set_meta(ranked_version=1)
    service.lease(2, "alice")  # (loads the scripts)
    before = round_trips.n
    leased = service.lease(10, "bob")
    assert round_trips.n - before == LEASE_ROUND_TRIPS + ranked
    assert len(leased) == 10 and all(x.features is not None and x.features.shape == (4,) for x in leased)


def test_a_batch_of_labels_takes_the_round_trips_of_one(redis_client: redis.Redis, namespace: str, round_trips: RoundTrips) -> None:
    service = _service(redis_client, namespace, 12)
    leased = [x.id for x in service.lease(11, "alice")]
    assert service.submit(leased[0], labeler_id="alice", label=1)  # (loads the scripts, fixes the campaign's shape)
    before = round_trips.n
    outcomes = service.submit_many([Answer(i, label=j % 2, label_id=f"l-{i}") for j, i in enumerate(leased[1:])], labeler_id="alice")
    assert outcomes == [True] * 10
    assert round_trips.n - before == SUBMIT_ROUND_TRIPS
    assert all(service.queue.is_labeled(i) for i in leased) and service.last_label("alice").label_id == f"l-{leased[-1]}"  # type: ignore[union-attr]


def _outcomes(service: LabelService, answers: list[Answer], batched: bool) -> list[object]:
    """Each answer's outcome (True/False, or the error's type and message), one :meth:`submit` at a time or in one batch."""
    if batched:
        return [(type(o).__name__, str(o)) if isinstance(o, Exception) else o for o in service.submit_many(answers, labeler_id="alice")]
    out: list[object] = []
    for a in answers:
        try:
            out.append(service.submit(a.item_id, labeler_id="alice", label=a.label, labels=a.labels, seconds=a.seconds, label_id=a.label_id))
        except (InvalidLabel, UnknownItem, LeasedToAnother) as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


def test_a_batch_decides_each_answer_as_one_submit_after_another_would(redis_client: redis.Redis, namespace: str) -> None:
    answers = [
        Answer("i0", label=1, label_id="a"),
        Answer("i9", label=0, label_id="z"),  # a correction of the labeler's last label before the batch: after another answer, refused
        Answer("i1", label=0, label_id="a"),  # a label id repeated: a retry
        Answer("i2", label=1, labels=[1], label_id="b"),  # both fields
        Answer("i3", label=1, label_id="c"),  # bob holds it
        Answer("i4", label=0, label_id="d", seconds=-1.0),  # negative seconds
        Answer("i5", label=1, label_id="e"),
        Answer("i5", label=0, label_id="f"),  # the same item again: a correction of the answer before it
        Answer("i0", label=0, label_id="g"),  # a correction of an older answer: refused
        Answer("i6", labels=[1], label_id="h"),  # the campaign's answers come as 'label'
        Answer("i7", label=1, label_id="i"),
        Answer("nowhere", label=1, label_id="j"),  # unknown
        Answer("i8", label=0, label_id="k"),
    ]
    results = []
    for batched in (False, True):
        service = _service(redis_client, f"{namespace}-{batched}", 10)
        service.queue.claim(["i3"], "bob", 60.0)
        assert service.submit("i9", labeler_id="alice", label=1, label_id="y")
        outcomes = _outcomes(service, answers, batched)
        bus = service.bus
        assert isinstance(bus, InMemoryBus)
        published = [decode_label(m.value) for m in bus.consumer([service.topics.labels], None).consume(100, 0.0)]
        state = [(i, service.queue.is_labeled(i), service.queue.lease_holder(i)) for i in (f"i{j}" for j in range(10))]
        results.append((outcomes, [(p.item_id, p.label_id, p.label, p.labels) for p in published], state,
                        service.last_label("alice").label_id))  # type: ignore[union-attr]
        service.queue.clear()
    one_by_one, batch = results
    assert batch == one_by_one
    assert [o[0] if isinstance(o, tuple) else o for o in one_by_one[0]] == [
        True, "UnknownItem", False, "InvalidLabel", "LeasedToAnother", "InvalidLabel", True, True, "UnknownItem", "InvalidLabel", True, "UnknownItem", True]


def test_an_answer_whose_fields_are_wrong_is_refused_without_a_round_trip(redis_client: redis.Redis, namespace: str,
                                                                          round_trips: RoundTrips) -> None:
    service = _service(redis_client, namespace, 2)
    before = round_trips.n
    with pytest.raises(InvalidLabel, match="give exactly one"):
        service.submit("i0", labeler_id="alice", label=1, labels=[1])
    with pytest.raises(InvalidLabel, match="'seconds'"):
        service.submit("i0", labeler_id="alice", label=1, seconds="soon")  # type: ignore[arg-type]
    assert round_trips.n == before


class RefusingBus(InMemoryBus):
    """A bus whose broker refuses the label of one item."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if key == self.refused.encode():
            raise BufferError(f"the broker refused {self.refused}")
        super().publish(topic, value, key=key)


def test_a_batch_stopped_by_an_error_keeps_the_answers_before_it(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{j}" for j in range(6)], np.linspace(0.1, 0.9, 6), np.random.default_rng(0).random((6, 4)).astype(np.float32))
    service = LabelService(queue, RefusingBus("i2"), Topics(namespace))
    service.lease(6, "alice")
    with pytest.raises(BufferError):  # a publish that fails: the labels before it went out and are taken
        service.submit_many([Answer("i0", label=1, label_id="a"), Answer("i1", label=0, label_id="b"), Answer("i2", label=1, label_id="c")],
                            labeler_id="alice")
    assert queue.is_labeled("i0") and queue.is_labeled("i1") and not queue.is_labeled("i2")
    assert service.last_label("alice").label_id == "b"  # type: ignore[union-attr]
    with pytest.raises(TypeError):  # an error no check expects (labels that are not a sequence): the answer before it is taken
        service.submit_many([Answer("i3", label=1, label_id="d"), Answer("i4", labels=5, label_id="e")], labeler_id="alice")  # type: ignore[arg-type]
    assert queue.is_labeled("i3") and not queue.is_labeled("i4") and service.last_label("alice").label_id == "d"  # type: ignore[union-attr]


def test_a_campaigns_first_batch_agrees_its_shape_once(redis_client: redis.Redis, namespace: str, round_trips: RoundTrips) -> None:
    warm = _service(redis_client, f"{namespace}-warm", 1)  # (loads the scripts: they are the server's, not a namespace's)
    assert warm.submit(warm.lease(1, "alice")[0].id, labeler_id="alice", label=1)
    warm.queue.clear()
    service = _service(redis_client, namespace, 12)
    leased = [x.id for x in service.lease(10, "alice")]
    before = round_trips.n
    assert service.submit_many([Answer(i, label=1) for i in leased], labeler_id="alice") == [True] * 10
    assert round_trips.n - before == SUBMIT_ROUND_TRIPS + 2  # (the answer field, then the label kind)
    assert service.queue.get_meta("label_field") == "label" and service.queue.get_meta("label_kind") == "integers"
