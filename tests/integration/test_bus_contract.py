"""The one contract every ``Bus`` adapter must pass: InMemoryBus and KafkaBus alike.

The Kafka cases need a real broker (``tests/kafka_fixtures.py``) and are marked
``kafka``; the in-memory cases run everywhere.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from activestream.streams.bus import Consumer, Message
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

# Kafka needs a group join (and a rebalance when a member leaves) before records flow.
WAIT = 30.0


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus_topics(request: pytest.FixtureRequest) -> tuple[Any, Topics]:
    if request.param == "memory":
        return InMemoryBus(partitions=2), Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    # Resolved only for the Kafka case, so the in-memory cases need no broker.
    return request.getfixturevalue("kafka_bus")


@pytest.fixture
def bus(bus_topics: tuple[Any, Topics]) -> Any:
    return bus_topics[0]


@pytest.fixture
def topic(bus_topics: tuple[Any, Topics]) -> str:
    bus, topics = bus_topics
    bus.ensure_topics([topics.items])
    return topics.items


def group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def publish(bus: Any, topic: str, n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(start, start + n)]
    for key, value in sent:
        bus.publish(topic, value, key=key)
    bus.flush()
    return sent


def drain(consumer: Consumer, n: int, timeout: float = WAIT, batch: int = 100) -> list[Message]:
    """Consume until ``n`` records arrived (or ``timeout``); fails on more than ``n``."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.consume(batch, 0.5))
    assert len(out) == n, f"expected {n} records, got {len(out)}"
    return out


def nothing_more(consumer: Consumer, wait: float = 1.0) -> None:
    assert consumer.consume(100, wait) == []


def pairs(msgs: list[Message]) -> set[tuple[bytes | None, bytes]]:
    return {(m.key, m.value) for m in msgs}


def test_round_trip_with_keys(bus: Any, topic: str) -> None:
    sent = publish(bus, topic, 10)
    # Two more records under one key: same partition, in publish order.
    bus.publish(topic, b"first", key=b"same")
    bus.publish(topic, b"second", key=b"same")
    bus.flush()
    c = bus.consumer([topic], group())
    try:
        got = drain(c, 12)
    finally:
        c.close()
    assert pairs(got) == set(sent) | {(b"same", b"first"), (b"same", b"second")}
    assert all(m.topic == topic and m.offset >= 0 and m.timestamp > 0 for m in got)
    same = [m for m in got if m.key == b"same"]
    assert [m.value for m in same] == [b"first", b"second"]
    assert same[0].partition == same[1].partition and same[0].offset < same[1].offset


def test_batches_respect_max_messages(bus: Any, topic: str) -> None:
    publish(bus, topic, 10)
    c = bus.consumer([topic], group())
    try:
        got: list[Message] = []
        deadline = time.monotonic() + WAIT
        while len(got) < 10 and time.monotonic() < deadline:
            batch = c.consume(3, 0.5)
            assert len(batch) <= 3
            got.extend(batch)
        assert len(got) == 10
        assert c.consume(0, 0.1) == []
    finally:
        c.close()


def test_commit_then_new_member_resumes_after_committed_offset(bus: Any, topic: str) -> None:
    sent = publish(bus, topic, 10)
    g = group()
    c1 = bus.consumer([topic], g)
    try:
        first: list[Message] = []
        deadline = time.monotonic() + WAIT
        while not first and time.monotonic() < deadline:
            first = c1.consume(4, 0.5)
        assert 1 <= len(first) <= 4
        c1.commit(first)
        c1.commit(first)  # committing again is harmless
    finally:
        c1.close()
    c2 = bus.consumer([topic], g)
    try:
        rest = drain(c2, 10 - len(first))
        nothing_more(c2)
    finally:
        c2.close()
    assert pairs(rest) == set(sent) - pairs(first)


def test_close_without_commit_redelivers_to_next_member(bus: Any, topic: str) -> None:
    sent = publish(bus, topic, 5)
    g = group()
    c1 = bus.consumer([topic], g)
    try:
        assert pairs(drain(c1, 5)) == set(sent)
    finally:
        c1.close()  # processed, never committed
    c2 = bus.consumer([topic], g)
    try:
        assert pairs(drain(c2, 5)) == set(sent)  # at-least-once: all of them again
    finally:
        c2.close()


def test_groupless_reader_sees_everything_and_commits_nothing(bus: Any, topic: str) -> None:
    sent = publish(bus, topic, 5)
    r1 = bus.consumer([topic], None)
    try:
        got = drain(r1, 5)
        r1.commit(got)  # a no-op for readers
    finally:
        r1.close()
    assert pairs(got) == set(sent)
    r2 = bus.consumer([topic], None)
    try:
        assert pairs(drain(r2, 5)) == set(sent)
    finally:
        r2.close()


def test_groupless_reader_from_end_sees_only_new_records(bus: Any, topic: str) -> None:
    publish(bus, topic, 3)
    r = bus.consumer([topic], None, from_beginning=False)
    try:
        nothing_more(r, 0.5)
        new = publish(bus, topic, 2, start=100)
        assert pairs(drain(r, 2)) == set(new)
    finally:
        r.close()


