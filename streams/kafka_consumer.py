"""The Kafka adapter's consumer: one confluent-kafka consumer behind the ``Consumer`` port."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from activestream.streams.bus import TROUBLE_SECONDS, Message
from activestream.streams.kafka_client import COORDINATOR_ERRORS, REBALANCE_ERRORS, TRANSIENT_ERRORS, confluent, error_codes, watermarks

log = logging.getLogger(__name__)

_new = object.__new__
_setattr = object.__setattr__

# How often a group-less reader (the retrainer's labels log, every model reader) looks for
# partitions added to its topics: one metadata request each time.
PARTITION_CHECK_SECONDS = 10.0
# How long a commit is retried while the group coordinator loads or moves (a broker restart).
COMMIT_RETRY_SECONDS = 60.0

# Static members (group.instance.id): the broker keeps a member's partitions this long after it
# last heard from it. A restarted member rejoining with the same id gets them back at once, with
# no rebalance; one that stays down for longer loses them to the others. It exceeds the
# supervisor's first restart delay (1 s) plus a service's start-up (~3 s), and stays within the
# broker's default group.min.session.timeout.ms (6 s).
STATIC_SESSION_TIMEOUT_MS = 10_000


class Cluster(Protocol):
    """What a consumer needs of its bus (a :class:`activestream.streams.kafka.KafkaBus`)."""

    base_config: dict[str, Any]
    client_id: str
    instance_id: str | None

    def partitions_of(self, topic: str, timeout: float = 10.0) -> list[int]: ...

    def serve_logs(self) -> None: ...


class ValueBatch:
    """A consumed batch as columns (:meth:`KafkaConsumer.consume_values`); see :class:`activestream.streams.bus.Columns`.

    Parameters
    ----------
    values : (n,) record values, in consumption order.
    raw : (n,) the client's records, for the rare record needed whole.
    last : the last record of each partition: pass them to ``commit`` to commit the batch.
    """

    def __init__(self, values: list[bytes], raw: list[Any], last: list[Message], to_message: Any) -> None:
        self.values = values
        self.last = last
        self._raw = raw
        self._to_message = to_message

    def __len__(self) -> int:
        return len(self.values)

    def key(self, i: int) -> bytes | None:
        return self._raw[i].key()  # type: ignore[no-any-return]

    def message(self, i: int) -> Message:
        return self._to_message(self._raw[i])  # type: ignore[no-any-return]


class KafkaConsumer:
    """One confluent-kafka consumer behind the :class:`activestream.streams.bus.Consumer` protocol.

    With a ``group`` it subscribes (the group balances partitions across members and
    stores committed offsets); auto-commit is off, so only :meth:`commit` moves the
    group forward. With ``group=None`` it assigns every partition itself, starting at the
    beginning (or the end with ``from_beginning=False``): no group join, so it reads
    at once, and it never commits. It looks for partitions added to its topics every
    ``PARTITION_CHECK_SECONDS`` and reads them from their first record.

    A group member of a bus with an ``instance_id`` is a static member: a restart of its
    process (same id) resumes its partitions at once instead of after the session timeout
    and a rebalance; ``session.timeout.ms`` is then :data:`STATIC_SESSION_TIMEOUT_MS` unless
    the bus's config sets it. Two live consumers of one group must not share an id (the
    broker fences the older one).
    """

    def __init__(self, bus: Cluster, topics: list[str], group: str | None, *, from_beginning: bool = True) -> None:
        ck = confluent()
        self._ck = ck
        self._serve_logs = bus.serve_logs  # (its producers' and admin client's log lines: see streams.kafka_logs)
        self.topics = topics
        self.group = group
        self._from_beginning = from_beginning
        self._closed = False
        self._committed: dict[tuple[str, int], int] = {}
        # lag(): the group's committed offsets of partitions not read from yet, asked once per assignment
        self._lag_assigned: frozenset[tuple[str, int]] = frozenset()
        self._lag_committed: dict[tuple[str, int], int] = {}
        self._rebalance_codes = error_codes(REBALANCE_ERRORS)
        self._transient_codes = error_codes(TRANSIENT_ERRORS)
        self._trouble: tuple[float, str] | None = None  # (monotonic, text) of the last transient error consume met
        self._coordinator_codes = error_codes(COORDINATOR_ERRORS)
        conf: dict[str, Any] = {
            # librdkafka (>= 2.4) waits this long before fetching again once its local queue
            # is full; its 1000 ms default starves any consumer slower than the broker (every
            # scorer): the queue drains long before the next fetch. Measured on a scorer-like
            # loop (3 us of work per record): 120k records/s at 1000 ms, 275k at 20 ms.
            "fetch.queue.backoff.ms": 20,
            **({"group.instance.id": bus.instance_id, "session.timeout.ms": STATIC_SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": STATIC_SESSION_TIMEOUT_MS // 5} if group is not None and bus.instance_id else {}),
            **bus.base_config,
            # group-less readers still need some group.id for librdkafka; a unique one never collides.
            "group.id": group if group is not None else f"{bus.client_id}-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A broker away is reported here, served by consume (not as a consumed error): see trouble().
            "error_cb": self._on_error,
        }
        self._c = ck.Consumer(conf)
        self._assignments = 0
        if group is not None:
            self._c.subscribe(topics, on_assign=self._assigned)
        else:
            tps = [ck.TopicPartition(t, p, ck.OFFSET_BEGINNING) for t in topics for p in bus.partitions_of(t)]
            if not from_beginning:
                # Resolve "the end" now, not at the first fetch: records published after this
                # constructor returns are then always seen (as with InMemoryBus).
                for tp in tps:
                    tp.offset = watermarks(self._c, tp, 10.0)[1]
            self._c.assign(tps)
            self._held = {(tp.topic, tp.partition) for tp in tps}
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_SECONDS

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        # (librdkafka calls it from poll(), before the new partitions' first records are returned)
        self._assignments += 1

    @property
    def assignments(self) -> int:
        """See :attr:`activestream.streams.bus.Consumer.assignments`."""
        return self._assignments

    def _on_error(self, err: Any) -> None:
        # (librdkafka's client-level errors: a broker that cannot be reached, every broker down; it retries by itself)
        self._trouble = (time.monotonic(), err.str())

    def trouble(self) -> str | None:
        """See :meth:`activestream.streams.bus.Consumer.trouble`."""
        if self._trouble is None or time.monotonic() - self._trouble[0] > TROUBLE_SECONDS:
            return None
        return f"Kafka: {self._trouble[1]} ({time.monotonic() - self._trouble[0]:.0f} s ago)"

    def _take_new_partitions(self) -> None:
        """A group-less reader adds the partitions created on its topics since it started (all their records are new)."""
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_SECONDS
        new = []
        for t in self.topics:
            try:
                md = self._c.list_topics(t, timeout=1.0).topics.get(t)
            except self._ck.KafkaException:
                return  # the broker is away: next time
            if md is not None and md.error is None:
                new += [self._ck.TopicPartition(t, p, self._ck.OFFSET_BEGINNING) for p in sorted(md.partitions) if (t, p) not in self._held]
        if new:
            self._c.incremental_assign(new)
            self._held.update((tp.topic, tp.partition) for tp in new)
            log.info("Kafka reader of %s: reading %d partition(s) added since it started", self.topics, len(new))

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Return up to ``max_messages`` records, waiting at most ``timeout`` seconds.

        Returns as soon as at least one record is available (plus whatever else is
        already fetched), like ``InMemoryConsumer``; ``Consumer.consume(n, timeout)``
        alone would wait out the whole timeout unless ``n`` records arrive.
        """
        return [self._message(m) for m in self._poll(max_messages, timeout)]

    def consume_values(self, max_messages: int, timeout: float) -> ValueBatch:
        """:meth:`consume` as columns, for a hot loop that needs only values (and keys on errors).

        Skips building a :class:`Message` per record: the batch keeps the raw records
        (``value(i)``, ``key(i)``, ``message(i)`` read one on demand) and, for
        :meth:`commit`, the last record of each partition.
        """
        raw = self._poll(max_messages, timeout)
        last: dict[tuple[str, int], Any] = {}
        for m in raw:
            last[(m.topic(), m.partition())] = m
        return ValueBatch([m.value() or b"" for m in raw], raw, [self._message(m) for m in last.values()], self._message)

    def _poll(self, max_messages: int, timeout: float) -> list[Any]:
        if max_messages <= 0 or self._closed:
            return []
        self._serve_logs()
        if self.group is None and time.monotonic() >= self._next_partition_check:
            self._take_new_partitions()
        deadline = time.monotonic() + timeout
        out: list[Any] = []
        while not out:
            # poll() also drives the group join right after subscribe, so a first call
            # with a long enough timeout waits for the assignment and then the records.
            msg = self._c.poll(max(0.0, deadline - time.monotonic()))
            if msg is None:
                return []
            out = self._valid([msg])
            if not out and time.monotonic() >= deadline:
                return []
        if len(out) < max_messages:
            out.extend(self._valid(self._c.consume(max_messages - len(out), 0)))
        return out

    def _valid(self, raw: list[Any]) -> list[Any]:
        """``raw`` without end-of-partition and transient-error events; raises on real errors."""
        if all(m.error() is None for m in raw):
            return raw
        out = []
        for m in raw:
            err = m.error()
            if err is None:
                out.append(m)
                continue
            code = err.code()
            if code == self._ck.KafkaError._PARTITION_EOF:  # noqa: SLF001 - confluent-kafka's public name for this event
                continue
            if code in self._transient_codes and not err.fatal():
                log.warning("Kafka consumer %s: %s (recovering)", self.group, err.str())
                continue
            raise self._ck.KafkaException(err)
        return out

    def _message(self, m: Any) -> Message:
        # A Message built without the dataclass __init__ (frozen: six object.__setattr__
        # calls): same fields, same equality and hash, less than half the cost per record.
        ts_type, ts = m.timestamp()
        msg = _new(Message)
        _setattr(msg, "__dict__", {
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "key": m.key(),
            "value": m.value() or b"",  # a tombstone (None) reads as empty bytes
            "timestamp": ts / 1000.0 if ts_type != self._ck.TIMESTAMP_NOT_AVAILABLE else 0.0,
        })
        return msg

    def commit(self, messages: Sequence[Message]) -> None:
        """Commit, synchronously, the offset after the highest of ``messages`` per partition.

        No-op for group-less readers. A commit the group rejects because it rebalanced
        is logged and dropped: the new owner of those partitions gets the records again.
        """
        if self.group is None or not messages or self._closed:
            return
        nxt: dict[tuple[str, int], int] = {}
        for m in messages:
            k = (m.topic, m.partition)
            nxt[k] = max(nxt.get(k, 0), m.offset + 1)
        # Never move a partition backwards (a late commit of an older batch), like InMemoryBus.
        tps = [self._ck.TopicPartition(t, p, o) for (t, p), o in nxt.items() if o > self._committed.get((t, p), -1)]
        if not tps:
            return
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        while True:
            try:
                done = self._c.commit(offsets=tps, asynchronous=False)
                break
            except self._ck.KafkaException as exc:
                err = exc.args[0]
                if err.code() in self._rebalance_codes:
                    log.warning("Kafka commit for group %s dropped (%s); the records will be redelivered", self.group, err.str())
                    return
                if err.code() not in self._coordinator_codes or err.fatal() or time.monotonic() > deadline:
                    raise
                log.warning("Kafka commit for group %s: %s; trying again", self.group, err.str())
                time.sleep(0.5)
        failed = [tp for tp in done or [] if tp.error is not None]
        if failed:
            raise self._ck.KafkaException(failed[0].error)
        for tp in tps:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def rewind(self, timeout: float = 10.0) -> None:
        """Go back to the group's committed offset on every partition this consumer holds.

        See :meth:`activestream.streams.bus.Consumer.rewind`. Records prefetched from before are dropped
        by the seek; a partition with no commit goes where ``auto.offset.reset`` starts.
        """
        if self.group is None:
            return
        held = self._c.assignment()
        if not held:
            return
        reset = self._ck.OFFSET_BEGINNING if self._from_beginning else self._ck.OFFSET_END
        for tp in self._c.committed(held, timeout=timeout):
            if tp.offset < 0:  # nothing committed yet: where auto.offset.reset starts
                tp.offset = reset
            self._c.seek(tp)

    def next_offsets(self, messages: Sequence[Message]) -> list[Any]:
        """``TopicPartition`` offsets just past ``messages`` (never behind what was committed)."""
        nxt: dict[tuple[str, int], int] = {}
        for m in messages:
            k = (m.topic, m.partition)
            nxt[k] = max(nxt.get(k, 0), m.offset + 1)
        return [self._ck.TopicPartition(t, p, o) for (t, p), o in nxt.items() if o > self._committed.get((t, p), -1)]

    def group_metadata(self) -> Any:
        """The group's metadata, for offsets sent within a producer's transaction."""
        return self._c.consumer_group_metadata()

    def mark_committed(self, tps: Sequence[Any]) -> None:
        for tp in tps:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def lag(self, timeout: float = 10.0) -> int:
        """Records after this consumer's position, summed over its assigned partitions.

        Uses the high watermark every fetch response carries (librdkafka's cached one):
        asking the broker instead queues behind the consumer's own long-poll fetches on
        the same connection and blocked the caller ~0.5 s per partition (a scorer spent
        two thirds of its time there). The broker is asked only for a partition with no
        fetch and no position yet. Such a partition (a consumer just started or assigned) counts from
        its group's committed offset, where it will read from: counting from the low watermark made a
        restarted scorer report every record ever written as unread until its first fetch.
        """
        total = 0
        positions = self._c.position(self._c.assignment())
        assigned = frozenset((tp.topic, tp.partition) for tp in positions)
        if assigned != self._lag_assigned:  # (a rebalance: another member may have moved the offsets meanwhile)
            self._lag_assigned, self._lag_committed = assigned, {}
        ask = [tp for tp in positions if tp.offset < 0 and (tp.topic, tp.partition) not in self._lag_committed]
        for tp in self._c.committed(ask, timeout=timeout) if ask else []:  # (asked once per assignment: -1 for none)
            self._lag_committed[(tp.topic, tp.partition)] = tp.offset
        for tp in positions:
            low, high = self._c.get_watermark_offsets(tp, cached=True)
            if high < 0 or (tp.offset < 0 and low < 0):
                low, high = watermarks(self._c, tp, timeout)
            key = (tp.topic, tp.partition)
            at = tp.offset if tp.offset >= 0 else max(self._lag_committed.get(key, -1), self._committed.get(key, -1))
            total += high - max(at, low)  # (a committed offset the retention has passed counts from the log's start)
        return total

    def read_to_end(self, timeout: float = 10.0) -> list[Message]:
        """Consume until every assigned partition reaches the high watermark seen at the start.

        Done when the consumer's position (the next offset it would fetch) is there, not when a
        record at ``high - 1`` came: on a topic written in transactions (the scorer's dead
        letters and auto-labels) the last offset is a commit marker, never delivered as a record.
        """
        deadline = time.monotonic() + timeout
        ends = {}
        for tp in self._c.assignment():
            low, high = watermarks(self._c, tp, timeout)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
        out: list[Message] = []

        def behind() -> bool:
            if not ends:
                return False
            at = self._c.position([self._ck.TopicPartition(t, p) for t, p in ends])
            return any(tp.offset < ends[(tp.topic, tp.partition)] for tp in at)  # (a negative position: nothing read yet)

        while behind():
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} records of {self.topics} before the {timeout}s timeout")
            out += self.consume(10_000, min(0.5, max(0.0, deadline - time.monotonic())))
        return out

    def close(self) -> None:
        """Leave the group without committing; uncommitted records go to the next member."""
        if not self._closed:
            self._closed = True
            self._c.close()
