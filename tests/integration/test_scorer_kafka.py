"""The scorer against a real broker: a transaction the group refused is read again, nothing lost or doubled."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import MAX_DEAD_LETTER_PAYLOAD, Item, decode_dead_letter
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import Strategy
from activestream.streams.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


class StaleOnce:
    """The scorer's librdkafka consumer, except that its next transaction carries an old group generation."""

    def __init__(self, real: Any, stale: Any) -> None:
        self._real, self._stale = real, stale

    def consumer_group_metadata(self) -> Any:
        stale, self._stale = self._stale, None
        return stale if stale is not None else self._real.consumer_group_metadata()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_commit_refused_after_a_rebalance_is_read_again(kafka_bus_factory: Any, redis_client: redis.Redis, namespace: str) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"scorer-{uuid.uuid4().hex[:8]}")
    bus.ensure_topics(topics.all())
    X = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    good: list[str] = []
    bad: list[str] = []

    def publish(start: int, stop: int) -> None:
        for i in range(start, stop):
            if i % 40 == 7:  # most batches carry a dead letter: their commits are transactions
                bus.publish(topics.items, b"not an item", key=f"b{i}".encode())
                bad.append(f"b{i}")
            bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
            good.append(f"i{i}")
        bus.flush()

    publish(0, 200)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    group = f"scorer-{uuid.uuid4().hex[:8]}"
    scorer = Scorer(bus, queue, topics, strategy=Strategy("margin"), batch_size=50, commit_interval=0.0, group=group)
    other = None
    try:
        deadline = time.monotonic() + 30
        while scorer.score_items(0.5) == 0:  # joined the group, first batch read
            assert time.monotonic() < deadline, "the scorer never got a batch"
        items = scorer._items
        stale = items._c.consumer_group_metadata()
        # A second member joins (a new generation), reads without committing, and leaves again.
        other = bus.consumer([topics.items], group)
        deadline = time.monotonic() + 30
        while not other._c.assignment():
            assert time.monotonic() < deadline, "the second member never got partitions"
            scorer.score_items(0.2)
            other.consume(10, 0.2)  # (what it reads goes back to the scorer when it leaves)
        other.close()
        other = None
        items._c = StaleOnce(items._c, stale)  # the next transaction is the one the rebalance overtook
        publish(200, 600)
        deadline = time.monotonic() + 60
        while bus.lag(topics.items, group) > 0 or scorer.rewinds == 0:
            assert time.monotonic() < deadline, f"lag {bus.lag(topics.items, group)}, rewinds {scorer.rewinds}"
            scorer.score_items(0.2)
            scorer.flush()
    finally:
        if other is not None:
            other.close()
        scorer.close()
    assert scorer.rewinds == 1
    assert sorted(i for i, _ in queue.ranking()) == sorted(good)
    reader = bus.consumer([topics.dead_letters], None)
    try:
        dead = sorted(decode_dead_letter(m.value).item_id for m in reader.read_to_end(20.0))
    finally:
        reader.close()
    assert dead == sorted(bad)  # each once: the refused transaction's dead letters came again, no more


def _scorer_over(bus: Any, topics: Topics, redis_client: redis.Redis, namespace: str, junk: bytes, n: int = 200) -> Scorer:
    X = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    for i in range(n):
        bus.publish(topics.items, Item(f"i{i}", X[i]).encode(binary=True), key=f"i{i}".encode())
        if i == n // 2:
            bus.publish(topics.items, junk, key=b"junk")
    bus.flush()
    return Scorer(bus, RankedQueue(redis_client, QueueKeys(namespace)), topics, strategy=Strategy("margin"), batch_size=50,
                  commit_interval=0.0, group=f"scorer-{uuid.uuid4().hex[:8]}")


