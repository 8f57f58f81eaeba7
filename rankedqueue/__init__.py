"""The ranked queue: a Redis sorted set of pending items, written by the scorer, leased by labelers."""

from activestream.rankedqueue.keys import QueueKeys
from activestream.rankedqueue.queue import FEATURE_DTYPES, Leased, PackedIds, PendingAdd, RankedQueue

__all__ = ["FEATURE_DTYPES", "Leased", "PackedIds", "PendingAdd", "QueueKeys", "RankedQueue"]
