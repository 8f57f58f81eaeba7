"""The Kafka adapter of the ``Bus`` port, on confluent-kafka (librdkafka).

Same contract as :class:`streams.memory.InMemoryBus`: ``consume`` returns a batch,
``commit`` marks it processed after its results were written, and a consumer that
closes without committing leaves its records to the next member of its group
(at-least-once). Offsets are never committed automatically.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from activestream.streams.bus import CommitAborted, Consumer, Message, Record

log = logging.getLogger(__name__)

_new = object.__new__
_setattr = object.__setattr__


# How often a group-less reader (the retrainer's labels log, every model reader) looks for
# partitions added to its topics: one metadata request each time.
PARTITION_CHECK_SECONDS = 10.0


# Commit failures that only mean "the group moved on": the records are redelivered to
# whoever owns the partitions now, which at-least-once already allows.
_REBALANCE_ERRORS = ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST")
# Consumer errors that are reported but recovered from by librdkafka itself.
_TRANSIENT_ERRORS = ("_MAX_POLL_EXCEEDED", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT")


def _ck() -> Any:
    """Import confluent_kafka on first use, so the embedded mode never needs it."""
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401 - a submodule, not imported by the package
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("streams.kafka.KafkaBus needs confluent-kafka: pip install confluent-kafka") from exc
    return confluent_kafka


def _codes(names: Sequence[str]) -> frozenset[int]:
    err = _ck().KafkaError
    return frozenset(getattr(err, n) for n in names if hasattr(err, n))


# Right after a topic is created, a partition's leader can still answer "not leader" for
# a moment even though the metadata already names it: retry those until the timeout.
_WATERMARK_RETRY = ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART", "_TIMED_OUT", "_TRANSPORT")


def watermarks(client: Any, tp: Any, timeout: float) -> tuple[int, int]:
    """``(low, high)`` offsets of ``tp`` from the broker, retrying transient errors until ``timeout``."""
    ck = _ck()
    retry = _codes(_WATERMARK_RETRY)
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = client.get_watermark_offsets(tp, timeout=max(0.5, deadline - time.monotonic()), cached=False)
            return int(low), int(high)
        except ck.KafkaException as exc:
            err = exc.args[0]
            if (err.code() not in retry and not err.retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def default_topic_config(topic: str) -> dict[str, str]:
    """Per-topic settings ``ensure_topics`` creates a topic with.

    ``*.models`` is compacted: it is keyed by ``MODEL_KEY``, so compaction keeps the
    newest version forever, where time retention (7 days by default) would one day
    leave a newly started scorer without any model; ``*.control`` (one record per label
    id, read back by a restarted retrainer) is compacted for the same reason. ``*.labels`` keeps every record:
    the retrainer rebuilds its training set from that log, and labels are paid for.
    """
    if topic.endswith((".models", ".control")):
        return {"cleanup.policy": "compact"}
    if topic.endswith(".labels"):
        return {"retention.ms": "-1"}
    return {}


class KafkaBus:
    """A :class:`streams.bus.Bus` on an Apache Kafka cluster.

    Parameters
    ----------
    bootstrap_servers : ``host:port[,host:port...]``.
    config : extra librdkafka settings (SASL, TLS, ...) given to the producer, every
        consumer and the admin client alike; they override this class's defaults.
    partitions : partitions of the topics ``ensure_topics`` creates.
    replication_factor : replicas of the topics ``ensure_topics`` creates.
    client_id : ``client.id``, and the prefix of group-less readers' throwaway group ids.
    transactional_id : when set, :meth:`publish_and_commit` runs as one Kafka transaction
        (records + consumer offsets): a crash can neither lose nor duplicate the records a
        batch produced. Must be unique per running process.

    Notes
    -----
    Topics are not created on publish (brokers should run with
    ``auto.create.topics.enable=false``): call :meth:`ensure_topics` first.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        config: Mapping[str, str] | None = None,
        partitions: int = 2,
        replication_factor: int = 1,
        client_id: str = "activestream",
        transactional_id: str | None = None,
    ) -> None:
        ck = _ck()
        self.transactional_id = transactional_id
        self._txn_producer: Any = None
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        self.base_config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id, **(config or {})}
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self._producer = ck.Producer(
            {
                # Idempotent + acks=all: retries never duplicate or reorder a partition's records.
                "enable.idempotence": True,
                "acks": "all",
                # A few ms of batching: large throughput gain, latency well under a consume timeout.
                "linger.ms": 5,
                "compression.type": "lz4",
                # Same key -> partition mapping as Java clients (Kafka Streams, Connect, aiokafka).
                "partitioner": "murmur2_random",
                **self.base_config,
            }
        )
        self._admin_client: Any = None

    # -- producer side
    def _on_delivery(self, err: Any, msg: Any) -> None:
        # Runs inside poll()/flush() on the caller's thread.
        if err is not None:
            with self._errors_lock:
                self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one record; :meth:`flush` waits for it and reports failures.

        When librdkafka's local queue is full, serve delivery reports until there is room.
        """
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)  # serve delivery callbacks without waiting

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged by all in-sync replicas.

        Raises
        ------
        RuntimeError
            If any delivery failed since the last flush, or records remain after ``timeout``.
        """
        remaining = self._producer.flush(timeout)
        with self._errors_lock:
            errors, self._errors = self._errors, []
        if errors:
            shown = "; ".join(errors[:5])
            raise RuntimeError(f"{len(errors)} Kafka deliveries failed: {shown}")
        if remaining:
            raise RuntimeError(f"{remaining} Kafka records still undelivered after {timeout}s")

    # -- transactions
    def _txn(self) -> Any:
        if self._txn_producer is None:
            ck = _ck()
            self._txn_producer = ck.Producer(
                {"transactional.id": self.transactional_id, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                 "compression.type": "lz4", "partitioner": "murmur2_random",
                 # Our transactions last milliseconds. A process killed inside one leaves it open
                 # (each process has its own transactional id, so no successor fences it), and
                 # read_committed readers of its topics stall behind it until the broker aborts
                 # it: after 10 s instead of librdkafka's 60 s default.
                 "transaction.timeout.ms": 10_000,
                 **self.base_config}
            )
            self._txn_producer.init_transactions(30.0)
        return self._txn_producer

    def publish_and_commit(self, consumer: Consumer | None, records: Sequence[Record], messages: Sequence[Message]) -> None:
        """Publish ``records`` and commit ``messages`` on ``consumer`` together.

        With a ``transactional_id`` both happen in one Kafka transaction (consumers of the
        records read committed data only, librdkafka's default); otherwise the records are
        flushed first, then the offsets committed (a crash in between republishes them).
        A batch that produced no records (the common case) commits its offsets directly: a
        transaction holding only offsets is the same single atomic commit, at four broker
        round trips instead of one.
        """
        if self.transactional_id is None or not records:
            for r in records:
                self.publish(r.topic, r.value, r.key)
            if records:
                self.flush()
            if consumer is not None:
                consumer.commit(messages)
            return
        ck = _ck()
        prod = self._txn()
        group_consumer = consumer if isinstance(consumer, KafkaConsumer) and consumer.group is not None else None
        offsets = group_consumer.next_offsets(messages) if group_consumer is not None else []
        if not records and not offsets:
            return
        prod.begin_transaction()
        try:
            for r in records:
                while True:
                    try:
                        prod.produce(r.topic, value=r.value, key=r.key)
                        break
                    except BufferError:
                        prod.poll(0.1)
            if offsets:
                prod.send_offsets_to_transaction(offsets, group_consumer._c.consumer_group_metadata(), 30.0)  # type: ignore[union-attr]
            prod.commit_transaction(30.0)
        except ck.KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                prod.abort_transaction(30.0)
                # Nothing was published or committed, but this consumer has read past the
                # batch: carrying on from there would let a later commit skip it. After a
                # rebalance the caller rewinds to the committed offsets (Consumer.rewind);
                # after anything else it must stop (the same batch would fail again).
                moved = err.code() in _codes(_REBALANCE_ERRORS)
                raise CommitAborted(f"Kafka transaction aborted ({err.str()})", rolled_back=True, group_moved=moved) from exc
            if not err.retriable():
                raise
            raise CommitAborted(f"Kafka transaction failed ({err.str()}); restart to get the batch again", rolled_back=False) from exc
        if group_consumer is not None:
            group_consumer.mark_committed(offsets)

    # -- admin side
    def _admin(self) -> Any:
        if self._admin_client is None:
            self._admin_client = _ck().admin.AdminClient(dict(self.base_config))
        return self._admin_client

    def ensure_topics(self, topics: Sequence[str], timeout: float = 30.0) -> None:
        """Create the topics that do not exist yet and wait until they have leaders.

        Idempotent; a topic created concurrently by another process counts as created.
        """
        ck = _ck()
        wanted = list(dict.fromkeys(topics))
        if not wanted:
            return
        admin = self._admin()
        existing = admin.list_topics(timeout=timeout).topics
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [ck.admin.NewTopic(t, num_partitions=self.partitions, replication_factor=self.replication_factor, config=default_topic_config(t)) for t in missing]
            for topic, fut in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
                try:
                    fut.result()
                except ck.KafkaException as exc:
                    if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                        raise RuntimeError(f"cannot create Kafka topic {topic}: {exc.args[0].str()}") from exc
        self._wait_for_leaders(wanted, timeout)

    def _wait_for_leaders(self, topics: list[str], timeout: float) -> None:
        # CreateTopics returns before every partition has a leader; consumers assigned a
        # leaderless partition would silently fetch nothing for a while.
        deadline = time.monotonic() + timeout
        while True:
            md = self._admin().list_topics(timeout=timeout).topics
            pending = [t for t in topics if t not in md or md[t].error is not None or not md[t].partitions or any(p.leader < 0 for p in md[t].partitions.values())]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka topics not ready after {timeout}s: {pending}")
            time.sleep(0.05)

    def partitions_of(self, topic: str, timeout: float = 10.0) -> list[int]:
        """Partition ids of ``topic``; raises ``RuntimeError`` when it does not exist."""
        md = self._admin().list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            why = md.error.str() if md is not None and md.error is not None else "no such topic"
            raise RuntimeError(f"Kafka topic {topic!r} is not available ({why}); call ensure_topics first")
        return sorted(md.partitions)

    # -- consumer side
    def consumer(self, topics: Sequence[str], group: str | None, *, from_beginning: bool = True) -> KafkaConsumer:
        """A group member (``group``) or a group-less reader (``None``); see :class:`KafkaConsumer`."""
        return KafkaConsumer(self, list(topics), group, from_beginning=from_beginning)

    def lag(self, topic: str, group: str, timeout: float = 10.0) -> int:
        """Records of ``topic`` not yet committed by ``group`` (as ``InMemoryBus.lag``)."""
        ck = _ck()
        probe = ck.Consumer({**self.base_config, "group.id": group, "enable.auto.commit": False})
        try:  # a consumer that never subscribes does not join (or disturb) the group
            tps = [ck.TopicPartition(topic, p) for p in self.partitions_of(topic, timeout)]
            total = 0
            for tp in probe.committed(tps, timeout=timeout):
                low, high = watermarks(probe, tp, timeout)
                total += high - (tp.offset if tp.offset >= 0 else low)
            return total
        finally:
            probe.close()

    def messages(self, topic: str, timeout: float = 10.0) -> list[Message]:
        """Every record of ``topic`` now in the log (for tests and reports)."""
        reader = self.consumer([topic], None)
        try:
            return reader.read_to_end(timeout)
        finally:
            reader.close()

    def close(self) -> None:
        """Flush, then release the producer and the admin client."""
        try:
            self.flush()
        finally:
            for prod in (self._producer, self._txn_producer):
                closer = getattr(prod, "close", None)  # Producer.close() exists since confluent-kafka 2.6
                if closer is not None:
                    closer()
            self._admin_client = None