def test_a_huge_junk_record_is_a_dead_letter_and_the_stream_goes_on(kafka_bus_factory: Any, redis_client: redis.Redis, namespace: str) -> None:
    # 900 kB of junk fits the items topic; as a base64 dead letter in full it would not fit the
    # dead-letter topic's 1 MB limit, the transaction would fail, and so would every retry.
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"scorer-{uuid.uuid4().hex[:8]}")
    bus.ensure_topics(topics.all())
    junk = np.random.default_rng(1).bytes(900_000)
    scorer = _scorer_over(bus, topics, redis_client, namespace, junk)
    try:
        deadline = time.monotonic() + 60
        while scorer.queue.depth() < 200 or bus.lag(topics.items, scorer._items.group) > 0:
            assert time.monotonic() < deadline, f"depth {scorer.queue.depth()}"
            scorer.step(0.2)
            scorer.flush()
    finally:
        scorer.close()
    reader = bus.consumer([topics.dead_letters], None)
    try:
        (dl,) = reader.read_to_end(20.0)
    finally:
        reader.close()
    assert json.loads(dl.value)["payload_bytes"] == len(junk) and decode_dead_letter(dl.value).payload == junk[:MAX_DEAD_LETTER_PAYLOAD]


def test_a_dead_letter_the_broker_refuses_for_good_stops_the_scorer(kafka_bus_factory: Any, redis_client: redis.Redis, namespace: str) -> None:
    # Not a rebalance: reading the batch again would fail the same way, forever, while the
    # scorer looked busy. It must stop (and say why) instead.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    from activestream.streams.bus import CommitAborted

    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, transactional_id=f"scorer-{uuid.uuid4().hex[:8]}")
    bus.ensure_topics(topics.all())
    limit = ConfigResource(ConfigResource.Type.TOPIC, topics.dead_letters,
                           incremental_configs=[ConfigEntry("max.message.bytes", "4096", incremental_operation=AlterConfigOpType.SET)])
    for f in bus._admin().incremental_alter_configs([limit]).values():
        f.result(30)
    scorer = _scorer_over(bus, topics, redis_client, namespace, np.random.default_rng(2).bytes(20_000))  # (incompressible)
    try:
        with pytest.raises(CommitAborted, match="(?i)too large"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                scorer.step(0.2)
                scorer.flush()
        assert scorer.rewinds == 0
    finally:
        scorer.close()


def test_dead_letters_command_shows_each_refused_item_and_counts_reasons(kafka_bus: tuple[Any, Topics], kafka_bootstrap: str,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # (the ActivestreamDeadLetters alert says "see the dead-letter topic": no command read it, and the no-Docker stack has no Kafka scripts)
    from activestream.cli import main
    from activestream.schemas import DeadLetter

    bus, topics = kafka_bus
    bus.ensure_topics([topics.dead_letters])
    # (each bad value's reason differs: grouped by field, an ops audit saw 10 lines of count 1; a record with no field said "field None")
    for i, (field, reason) in enumerate([("features", "expected 4 values, got 6"), ("id", "missing"), ("features", "expected 4 values, got 6"),
                                         ("features[2]", "not a number ('a0')"), (None, "not JSON")]):
        bus.publish(topics.dead_letters, DeadLetter(topics.items, reason, b'{"id": "w%d"}' % i, f"w{i}", field, ts=1_700_000_000.0 + i).encode())
    bus.flush()
    argv = ["dead-letters", "--kafka-bootstrap-servers", kafka_bootstrap, "--topic-prefix", topics.prefix]
    assert main([*argv, "--last", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"5 dead letter(s) on {topics.dead_letters}")
    assert f"{topics.items}  item 'w2'  field 'features': expected 4 values, got 6" in out and "item 'w0'" not in out
    assert f"{topics.items}  item 'w4'  the whole record: not JSON" in out
    assert f"        3  {topics.items}  field 'features': expected 4 values, got 6 (and 1 other reason(s))" in out
    assert f"        1  {topics.items}  the whole record: not JSON" in out and "None" not in out
    assert main([*argv, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["item_id"], r["field"]) for r in rows] == [("w0", "features"), ("w1", "id"), ("w2", "features"), ("w3", "features[2]"), ("w4", None)]
