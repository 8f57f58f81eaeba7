"""The ``Bus`` port: publish, consume a batch, commit after processing.

Shaped after confluent-kafka's model so the Kafka adapter is a thin wrapper:
``Consumer.consume(num_messages, timeout)`` returns a batch; the caller processes
it, writes its results, and only then calls ``commit(batch)``. A consumer that
closes (or dies) without committing gets the same messages redelivered to the next
member of its group: at-least-once, so every write downstream must be idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One consumed record.

    Parameters
    ----------
    topic, partition, offset : where it sits in the log.
    key : the record key (the item id for items, queue entries and labels).
    value : the payload bytes.
    timestamp : producer time, UNIX seconds.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float = 0.0


@dataclass(frozen=True)
class Record:
    """One record to publish: ``(topic, value, key)``."""

    topic: str
    value: bytes
    key: bytes | None = None


# A broker error (the broker away) counts as trouble this long after it was last met (Consumer.trouble, a service's
# /healthz): librdkafka reports a dead broker again at each reconnect attempt (backing off up to 10 s), and nothing once
# it answers again.
TROUBLE_SECONDS = 15.0


class BrokerUnavailable(RuntimeError):
    """Published records were not delivered in time, or failed for a reason that passes (the broker away, a timeout):
    the same publish later may succeed. A caller answering a client says so (HTTP 503), not "internal error".

    ``lost``: some records failed (the client gave up on them: publish them again to have them); else they are still
    queued, and a later flush may deliver them.
    """

    def __init__(self, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


class TopicRefused(RuntimeError):
    """The broker refuses to create a topic for good (a name that collides with another's, as ``a.b`` and ``a_b`` do,
    or a policy): starting again would be refused again; the message names the topic and the broker's reason."""


class CommitAborted(RuntimeError):
    """A transactional publish-and-commit failed: none of its records or offsets took effect.

    ``rolled_back``: the transaction was aborted and the producer is ready for the next one.
    ``group_moved``: it failed because the consumer group moved on under it (a rebalance:
    the broker refused offsets sent with the old generation or member id). Only then does
    reading again from the committed offsets help; any other failure (a record the broker
    refuses for good, say) would fail the same way again, so the caller must stop.
    """

    def __init__(self, message: str, *, rolled_back: bool, group_moved: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back
        self.group_moved = group_moved


class Columns(Protocol):
    """A consumed batch as columns, for a hot loop that needs only the values.

    ``values`` : the records' values in consumption order; ``last`` : the last record of each
    partition (commit them to commit the batch). ``key(i)`` and ``message(i)`` read one record's
    key or whole message on demand (e.g. for a dead letter).
    """

    values: list[bytes]
    last: list[Message]

    def __len__(self) -> int: ...

    def key(self, i: int) -> bytes | None: ...

    def message(self, i: int) -> Message: ...


class MessageColumns:
    """A batch of whole :class:`Message` records as a :class:`Columns` (the in-memory bus's, and :func:`select`'s)."""

    def __init__(self, msgs: list[Message]) -> None:
        self.msgs = msgs
        self.values = [m.value for m in msgs]
        last: dict[tuple[str, int], Message] = {}
        for m in msgs:
            last[(m.topic, m.partition)] = m
        self.last = list(last.values())

    def __len__(self) -> int:
        return len(self.msgs)

    def key(self, i: int) -> bytes | None:
        return self.msgs[i].key

    def message(self, i: int) -> Message:
        return self.msgs[i]


def select(batch: Columns, index: Sequence[int]) -> Columns:
    """The records ``index`` (positions in ``batch``, ascending) as a batch of their own: values, keys, messages and
    the last record of each partition among them (what commits them). Builds a :class:`Message` per record: for the
    rare batch that must be cut in two, not for the hot loop."""
    return MessageColumns([batch.message(i) for i in index])


class Consumer(Protocol):
    """A member of a consumer group (or a group-less reader)."""

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Return up to ``max_messages`` records, waiting at most ``timeout`` seconds.

        Called by a service loop; an empty list means nothing arrived in time.
        """
        ...

    def consume_values(self, max_messages: int, timeout: float) -> Columns:
        """:meth:`consume` as columns: called by the scorer's hot loop, which needs no
        :class:`Message` per record (the Kafka adapter skips building them)."""
        ...

    def read_to_end(self, timeout: float = 10.0) -> list[Message]:
        """Every record up to the end of the log as it stood when called (start-up replays)."""
        ...

    def lag(self) -> int:
        """Records after this consumer's position on what it reads: called by gauges."""
        ...

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark ``messages`` processed. Called only after their results were written."""
        ...

    @property
    def assignments(self) -> int:
        """How many times the group has handed this consumer its partitions (0 before the first time, or never for an
        in-process bus, whose one member holds every partition from the start): a change means the partitions may
        have been read and committed by another member meanwhile."""
        ...

    def trouble(self) -> str | None:
        """What the broker last failed with, if within the last seconds (a broker away: the service's ``/healthz`` says so;
        an idle consumer otherwise looks healthy), else ``None``."""
        ...

    def rewind(self) -> None:
        """Go back to the group's committed offsets: what was read since comes again.

        After a failed commit, so that nothing read past it is skipped by a later commit.
        Where the group has committed nothing yet, back to where a new member would start
        (the beginning, or for ``from_beginning=False`` the end: records read before the
        first commit of such a consumer are not read again). A group-less reader has
        nothing to go back to.
        """
        ...

    def close(self) -> None:
        """Leave the group; uncommitted messages go to the next member."""
        ...


class Bus(Protocol):
    """Publish to and consume from named topics."""

    def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one record for sending (buffered until ``flush``)."""
        ...

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every published record is acknowledged; raise if any failed."""
        ...

    def consumer(
        self, topics: Sequence[str], group: str | None, *, from_beginning: bool = True
    ) -> Consumer:
        """A consumer of ``topics``.

        ``group=None`` gives a group-less reader that starts at the beginning (or the
        end, with ``from_beginning=False``) and never commits: used to rebuild state
        from a log, and by every scorer to see every model version.
        """
        ...

    def publish_and_commit(
        self, consumer: Consumer | None, records: Sequence[Record], messages: Sequence[Message]
    ) -> None:
        """Publish ``records`` and commit ``messages`` on ``consumer`` as one step.

        Called by a service once a consumed batch is fully processed, with the records
        that batch produced (e.g. its dead letters). A transactional adapter makes the
        two atomic, so a crash can neither lose those records nor publish them twice;
        otherwise it flushes the records, then commits.
        """
        ...

    def lag(self, topic: str, group: str) -> int:
        """Records of ``topic`` not yet committed by ``group`` (ops gauges and tests)."""
        ...

    def group_members(self, group: str) -> int:
        """Consumers in ``group`` now (0 for a group nobody has joined, or all have left).

        Called by the dispatcher to send work only while labelers read the queue topic.
        """
        ...

    def messages(self, topic: str) -> list[Message]:
        """Every record of ``topic`` now in the log (reports, tests)."""
        ...

    def ensure_topics(self, topics: Sequence[str], timeout: float = 30.0) -> None:
        """Create the topics that do not exist yet (a broker's: trying for at most about ``timeout`` seconds)."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...
