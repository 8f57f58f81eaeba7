"""The ranked queue: a Redis sorted set of pending items, written by the scorer, leased by labelers.

Modules: ``keys`` (key names and constants), ``scripts`` (the Lua scripts in ``lua/``),
``dump`` (the DUMP-format encoder a re-rank RESTOREs), ``segments`` (feature-row storage and
the segment cache), ``base`` / ``writer`` / ``leases`` (the shared base, the scorer's side,
labeling's side) and ``queue`` (:class:`RankedQueue`, both sides in one).
"""

from activestream.rankedqueue.base import QueueBase
from activestream.rankedqueue.keys import FEATURE_DTYPES, QueueKeys
from activestream.rankedqueue.leases import Leased, QueueLeases
from activestream.rankedqueue.queue import RankedQueue
from activestream.rankedqueue.segments import PackedIds, ScoreFn, SegmentCache
from activestream.rankedqueue.writer import PendingAdd, QueueWriter

__all__ = [
    "FEATURE_DTYPES",
    "Leased",
    "PackedIds",
    "PendingAdd",
    "QueueBase",
    "QueueKeys",
    "QueueLeases",
    "QueueWriter",
    "RankedQueue",
    "ScoreFn",
    "SegmentCache",
]
