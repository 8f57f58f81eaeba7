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
    time would count it twice.
    """

    scored: int = 0
    auto_accepted: int = 0
    refused: int = 0
    dead: list[tuple[str, str]] = field(default_factory=list)  # (source, reason code) per dead letter

    def add(self, other: BatchCounts) -> None:
        self.scored += other.scored
        self.auto_accepted += other.auto_accepted
        self.refused += other.refused
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

    def auto_labels(self) -> list[Record]:
        """The auto-labels of this confirmed batch, less those of items the queue already had.

        Such an item was queued by an earlier read of the batch whose commit did not happen
        (rolled back, or a crash) under a model that did not accept it: the queue's first
        write wins, so it stays queued and counts as scored, not auto-accepted.
        """
        if not self.auto:
            return []
        assert self.pending is not None
        known = self.pending.known
        if not any(known):
            return list(self.auto.values())
        self.counts.auto_accepted -= sum(known)
        self.counts.scored += sum(known)
        return [record for record, queued in zip(self.auto.values(), known, strict=True) if not queued]
