"""The scorer's side of the capped pool: send Redis only the items that can enter it.

The enqueue script admits and evicts (:mod:`activestream.rankedqueue.pool`); each reply carries
the thresholds an item had to beat (the lowest pending score of a full pool, the largest
sampling key of a full reservoir). The scorer keeps them and drops, before any Redis work, the
items that beat neither: on a full pool almost all of a stream. The thresholds are refreshed by
every reply (per micro-batch), read afresh after a re-rank and at least every
``REFRESH_SECONDS`` (when nothing was sent, e.g. labels freed room). A stale threshold only
sends items the script then turns away, or turns away items that would have just entered.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from activestream.rankedqueue import PendingAdd, RankedQueue
from activestream.rankedqueue.pool import Thresholds, sampling_keys
from activestream.scorer.batches import BatchCounts
from activestream.scorer.metrics import ScorerMetrics

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0  # longest the scorer goes without reading the thresholds while it writes nothing
AGE_EVICT_SECONDS = 1.0  # how often the scorer evicts what is older than the pool's max age


class Admission:
    """Filters micro-batches by the pool's thresholds and counts what the pool did.

    Parameters
    ----------
    queue : the ranked queue (its ``pool`` gives the limits).
    metrics : the scorer's metrics (the ``pool_*`` counters).
    """

    def __init__(self, queue: RankedQueue, metrics: ScorerMetrics) -> None:
        self.queue = queue
        self.metrics = metrics
        self.active = queue.pool.capacity is not None or queue.pool.reservoir > 0
        self.thresholds = Thresholds(reservoir=np.inf if queue.pool.reservoir else 0.0)  # unknown yet: send everything
        self._read_at = -np.inf  # monotonic time of the last threshold update
        self._aged_at = -np.inf
        self.kept_keys: np.ndarray | None = None  # sampling keys of what the last filter() kept (None: not computed)

    def filter(self, ids: list[str], scores: np.ndarray, X: np.ndarray, metas: list[dict[str, object]],
               counts: BatchCounts) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, object]]]:
        """The items of a scored micro-batch that can enter the pool or the reservoir.

        Parameters
        ----------
        ids, metas : (n,) the batch's items to queue.
        scores : (n,) their scores.
        X : (n, n_features) their features.
        counts : the batch's counts: ``streamed`` += n, ``scored`` -= and ``rejected`` += those dropped.

        Returns
        -------
        ``(ids, scores, X, metas)`` of the ``m <= n`` items kept; ``kept_keys`` then holds their (m,)
        sampling keys (with a reservoir), for :meth:`QueueWriter.add_nowait`.
        """
        self.kept_keys = None
        if not self.active:
            self._evict_aged(time.monotonic())  # (ACTIVESTREAM_POOL_MAX_AGE holds without a capacity too)
            return ids, scores, X, metas
        self._housekeeping()
        counts.streamed += len(ids)
        if not ids:
            return ids, scores, X, metas
        sampled = self.queue.pool.reservoir > 0
        keys = sampling_keys(ids) if sampled else np.ones(len(ids))
        keep = self.thresholds.wanted(scores, keys)
        dropped = int(len(ids) - keep.sum())
        if dropped == 0:
            self.kept_keys = keys if sampled else None
            return ids, scores, X, metas
        counts.rejected += dropped
        counts.scored -= dropped
        idx = np.flatnonzero(keep)
        self.kept_keys = keys[idx] if sampled else None  # (the enqueue script needs them: not hashed twice)
        return [ids[j] for j in idx], scores[idx], X[idx], [metas[j] for j in idx]

    def confirmed(self, pending: PendingAdd | None, counts: BatchCounts) -> None:
        """A micro-batch's write is confirmed: take its thresholds and count what the pool did (``counts``: the batch's)."""
        if pending is None or not self.active:
            return
        if pending.thresholds is not None:
            self.thresholds, self._read_at = pending.thresholds, time.monotonic()
        counts.rejected += pending.rejected
        counts.scored -= pending.rejected
        self.metrics.pool_evictions.inc(pending.evicted)
        self.metrics.reservoir_replacements.inc(pending.replaced)

    def refresh(self) -> None:
        """Read the thresholds afresh (after a re-rank: the scores changed)."""
        if self.active:
            self.thresholds, self._read_at = self.queue.thresholds(), time.monotonic()

    def committed(self, counts: BatchCounts) -> None:
        """Committed batches' counts: into the metrics (the pool's counters in Redis: :class:`~activestream.scorer.pool_counts.PoolCounts`)."""
        if self.active and counts.rejected:
            self.metrics.pool_rejections.inc(counts.rejected)

    def idle(self) -> None:
        """A poll brought no items: pending items still age out (``ACTIVESTREAM_POOL_MAX_AGE`` holds on a quiet stream)."""
        self._evict_aged(time.monotonic())

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._read_at >= REFRESH_SECONDS:
            self.refresh()
        self._evict_aged(now)

    def _evict_aged(self, now: float) -> None:
        max_age = self.queue.pool.max_age
        if max_age is not None and now - self._aged_at >= AGE_EVICT_SECONDS:
            self._aged_at = now
            n = self.queue.evict_older_than(max_age)
            self.metrics.pool_age_evictions.inc(n)
            if n:
                log.info("evicted %d pending items older than %.0f s", n, max_age)