def test_a_new_group_from_the_end_sees_only_new_records(bus: Any, topic: str) -> None:
    publish(bus, topic, 3)
    c = bus.consumer([topic], group(), from_beginning=False)
    try:
        nothing_more(c, 5.0 if not isinstance(bus, InMemoryBus) else 0.5)  # (Kafka: joined and assigned, at the end)
        new = publish(bus, topic, 2, start=100)
        assert pairs(drain(c, 2)) == set(new)
    finally:
        c.close()


def test_two_groups_each_see_every_record(bus: Any, topic: str) -> None:
    sent = publish(bus, topic, 6)
    a, b = bus.consumer([topic], group()), bus.consumer([topic], group())
    try:
        assert pairs(drain(a, 6)) == set(sent)
        assert pairs(drain(b, 6)) == set(sent)
    finally:
        a.close()
        b.close()


def test_one_consumer_reads_several_topics(bus_topics: tuple[Any, Topics]) -> None:
    bus, topics = bus_topics
    bus.ensure_topics([topics.items, topics.labels])
    bus.publish(topics.items, b"i", key=b"1")
    bus.publish(topics.labels, b"l", key=b"1")
    bus.flush()
    c = bus.consumer([topics.items, topics.labels], group())
    try:
        assert {(m.topic, m.value) for m in drain(c, 2)} == {(topics.items, b"i"), (topics.labels, b"l")}
    finally:
        c.close()


def test_ensure_topics_is_idempotent(bus_topics: tuple[Any, Topics]) -> None:
    bus, topics = bus_topics
    names = topics.all()
    bus.ensure_topics(names)
    bus.ensure_topics(names)
    bus.ensure_topics([*names, names[0]])
    bus.ensure_topics([])
    bus.publish(topics.models, b"m", key=b"model")  # models may be compacted: keyed
    bus.flush()
    r = bus.consumer([topics.models], None)
    try:
        assert [m.value for m in drain(r, 1)] == [b"m"]
    finally:
        r.close()


@pytest.mark.parametrize("grp", ["group", None])
def test_consume_times_out_with_empty_list(bus: Any, topic: str, grp: str | None) -> None:
    c = bus.consumer([topic], group() if grp else None)
    try:
        t0 = time.monotonic()
        assert c.consume(10, 0.5) == []
        elapsed = time.monotonic() - t0
        assert 0.4 <= elapsed < 5.0
    finally:
        c.close()


def test_consume_returns_without_waiting_out_the_timeout(bus: Any, topic: str) -> None:
    """A batch comes back as soon as records are there, not after the full timeout."""
    publish(bus, topic, 3)
    r = bus.consumer([topic], None)
    try:
        drain(r, 3)
        publish(bus, topic, 1, start=10)
        t0 = time.monotonic()
        got = r.consume(100, 10.0)
        assert len(got) == 1 and time.monotonic() - t0 < 5.0
    finally:
        r.close()


@pytest.mark.kafka
def test_read_to_end_returns_on_a_topic_written_in_transactions(kafka_bus: tuple[Any, Topics], kafka_bus_factory: Any) -> None:
    # The scorer writes dead letters in transactions: each leaves a commit marker as the last
    # offset, which is never delivered as a record. The retrainer reads that topic to its end.
    from activestream.streams.bus import Record

    plain, topics = kafka_bus
    plain.ensure_topics([topics.dead_letters])
    txn = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"t-{uuid.uuid4().hex[:8]}")
    for i in range(3):
        txn.publish_and_commit(None, [Record(topics.dead_letters, f"dl{i}".encode(), b"k")], [])
    reader = plain.consumer([topics.dead_letters], None)
    t0 = time.monotonic()
    got = reader.read_to_end(20.0)
    reader.close()
    assert sorted(m.value for m in got) == [b"dl0", b"dl1", b"dl2"] and time.monotonic() - t0 < 15