class ValueBatch:
    """A consumed batch as columns (:meth:`KafkaConsumer.consume_values`).

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
    """One confluent-kafka consumer behind the :class:`streams.bus.Consumer` protocol.

    With a ``group`` it subscribes (the group balances partitions across members and
    stores committed offsets); auto-commit is off, so only :meth:`commit` moves the
    group forward. With ``group=None`` it assigns every partition itself, starting at the
    beginning (or the end with ``from_beginning=False``): no group join, so it reads
    at once, and it never commits. It looks for partitions added to its topics every
    ``PARTITION_CHECK_SECONDS`` and reads them from their first record.
    """

    def __init__(self, bus: KafkaBus, topics: list[str], group: str | None, *, from_beginning: bool = True) -> None:
        ck = _ck()
        self._ck = ck
        self.topics = topics
        self.group = group
        self._from_beginning = from_beginning
        self._closed = False
        self._committed: dict[tuple[str, int], int] = {}
        self._rebalance_codes = _codes(_REBALANCE_ERRORS)
        self._transient_codes = _codes(_TRANSIENT_ERRORS)
        conf: dict[str, Any] = {
            # librdkafka (>= 2.4) waits this long before fetching again once its local queue
            # is full; its 1000 ms default starves any consumer slower than the broker (every
            # scorer): the queue drains long before the next fetch. Measured on a scorer-like
            # loop (3 us of work per record): 120k records/s at 1000 ms, 275k at 20 ms.
            "fetch.queue.backoff.ms": 20,
            **bus.base_config,
            # group-less readers still need some group.id for librdkafka; a unique one never collides.
            "group.id": group if group is not None else f"{bus.client_id}-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        self._c = ck.Consumer(conf)
        if group is not None:
            self._c.subscribe(topics)
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
            if code == self._ck.KafkaError._PARTITION_EOF:
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
        try:
            done = self._c.commit(offsets=tps, asynchronous=False)
        except self._ck.KafkaException as exc:
            err = exc.args[0]
            if err.code() in self._rebalance_codes:
                log.warning("Kafka commit for group %s dropped (%s); the records will be redelivered", self.group, err.str())
                return
            raise
        failed = [tp for tp in done or [] if tp.error is not None]
        if failed:
            raise self._ck.KafkaException(failed[0].error)
        for tp in tps:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def rewind(self, timeout: float = 10.0) -> None:
        """Go back to the group's committed offset on every partition this consumer holds.

        See :meth:`streams.bus.Consumer.rewind`. Records prefetched from before are dropped
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

    def mark_committed(self, tps: Sequence[Any]) -> None:
        for tp in tps:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def lag(self, timeout: float = 10.0) -> int:
        """Records after this consumer's position, summed over its assigned partitions.

        Uses the high watermark every fetch response carries (librdkafka's cached one):
        asking the broker instead queues behind the consumer's own long-poll fetches on
        the same connection and blocked the caller ~0.5 s per partition (a scorer spent
        two thirds of its time there). The broker is asked only for a partition with no
        fetch and no position yet.
        """
        total = 0
        for tp in self._c.position(self._c.assignment()):
            low, high = self._c.get_watermark_offsets(tp, cached=True)
            if high < 0 or (tp.offset < 0 and low < 0):
                low, high = watermarks(self._c, tp, timeout)
            total += high - (tp.offset if tp.offset >= 0 else low)
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
