"""The ranked labeling queue in Redis: a sorted set with domain verbs, for one namespace.

:class:`RankedQueue` is both sides in one object: the writer (:mod:`rankedqueue.writer`,
what the scorer calls) and the leases (:mod:`rankedqueue.leases`, what labeling calls),
over the shared :mod:`rankedqueue.base`.

Storage, per namespace (key names in :mod:`rankedqueue.keys`):

- ``pending`` (ZSET id -> score) is the queue; ``leased`` (ZSET id -> expiry) holds the
  items out with labelers.
- Features live in *segments* (:mod:`rankedqueue.segments`): the rows of one or more enqueue
  calls (``lua/fn_segment_write.lua``), with ``featloc`` mapping an id to ``"<n>:<row>"``.
- A bulk re-rank swaps in a new sorted set built client-side as a ``DUMP`` payload
  (:mod:`rankedqueue.dump`).

Every write is a Lua script (:mod:`rankedqueue.scripts`, ``lua/*.lua``), atomic and idempotent.
"""

from __future__ import annotations

from activestream.rankedqueue.leases import QueueLeases
from activestream.rankedqueue.writer import QueueWriter


class RankedQueue(QueueWriter, QueueLeases):
    """Redis-backed ranked queue for one namespace: the scorer's side and labeling's side together.

    Parameters
    ----------
    client, keys, feature_dtype, segment_cache_bytes, pool, segment_rows : as for :class:`QueueWriter`.
    """