@pytest.mark.kafka
def test_a_groupless_reader_reads_partitions_added_later(kafka_bus: tuple[Any, Topics], kafka_bus_factory: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The retrainer's labels reader runs for weeks: labels on a partition added meanwhile must reach it.
    from confluent_kafka.admin import NewPartitions

    from activestream.streams import kafka_consumer as kafka_module

    monkeypatch.setattr(kafka_module, "PARTITION_CHECK_SECONDS", 0.5)
    bus, topics = kafka_bus
    bus.ensure_topics([topics.labels])  # 2 partitions
    reader = bus.consumer([topics.labels], None)
    try:
        first = publish(bus, topics.labels, 4)
        assert pairs(drain(reader, 4)) == set(first)
        for f in bus._admin().create_partitions([NewPartitions(topics.labels, 4)]).values():
            f.result(30)
        fresh = kafka_bus_factory(prefix=topics.prefix)  # a producer that knows the 4 partitions
        later = publish(fresh, topics.labels, 40, start=100)
        got = drain(reader, 40)
        assert pairs(got) == set(later) and {m.partition for m in got} >= {2, 3}
    finally:
        reader.close()


def test_rewind_goes_back_to_the_committed_offsets(bus: Any, topic: str) -> None:
    # After a rolled-back commit the scorer reads again everything after the last commit.
    sent = publish(bus, topic, 10)
    c = bus.consumer([topic], group())
    try:
        got = drain(c, 10)
        done = got[:4]
        c.commit(done)
        last = {}
        for m in done:
            last[m.partition] = max(last.get(m.partition, -1), m.offset)
        again = [m for m in got if m.offset > last.get(m.partition, -1)]
        c.rewind()
        assert pairs(drain(c, len(again))) == pairs(again)
        nothing_more(c)
    finally:
        c.close()
    assert pairs(got) == set(sent)


@pytest.mark.kafka
def test_a_transaction_on_a_stale_group_generation_rolls_back_and_the_next_one_works(
    kafka_bus: tuple[Any, Topics], kafka_bus_factory: Any
) -> None:
    # A rebalance between reading a batch and committing it in a transaction: the broker refuses
    # offsets sent with the old generation. Nothing of the transaction may show, the error must
    # say it was rolled back (the scorer then rewinds and carries on), and the producer must
    # take the next transaction.
    from activestream.streams.bus import CommitAborted, Record

    plain, topics = kafka_bus
    plain.ensure_topics([topics.items, topics.dead_letters])
    publish(plain, topics.items, 10)
    txn = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"t-{uuid.uuid4().hex[:8]}")
    g = group()
    c1 = txn.consumer([topics.items], g)
    c2 = None
    try:
        got = drain(c1, 10)
        stale = c1._c.consumer_group_metadata()
        c2 = txn.consumer([topics.items], g)  # joins: the group moves to a new generation
        deadline = time.monotonic() + WAIT
        while not c2._c.assignment():
            assert time.monotonic() < deadline, "the second member never got partitions"
            c1.consume(10, 0.2)
            c2.consume(10, 0.2)

        class StaleMember:  # c1 as it was before the rebalance
            def __init__(self, real: Any) -> None:
                self._real = real

            def consumer_group_metadata(self) -> Any:
                return stale

            def __getattr__(self, name: str) -> Any:
                return getattr(self._real, name)

        real_c, c1._c = c1._c, StaleMember(c1._c)
        with pytest.raises(CommitAborted) as err:
            txn.publish_and_commit(c1, [Record(topics.dead_letters, b"dl-stale", b"k")], got)
        assert err.value.rolled_back and err.value.group_moved, err.value
        c1._c = real_c
        txn.publish_and_commit(None, [Record(topics.dead_letters, b"dl-next", b"k")], [])
        reader = plain.consumer([topics.dead_letters], None)
        try:
            assert [m.value for m in reader.read_to_end(20.0)] == [b"dl-next"]
        finally:
            reader.close()
    finally:
        c1.close()
        if c2 is not None:
            c2.close()


def test_group_members_counts_the_consumers_in_a_group(bus: Any, topic: str) -> None:
    """What the dispatcher asks before it sends work: is anyone reading the queue topic in the labelers' group?"""
    g = group()
    assert bus.group_members(g) == 0  # (a group nobody joined)
    publish(bus, topic, 2)
    a = bus.consumer([topic], g)
    try:
        drain(a, 2)  # (a Kafka consumer joins its group on its first polls)
        deadline = time.monotonic() + WAIT
        while bus.group_members(g) != 1 and time.monotonic() < deadline:
            a.consume(1, 0.2)
        assert bus.group_members(g) == 1
        assert bus.group_members(group()) == 0
    finally:
        a.close()
    deadline = time.monotonic() + WAIT
    while bus.group_members(g) != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bus.group_members(g) == 0  # (a consumer that closes leaves its group)


def test_a_restarted_members_lag_counts_from_its_groups_committed_offsets(bus: Any, topic: str) -> None:
    # (a restarted Kafka scorer with nothing new to read reported every record ever written as unread, firing
    # ActivestreamItemsPilingUp on a healthy, idle stack: its position was unknown until a first fetch)
    g = group()
    publish(bus, topic, 5)
    a = bus.consumer([topic], g)
    a.commit(drain(a, 5))
    a.close()
    b = bus.consumer([topic], g)
    try:
        nothing_more(b, 3.0)  # (joined and assigned, nothing to fetch)
        assert b.lag() == 0
    finally:
        b.close()


@pytest.mark.kafka
def test_an_idle_consumers_lag_asks_the_broker_for_committed_offsets_once_per_assignment(kafka_bus: tuple[Any, Topics]) -> None:
    # (an idle scorer asked at every gauge tick, a round trip queued behind its own long-poll fetches)
    bus, topics = kafka_bus
    bus.ensure_topics([topics.items])
    c = bus.consumer([topics.items], group())
    try:
        nothing_more(c, 3.0)
        real, asked = c._c, []  # noqa: SLF001 - counting the broker round trips of the confluent consumer

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def committed(self, *a: Any, **kw: Any) -> Any:
                asked.append(1)
                return real.committed(*a, **kw)

        c._c = Counting()  # noqa: SLF001
        assert [c.lag() for _ in range(4)] == [0, 0, 0, 0]
        assert len(asked) <= 1
    finally:
        c._c = real  # noqa: SLF001
        c.close()
