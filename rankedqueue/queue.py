"""The ranked labeling queue in Redis: a sorted set with domain verbs, for one namespace.

:class:`RankedQueue` is both sides in one object: the writer (:mod:`rankedqueue.writer`,
what the scorer calls) and the leases (:mod:`rankedqueue.leases`, what labeling calls),
over the shared :mod:`rankedqueue.base`.

Storage, per namespace (key names in :mod:`rankedqueue.keys`):

- ``pending`` (ZSET id -> score) is the queue; ``leased`` (ZSET id -> expiry) holds the
  items out with labelers.
- Features live in *segments* (:mod:`rankedqueue.segments`): one per enqueue batch, with
  ``featloc`` mapping an id to ``"<n>:<row>"``.
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
    client : a redis-py client (``decode_responses=False``).
    keys : the key names (namespace) to use.
    feature_dtype : ``"float32"`` (default) or ``"float16"``: how stored features are kept.
        float16 halves their memory (values are rounded to ~3 significant digits and
        clipped to +-65504); the first writer fixes it for the namespace, and every reader
        gets float32 back either way.
    segment_cache_bytes : keep up to this many bytes of the feature segments a
        :meth:`rerank` reads, so the next one reads only new segments and which rows died
        (a segment's rows never change; a copy is used only while the segment's token
        matches, so a segment number that names other rows is read afresh). 0: off.
    """
