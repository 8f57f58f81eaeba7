"""The capped pool's counters in Redis (``read``, ``streamed``, ``rejected``) count each item record once, crash or not.

A scorer counts its batches in Redis *before* their offsets commit to Kafka, and marks there how far each
partition was counted (:meth:`QueueWriter.count_streamed`). A crash between the two (or a rolled-back
commit) gets the records read again: those at or below their partition's mark are counted already, so
their batch is scored and written as any other (queue writes are idempotent; dead letters go out with
its offsets) but left out of the counts. Counting after the commit instead lost a batch's counts to a
crash in between, and nothing could tell.
"""

from __future__ import annotations

from collections.abc import Sequence

from activestream.rankedqueue import RankedQueue
from activestream.streams.bus import Columns, Message, select

Partition = tuple[str, int]


class PoolCounts:
    """What a scorer's confirmed batches add to the pool's counters, and which records those counters hold already.

    Parameters
    ----------
    queue : the queue whose ``pool_stats`` and ``pool_offsets`` it writes.
    active : whether the queue keeps pool counters (a capacity or a reservoir); without, every method does nothing.
    """

    def __init__(self, queue: RankedQueue, active: bool) -> None:
        self.queue = queue
        self.active = active
        self._marks: dict[Partition, int] | None = None  # Redis's marks not yet read past (None: read them again)
        self._expected: dict[Partition, int] = {}  # the mark each partition has in Redis as this scorer knows it (-1: none)
        self._streamed = self._rejected = self._read = 0
        self._upto: dict[Partition, int] = {}  # the highest offset confirmed per partition, not yet counted

    def read_again(self) -> None:
        """Forget what waits to be counted and read the marks from Redis again before the next batch: the records come
        again from the committed offsets (a rewind, an outage, the group handing out the partitions again; another
        scorer may have counted them meanwhile, or what was counted before a failed commit comes again)."""
        self._drop()
        self._marks = None

    def split(self, batch: Columns) -> list[tuple[Columns, bool]]:
        """``batch`` as ``(part, counted)`` pieces, in order: the records the counters hold already (``counted=False``)
        apart from the others. One piece, the batch itself, unless it reads again what was counted.

        The caller calls :meth:`read_again` whenever the records come again from the committed offsets.
        """
        if not self.active:
            return [(batch, True)]
        if self._marks is None:
            self._marks = self.queue.counted_offsets()
            self._expected = dict(self._marks)
        marks = self._marks
        if not marks or not any((m.topic, m.partition) in marks for m in batch.last):
            return [(batch, True)]
        again: list[int] = []
        new: list[int] = []
        for i in range(len(batch)):  # (once per partition after a restart: Message per record is fine here)
            m = batch.message(i)
            mark = marks.get((m.topic, m.partition))
            (again if mark is not None and m.offset <= mark else new).append(i)
        for m in batch.last:  # read past a mark: nothing after it can be counted already (until the next read of the marks)
            if m.offset > marks.get((m.topic, m.partition), m.offset):
                del marks[(m.topic, m.partition)]
        if not again:
            return [(batch, True)]
        if not new:
            return [(batch, False)]
        return [(select(batch, again), False), (select(batch, new), True)]

    def confirmed(self, streamed: int, rejected: int, read: int, msgs: Sequence[Message], counted: bool) -> None:
        """A batch's write is confirmed: its counts (unless ``counted`` is false: held already) wait for the next :meth:`flush`."""
        if not self.active:
            return
        for m in msgs:
            key = (m.topic, m.partition)
            self._upto[key] = max(self._upto.get(key, -1), m.offset)
        if counted:
            self._streamed += streamed
            self._rejected += rejected
            self._read += read

    def flush(self) -> bool:
        """Count in Redis what was confirmed since the last flush: call it before committing those batches' offsets.

        Returns ``False`` when another scorer counted one of their partitions meanwhile (it moved to it in a rebalance,
        and it read the records again): nothing was counted, and the caller must not commit but read again from its
        committed offsets (the marks are read again first)."""
        if not (self.active and self._upto):
            self._drop()
            return True
        offsets = {key: (self._expected.get(key, -1), upto) for key, upto in self._upto.items()}
        counted = self.queue.count_streamed(self._streamed, self._rejected, self._read, offsets)
        if counted:
            self._expected.update(self._upto)
            self._drop()
        else:
            self.read_again()
        return counted

    def _drop(self) -> None:
        """Forget what waits to be counted (counted, or its records come again)."""
        self._streamed = self._rejected = self._read = 0
        self._upto = {}
