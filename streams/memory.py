"""In-process ``Bus`` for the embedded default: one process, same contract as Kafka.

Topics are append-only lists split into partitions by key hash; groups keep
committed offsets; a consumer's position starts at its group's committed offset,
so closing without committing redelivers, exactly as with Kafka.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence

from activestream.streams.bus import Consumer, Message, MessageColumns, Record


class InMemoryBus:
    """Thread-safe in-process topics with consumer-group offsets.

    Parameters
    ----------
    partitions : partitions per topic (keys are hashed onto them, like Kafka).
    """

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self._logs: dict[str, list[list[Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = defaultdict(int)
        self._members: dict[str, int] = defaultdict(int)  # group -> consumers open in it
        self._cond = threading.Condition(threading.RLock())

    # -- shared with InMemoryConsumer: one lock, the logs and the committed offsets
    @property
    def cond(self) -> threading.Condition:
        """The lock (and wake-up) every client of this bus takes."""
        return self._cond

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """``group``'s committed offset on a partition, ``None`` before its first commit."""
        return self._committed.get((group, topic, partition))

    def store_offset(self, group: str, topic: str, partition: int, offset: int) -> None:
        """Commit ``offset`` for ``group`` (never backwards, like Kafka consumers here)."""
        k = (group, topic, partition)
        self._committed[k] = max(self._committed[k], offset)

    def partition_log(self, topic: str) -> list[list[Message]]:
        """The partitions of ``topic`` (created empty on first use). Call with :attr:`cond` held."""
        return self._log(topic)

    # -- producer side
    def _log(self, topic: str) -> list[list[Message]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self.partitions)]
        return self._logs[topic]

    def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        with self._cond:
            log = self._log(topic)
            part = zlib.crc32(key) % self.partitions if key is not None else 0
            msgs = log[part]
            msgs.append(Message(topic, part, len(msgs), key, value, time.time()))
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        return None  # appends are synchronous

    def publish_and_commit(self, consumer: Consumer | None, records: Sequence[Record], messages: Sequence[Message]) -> None:
        with self._cond:  # one lock: atomic with respect to every other client of this bus
            for r in records:
                self.publish(r.topic, r.value, r.key)
            if consumer is not None:
                consumer.commit(messages)

    def ensure_topics(self, topics: Sequence[str], timeout: float = 30.0) -> None:
        with self._cond:
            for t in topics:
                self._log(t)

    def close(self) -> None:
        return None

    # -- consumer side
    def consumer(
        self, topics: Sequence[str], group: str | None, *, from_beginning: bool = True
    ) -> InMemoryConsumer:
        return InMemoryConsumer(self, list(topics), group, from_beginning)

    def messages(self, topic: str) -> list[Message]:
        """Every record of ``topic`` across partitions (for tests and reports)."""
        with self._cond:
            return [m for part in self._log(topic) for m in part]

    def group_members(self, group: str) -> int:
        with self._cond:
            return self._members[group]

    def join(self, group: str, delta: int) -> None:
        """A consumer of ``group`` opened (+1) or closed (-1). Call with :attr:`cond` held."""
        self._members[group] += delta

    def lag(self, topic: str, group: str) -> int:
        """Records not yet committed by ``group``."""
        with self._cond:
            return sum(
                len(part) - self._committed[(group, topic, p)]
                for p, part in enumerate(self._log(topic))
            )


class InMemoryConsumer:
    """A consumer over an :class:`InMemoryBus`; see :class:`activestream.streams.bus.Consumer`."""

    def __init__(
        self, bus: InMemoryBus, topics: list[str], group: str | None, from_beginning: bool
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._from_beginning = from_beginning
        self._pos: dict[tuple[str, int], int] = {}
        self._open = group is not None
        with bus.cond:
            if group is not None:
                bus.join(group, 1)
            for t in topics:
                for p in range(len(bus.partition_log(t))):
                    self._pos[(t, p)] = self._start(t, p)

    def _start(self, topic: str, partition: int) -> int:
        """Where reading starts: the group's committed offset, else the start or the end (Kafka's auto.offset.reset)."""
        committed = self._bus.committed(self._group, topic, partition) if self._group is not None else None
        if committed is not None:
            return committed
        return 0 if self._from_beginning else len(self._bus.partition_log(topic)[partition])

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        with self._bus.cond:
            while True:
                out = self._take(max_messages)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._bus.cond.wait(remaining)

    def consume_values(self, max_messages: int, timeout: float) -> MessageColumns:
        return MessageColumns(self.consume(max_messages, timeout))

    def _take(self, max_messages: int) -> list[Message]:
        out: list[Message] = []
        for t in self._topics:
            for p, part in enumerate(self._bus.partition_log(t)):
                pos = self._pos.get((t, p), 0)
                take = part[pos : pos + (max_messages - len(out))]
                out.extend(take)
                self._pos[(t, p)] = pos + len(take)
                if len(out) >= max_messages:
                    return out
        return out

    def read_to_end(self, timeout: float = 10.0) -> list[Message]:
        with self._bus.cond:
            return self._take(10**12)

    def lag(self) -> int:
        with self._bus.cond:
            return sum(len(part) - self._pos.get((t, p), 0) for t in self._topics for p, part in enumerate(self._bus.partition_log(t)))

    @property
    def assignments(self) -> int:
        return 0  # (one member holds every partition from the start)

    def trouble(self) -> str | None:
        return None  # (no broker to be away)

    def rewind(self) -> None:
        if self._group is None:
            return
        with self._bus.cond:
            for t, p in self._pos:
                self._pos[(t, p)] = self._start(t, p)

    def commit(self, messages: Sequence[Message]) -> None:
        if self._group is None:
            return
        with self._bus.cond:
            for m in messages:
                self._bus.store_offset(self._group, m.topic, m.partition, m.offset + 1)

    def close(self) -> None:
        with self._bus.cond:
            if self._open and self._group is not None:
                self._bus.join(self._group, -1)
            self._open = False
