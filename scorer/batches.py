"""What the scorer keeps per micro-batch between scoring it and committing its offsets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from activestream.rankedqueue import PendingAdd
from activestream.streams.bus import Message, Record


class MessageKeys(Sequence[str | None]):
    """Message keys as text, decoded only for the payloads that need one (those without a readable id)."""

    def __init__(self, key_at: Callable[[int], bytes | None], n: int) -> None:
        self._key_at = key_at
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> str | None:  # type: ignore[override]
        key = self._key_at(i)
        return key.decode(errors="replace") if key is not None else None


@dataclass
class BatchCounts:
    """What micro-batches add to the scorer's counters: applied when their offsets commit.

    A batch whose commit is rolled back is read and counted again; counting it at scoring
    time would count it twice. Each record read counts in exactly one outcome:
    ``read == scored + duplicate + auto_accepted + refused + rejected + len(dead)``.
    """

    read: int = 0  # item records read
    scored: int = 0  # newly queued
    duplicate: int = 0  # an id already taken: earlier in the batch, or by the queue
    auto_accepted: int = 0
    refused: int = 0  # over the stream budget
    rejected: int = 0  # not taken by the full capped pool (by the scorer's threshold or by Redis)
    streamed: int = 0  # offered to the capped pool (what the reservoir samples)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (source, reason code) per dead letter

    def add(self, other: BatchCounts) -> None:
        self.read += other.read
        self.scored += other.scored
        self.duplicate += other.duplicate
        self.auto_accepted += other.auto_accepted
        self.refused += other.refused
        self.rejected += other.rejected
        self.streamed += other.streamed
        self.dead += other.dead


@dataclass
class InflightBatch:
    """A micro-batch whose queue write was sent to Redis but not yet confirmed."""

    pending: PendingAdd | None
    dead: list[Record]
    auto: dict[str, Record]  # item id -> its auto-label, unless the queue turns out to have the item already
    msgs: list[Message]  # what commits the batch: all its messages, or the last one per partition
    counts: BatchCounts
    t0: float
    counted: bool = True  # False: records the pool's counters hold already (read again: see scorer.pool_counts)


def confirmed_auto_labels(w: InflightBatch) -> list[Record]:
    """The auto-labels of a confirmed batch, less those of items the queue already had (``w.counts`` follows).

    Such an item was queued by an earlier record of its id, or by an earlier read of the
    batch whose commit did not happen (rolled back, or a crash) under a model that did not
    accept it: the queue's first write wins, so it stays queued and its record counts as a
    duplicate, as any record of an id the queue had does.
    """
    if not w.auto:
        return []
    assert w.pending is not None
    known = w.pending.known
    if not any(known):
        return list(w.auto.values())
    w.counts.auto_accepted -= sum(known)
    w.counts.duplicate += sum(known)
    return [record for record, queued in zip(w.auto.values(), known, strict=True) if not queued]
