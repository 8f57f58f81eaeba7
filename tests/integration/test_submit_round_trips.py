"""Round trips to Redis per accepted label (issue 23: ``submit``'s latency is mostly waiting on Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.connection import Connection

from activestream.labeling.service import LabelService, LeasedToAnother
from activestream.rankedqueue import QueueKeys, RankedQueue
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
