"""The Kafka adapter of the ``Bus`` port, on confluent-kafka (librdkafka).

Same contract as :class:`activestream.streams.memory.InMemoryBus`: ``consume`` returns a batch,
``commit`` marks it processed after its results were written, and a consumer that
closes without committing leaves its records to the next member of its group
(at-least-once). Offsets are never committed automatically. The consumer is
:mod:`activestream.streams.kafka_consumer`; client helpers are in :mod:`activestream.streams.kafka_client`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from activestream.streams.bus import BrokerUnavailable, CommitAborted, Consumer, Message, Record, TopicRefused
from activestream.streams.kafka_client import (
    MAX_MODEL_BYTES,
    PERMANENT_ERRORS,
    REBALANCE_ERRORS,
    TRANSIENT_ERRORS,
    confluent,
    default_topic_config,
    error_codes,
    watermarks,
)
from activestream.streams.kafka_consumer import KafkaConsumer, ValueBatch
from activestream.streams.kafka_logs import kafka_logger

__all__ = ["KafkaBus", "KafkaConsumer", "ValueBatch", "default_topic_config", "watermarks"]

LOG_SERVE_SECONDS = 1.0  # how often serve_logs polls the producers and the admin client


class KafkaBus:
    """A :class:`activestream.streams.bus.Bus` on an Apache Kafka cluster.

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
    instance_id : this process's slot (``ACTIVESTREAM_INSTANCE_ID``): its group consumers join
        as static members (``group.instance.id``), see :class:`KafkaConsumer`.

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
        instance_id: str | None = None,
    ) -> None:
        ck = confluent()
        self.transactional_id = transactional_id
        self.instance_id = instance_id
        self._txn_producer: Any = None
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        # (every client logs through one Python logger that holds back repeats: see streams.kafka_logs)
        self.base_config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id, "logger": kafka_logger(),
                                            **(config or {})}
        self._next_log_serve = 0.0
        self._errors: list[str] = []
        self._errors_pass = True  # every delivery error since the last flush is one that passes (see BrokerUnavailable)
        self._passing_codes = error_codes(("_MSG_TIMED_OUT", *TRANSIENT_ERRORS))
        self._errors_lock = threading.Lock()
        self._polling = threading.Lock()  # held while serve_logs polls the producers
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
                # Model versions may be large (see default_topic_config); the broker limits other topics.
                "message.max.bytes": MAX_MODEL_BYTES + 4096,
                **self.base_config,
            }
        )
        self._admin_client: Any = None
        self._permanent_codes = error_codes(PERMANENT_ERRORS)
        self.refusal: Any = None  # the last refusal the admin client met (credentials, ACLs: a KafkaError), see ensure_topics

    # -- producer side
    def _on_delivery(self, err: Any, msg: Any) -> None:
        # Runs inside poll()/flush() on the caller's thread.
        if err is not None:
            with self._errors_lock:
                self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
                self._errors_pass = self._errors_pass and (err.retriable() or err.code() in self._passing_codes)

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
        BrokerUnavailable
            If records remain after ``timeout``, or every delivery that failed since the last flush failed for a reason
            that passes (a timeout, the broker away).
        RuntimeError
            If a delivery failed for good (a record too large, a topic it may not write).
        """
        remaining = self._producer.flush(timeout)
        with self._polling:  # (a report another thread's poll took off the queue has had its callback run: no failure missed)
            pass
        with self._errors_lock:
            errors, self._errors = self._errors, []
            passing, self._errors_pass = self._errors_pass, True
        if errors:
            shown = "; ".join(errors[:5])
            message = f"{len(errors)} Kafka deliveries failed: {shown}"
            raise BrokerUnavailable(message, lost=True) if passing else RuntimeError(message)
        if remaining:
            raise BrokerUnavailable(f"{remaining} Kafka records still undelivered after {timeout}s (is the broker reachable?)")

    # -- transactions
    def _txn(self) -> Any:
        if self._txn_producer is None:
            ck = confluent()
            self._txn_producer = ck.Producer(
                {"transactional.id": self.transactional_id, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                 "compression.type": "lz4", "partitioner": "murmur2_random", "message.max.bytes": MAX_MODEL_BYTES + 4096,
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
        ck = confluent()
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
                prod.send_offsets_to_transaction(offsets, group_consumer.group_metadata(), 30.0)  # type: ignore[union-attr]
            prod.commit_transaction(30.0)
        except ck.KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                prod.abort_transaction(30.0)
                # Nothing was published or committed, but this consumer has read past the
                # batch: carrying on from there would let a later commit skip it. After a
                # rebalance the caller rewinds to the committed offsets (Consumer.rewind);
                # after anything else it must stop (the same batch would fail again).
                moved = err.code() in error_codes(REBALANCE_ERRORS)
                raise CommitAborted(f"Kafka transaction aborted ({err.str()})", rolled_back=True, group_moved=moved) from exc
            if not err.retriable():
                raise
            raise CommitAborted(f"Kafka transaction failed ({err.str()}); restart to get the batch again", rolled_back=False) from exc
        if group_consumer is not None:
            group_consumer.mark_committed(offsets)

    def serve_logs(self) -> None:
        """Serve the log lines the producers and the admin client queued (at most once a second; consumers serve their own).

        Delivery reports come out with them (their callbacks record a failure for :meth:`flush` to raise). A producer's
        length counts its queued log lines too, so it is no sign of records in flight.
        """
        now = time.monotonic()
        if now < self._next_log_serve:
            return
        self._next_log_serve = now + LOG_SERVE_SECONDS
        with self._polling:  # (delivery reports it serves are in flush's errors before flush reads them: see flush)
            for producer in (self._producer, self._txn_producer):
                if producer is not None:
                    producer.poll(0)
        if self._admin_client is not None:
            self._admin_client.poll(0)

    # -- admin side
    def _admin(self) -> Any:
        if self._admin_client is None:
            self._admin_client = confluent().admin.AdminClient({**self.base_config, "error_cb": self._on_admin_error})
        return self._admin_client

    def _on_admin_error(self, err: Any) -> None:
        # librdkafka reports a refused SASL login as an error event; the request itself only ends in a transport failure.
        if err.code() in self._permanent_codes:
            self.refusal = err

    def _metadata(self, timeout: float) -> Any:
        """The cluster's metadata; a refusal (SASL credentials, TLS) raises at once as the ``KafkaException`` it is.

        Asked in tries of 1, 2, 4, ... s up to ``timeout``: a refused login only shows as a transport failure of the
        request, and as an error event served between tries (one long try would wait out ``timeout`` first).
        """
        ck = confluent()
        admin, deadline, step = self._admin(), time.monotonic() + timeout, 1.0
        self.refusal = None  # (one met on an earlier call, since mended, is not this call's)
        while True:
            try:
                return admin.list_topics(timeout=max(0.1, min(step, deadline - time.monotonic())))
            except ck.KafkaException:
                admin.poll(0)  # (serves the error events: _on_admin_error)
                if self.refusal is not None:
                    raise ck.KafkaException(self.refusal) from None
                if time.monotonic() >= deadline:
                    raise
                step *= 2

    def ensure_topics(self, topics: Sequence[str], timeout: float = 30.0) -> None:
        """Create the topics that do not exist yet and wait until they have leaders.

        Idempotent; a topic created concurrently by another process counts as created.
        """
        ck = confluent()
        wanted = list(dict.fromkeys(topics))
        if not wanted:
            return
        admin = self._admin()
        existing = self._metadata(timeout).topics
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [ck.admin.NewTopic(t, num_partitions=self.partitions, replication_factor=self.replication_factor, config=default_topic_config(t)) for t in missing]
            for topic, fut in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
                try:
                    fut.result(timeout=timeout)
                except concurrent.futures.TimeoutError as exc:
                    raise RuntimeError(f"cannot create Kafka topic {topic}: no answer from the broker in {timeout:g} s") from exc
                except ck.KafkaException as exc:
                    if exc.args[0].code() in self._permanent_codes:  # (a principal without the right to create it)
                        raise
                    code = exc.args[0].code()
                    if code in (ck.KafkaError.TOPIC_EXCEPTION, ck.KafkaError.POLICY_VIOLATION):  # (not a replication factor: brokers may be registering)
                        raise TopicRefused(f"cannot create Kafka topic {topic}: {exc.args[0].str()}") from None
                    if code != ck.KafkaError.TOPIC_ALREADY_EXISTS:
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
        """Partition ids of ``topic``; raises ``RuntimeError`` when it does not exist.

        A broker that cannot be reached (restarting) is asked again until ``timeout``.
        """
        ck = confluent()
        deadline = time.monotonic() + timeout
        while True:
            try:
                md = self._admin().list_topics(topic, timeout=max(0.5, deadline - time.monotonic())).topics.get(topic)
                break
            except ck.KafkaException as exc:
                err = exc.args[0]
                if time.monotonic() > deadline or not (err.retriable() or err.code() in (ck.KafkaError._TRANSPORT, ck.KafkaError._TIMED_OUT)):  # noqa: SLF001 - librdkafka's public names
                    raise
                time.sleep(0.5)
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
        ck = confluent()
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

    def group_members(self, group: str, timeout: float = 10.0) -> int:
        """Members of the consumer group ``group`` now (0: empty, dead or never joined)."""
        fut = self._admin().describe_consumer_groups([group], request_timeout=timeout)[group]
        # (bounded here too: with the broker away the future waited for it, and the dispatcher's loop with it)
        return len(fut.result(timeout=timeout).members or [])

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
