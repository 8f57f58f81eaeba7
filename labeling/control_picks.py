"""The random-control slice of leases: which items complete a uniform sample of the stream, and how a labeler sees them."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from activestream.labeling.control_share import ControlShare, Explore, accuracy_width, control_share
from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.keys import META_CAMPAIGN
from activestream.schemas.campaign import read_record

log = logging.getLogger(__name__)

# How often, at most, a process says its control walk ran out (every lease asks for picks again).
WALK_EMPTY_EVERY_S = 600.0


class ControlPicker:
    """The random-control slice: a share of leased items that completes a uniform sample of the stream.

    The picks walk the items in the order of their sampling key (a uniform hash of the id,
    :func:`activestream.rankedqueue.pool.sampling_keys`): each pick is the item of smallest key
    not labeled yet (:meth:`activestream.rankedqueue.RankedQueue.control_walk`). So every item
    whose key is below the walk's frontier is labeled, by the walk or already by the strategy:
    those labels are a uniform sample of the stream, whatever the strategy took out of the pool
    (the live estimates use them all, see :func:`activestream.retrainer.estimates.walked_sample`).
    Items drawn uniformly from those still *pending* were not: on a pool the strategy has
    labeled a good share of, they are the easy remainder (docs/benchmarks.md, live estimates).
    The retrainer scores the walk's own picks with the live model before training on them (live
    accuracy, the auto-accept calibration set). Used by the labeler API's leases and by the
    dispatcher's, so topic labelers get the slice too. With a capped pool the walk runs over
    the random reservoir (a uniform sample of every item streamed, not of the pool's survivors;
    see :mod:`activestream.rankedqueue.pool`).

    Parameters
    ----------
    queue : the ranked queue.
    explore : share of leased items drawn at random, in [0, 1], or the adaptive rule
        (:class:`activestream.labeling.control_share.ControlShare`: a share set per lease by the
        live version's estimates, which the scorer keeps in the queue's meta).
    rng : the draws' generator (seeded: reproducible campaigns).
    """

    def __init__(self, queue: RankedQueue, explore: Explore, rng: np.random.Generator) -> None:
        if not isinstance(explore, ControlShare) and not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        self.queue = queue
        self.explore = explore
        self._rng = rng
        self._credit = 0.0
        self._estimates: dict[str, Any] | None = None  # the newest live version's figures with an accuracy estimate
        self._estimates_version = 0  # ... and that version
        self._said_empty = -WALK_EMPTY_EVERY_S  # (monotonic time the walk's running out was last logged)

    def count(self, k: int) -> int:
        """How many of ``k`` items to lease are control picks (the share: fixed, or :func:`control_share` of the live version's estimates)."""
        share = self.explore
        if isinstance(share, ControlShare):  # (one meta read per lease: the live version's record, as GET /campaign reads it)
            record = read_record(self.queue.get_meta(META_CAMPAIGN))
            version = record.get("version") if record else None
            if not isinstance(version, int) or version < self._estimates_version:
                self._estimates, self._estimates_version = None, 0  # (no record, or an older version: the campaign started afresh)
            if record and isinstance(version, int) and accuracy_width(record["metrics"]) is not None:
                self._estimates, self._estimates_version = record["metrics"], version
            # The newest estimate seen steers: a version may carry none of its own (``SimConfig.live_estimates_every``
            # estimates every n-th only; the services' versions carry the newest).
            share = control_share(share, self._estimates)
        # Credit carries over between leases, so small batches still get their exact share.
        self._credit += k * share
        n = min(k, int(self._credit))
        self._credit -= n
        return n

    def pick(
        self, n: int, holder: str, ttl: float, now: float, *, max_held: int | None = None, passed_since: float | None = None
    ) -> list[tuple[str, float]]:
        """Lease to ``holder`` as control picks the next ``n`` items of the control walk (smallest sampling key first).

        Never one it passed on (for a labeler group, ``passed_since``: since then; see
        :meth:`activestream.rankedqueue.RankedQueue.top_for`). A reservoir member the queue
        does not hold (the pool did not take it, or evicted it) is taken into it first.
        """
        out: list[tuple[str, float]] = []
        for _ in range(3):  # (another labeler may claim a walked item first)
            want = n - len(out)
            if want <= 0:
                break
            walked = self.queue.control_walk(want * 5, self._rng)  # (room for items this labeler passed on)
            if not walked:
                self._walk_ran_out(want)
                break
            fresh = [i for i, p in zip(walked, self.queue.passed_on(holder, walked, passed_since), strict=True) if not p][:want]
            if not fresh:
                break
            if self.queue.reservoir_size():
                self.queue.promote(fresh)
            out += self.queue.claim(fresh, holder, ttl, now, control=True, max_held=max_held)
        return out

    def _walk_ran_out(self, want: int) -> None:
        """Say (at most every :data:`WALK_EMPTY_EVERY_S`) that control picks were wanted and none is left to walk."""
        if time.monotonic() - self._said_empty < WALK_EMPTY_EVERY_S:
            return
        self._said_empty = time.monotonic()
        size = self.queue.reservoir_size()
        where = (f"the random reservoir's {size} member(s) are labeled or out with labelers (raise ACTIVESTREAM_RESERVOIR_SHARE)"
                 if size else "no pending item is left to walk")
        log.warning("%d control pick(s) wanted, none left: %s; control labels, the live estimates and auto-accept's calibration "
                    "wait for new items", want, where)


def control_flagged(metadata: dict[str, Any], control: bool) -> dict[str, Any]:
    """An item's metadata as a labeler sees it: ``"control": true`` on random-control picks only.

    The producer's own ``control`` key is dropped: a labeler that copies the flag into its
    label (the terminal labeler) must not turn a ranked pick into a control label.
    """
    out = {k: v for k, v in metadata.items() if k != "control"}
    if control:
        out["control"] = True
    return out
