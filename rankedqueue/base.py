"""What both sides of the ranked queue share: the client, the keys, the scripts, the clock and the reads.

The writer side (:mod:`rankedqueue.writer`, the scorer's) and the lease side
(:mod:`rankedqueue.leases`, labeling's) both build on :class:`QueueBase`, as arq's enqueue
side and worker share its ``jobs`` module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import redis
from redis.exceptions import NoScriptError

from activestream.rankedqueue.keys import (
    CLEAR_BATCH,
    DEFAULT_FEATURE_DTYPE,
    META_DECLARED_CLASSES,
    META_FEATURE_DTYPE,
    META_FEATURE_NAMES,
    META_RANKED_VERSION,
    POOL_READ,
    QueueKeys,
)
from activestream.rankedqueue.pool import SamplingKeyCache
from activestream.rankedqueue.scripts import Scripts, queue_script, raise_unexpected

logger = logging.getLogger(__name__)


def glob_literal(text: str) -> str:
    """``text`` as a Redis glob pattern that matches only itself (``*?[]\\`` escaped)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def members(raw: Any) -> list[str]:
    """Sorted-set members as returned by redis-py (bytes) -> str (its stubs type replies loosely)."""
    return [m.decode() for m in raw]


def scored(raw: Any) -> list[tuple[str, float]]:
    """``(member, score)`` pairs of a ``WITHSCORES`` reply -> ``[(str, float)]``."""
    return [(m.decode(), float(sc)) for m, sc in raw]


def decode_features(raw: Any) -> list[np.ndarray | None]:
    """The ``features`` script's reply (the dtype, then one row or nil per id) -> (n_features,) float32 rows."""
    dtype = np.dtype(raw[0].decode()).newbyteorder("<")
    return [np.frombuffer(b, dtype=dtype).astype(np.float32) if b is not None else None for b in raw[1:]]


# Namespaces other_namespaces compares a new one with, at most (a Redis of many campaigns: the scan stops there).
MAX_NAMESPACES_LOOKED_AT = 10_000


class QueueBase:
    """A connection to one queue namespace: its keys, its scripts, its clock and its read-only views.

    Parameters
    ----------
    client : a redis-py client (``decode_responses=False``).
    keys : the key names (namespace) to use.
    """

    def __init__(self, client: redis.Redis, keys: QueueKeys | None = None) -> None:
        self.r = client
        self.k = keys or QueueKeys()
        self.scripts = Scripts(client)
        # (the control walk without a reservoir hashes every pending item at every lease: up to 200,000, see control_walk)
        self.sampling_keys = SamplingKeyCache(400_000)

    # ----------------------------------------------------------------- clock
    def now(self) -> float:
        """The queue's clock: Redis's time, in UNIX seconds (one round trip).

        Lease expiries, passes and enqueue times are written by one host and compared by
        another (labeling API, dispatchers, scorers). Each host's own clock would let a
        host running ahead expire the others' leases early; the one Redis is the clock they
        share. Every ``now`` left out of this class's methods is this one.
        """
        sec, usec = self.r.time()
        return float(sec) + usec / 1e6

    # ----------------------------------------------------------------- meta
    def set_meta(self, **fields: Any) -> None:
        self.r.hset(self.k.meta, mapping={k: str(v) for k, v in fields.items()})

    def get_meta(self, name: str) -> str | None:
        v: Any = self.r.hget(self.k.meta, name)
        return v.decode() if v is not None else None

    def get_meta_fields(self, *names: str) -> dict[str, str | None]:
        """Several meta fields in one round trip (``None`` for unset ones)."""
        values: list[Any] = self.r.hmget(self.k.meta, list(names))
        return {n: v.decode() if v is not None else None for n, v in zip(names, values, strict=True)}

    def agree_meta(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless it is set already; the value it holds either way."""
        pipe = self.r.pipeline()
        pipe.hsetnx(self.k.meta, name, value)
        pipe.hget(self.k.meta, name)
        _, held = pipe.execute()
        return held.decode()  # type: ignore[no-any-return]

    def other_namespaces(self, limit: int = 5) -> list[str] | None:
        """``None`` when this namespace holds a campaign (its meta hash exists); else up to ``limit`` namespaces of
        this Redis that do, the names closest to this one first (a new namespace beside others is often a typo of one:
        commands say so; the first ``limit`` found could leave the one meant out)."""
        import difflib

        if self.r.exists(self.k.meta):
            return None
        found: set[str] = set()
        for name, _ in self._campaigns():
            found.add(name)
            if len(found) >= MAX_NAMESPACES_LOOKED_AT:
                break
        mine = self.k.namespace
        return sorted(found, key=lambda n: (-difflib.SequenceMatcher(None, mine, n).ratio(), n))[:limit]

    def namespaces_on_topics(self, topic_prefix: str) -> list[str]:
        """The other namespaces of this Redis whose campaign runs on the Kafka topics ``topic_prefix``.* (recorded with their
        queue): a second campaign on them would read the first one's items and labels and publish models to it."""
        from activestream.rankedqueue.keys import META_TOPIC_PREFIX

        return sorted(name for name, key in self._campaigns()
                      if name != self.k.namespace and self.r.hget(key, META_TOPIC_PREFIX) == topic_prefix.encode())

    def _campaigns(self) -> Iterator[tuple[str, bytes]]:
        """``(namespace, its meta key)`` of each namespace of this Redis that holds a campaign (its meta hash exists)."""
        head = f"{self.k.prefix}:"
        for key in self.r.scan_iter(match=glob_literal(head) + "*:meta", count=CLEAR_BATCH):
            name = key.decode()[len(head):-len(":meta")]
            if ":" not in name:  # (a namespace's own meta, not a key of another kind ending so)
                yield name, key

    def declared_classes(self) -> tuple[str | int, ...] | None:
        """The campaign's declared classes as recorded (:meth:`record_declared_classes`), ``None`` when none are."""
        return parse_declared(self.get_meta(META_DECLARED_CLASSES))

    def record_declared_classes(self, classes: Sequence[str | int]) -> tuple[str | int, ...] | None:
        """Record the campaign's declared classes (``ACTIVESTREAM_CLASSES``) for every process of the campaign, also the ones
        started without the setting; returns the ones recorded before (``None``: none), so a caller can say they changed."""
        pipe = self.r.pipeline()
        pipe.hget(self.k.meta, META_DECLARED_CLASSES)
        pipe.hset(self.k.meta, META_DECLARED_CLASSES, json.dumps(list(classes)))
        before, _ = pipe.execute()
        return parse_declared(before.decode() if before is not None else None)

    def feature_names(self) -> list[str] | None:
        """The names of the campaign's features (a table's header, ``ACTIVESTREAM_FEATURE_NAMES``), ``None`` when none is recorded."""
        return parse_feature_names(self.get_meta(META_FEATURE_NAMES))

    def items_streamed(self) -> int | None:
        """Item records the scorers read from the items topic, each once (``None``: not counted, the scorers keep no pool counters)."""
        raw = self.r.hget(self.k.pool_stats, POOL_READ)
        return None if raw is None else int(raw)

    def record_feature_names(self, names: Sequence[str], *, first_wins: bool = False) -> list[str] | None:
        """Record the features' names (``first_wins``: unless some are already); the names held afterwards."""
        value = json.dumps([str(n) for n in names])
        if first_wins:
            return parse_feature_names(self.agree_meta(META_FEATURE_NAMES, value))
        self.set_meta(**{META_FEATURE_NAMES: value})
        return list(names)

    def now_and_ranked_version(self) -> tuple[float, int]:
        """:meth:`now` and :meth:`ranked_version` in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.time()
        pipe.hget(self.k.meta, META_RANKED_VERSION)
        (sec, usec), version = pipe.execute()
        return float(sec) + usec / 1e6, int(version or 0)

    def ranked_version(self) -> int:
        """Model version whose scores the whole queue was last re-ranked with (0: none yet)."""
        return int(self.get_meta(META_RANKED_VERSION) or 0)

    def _read_dtype(self) -> np.dtype:
        """The dtype the namespace stores its feature rows in (little-endian)."""
        return np.dtype(self.get_meta(META_FEATURE_DTYPE) or DEFAULT_FEATURE_DTYPE).newbyteorder("<")

    # ----------------------------------------------------------------- items
    def features_of(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Stored features (float32) of ``ids``; ``None`` for unknown, labeled or dropped items."""
        if not ids:
            return []
        return decode_features(self.scripts.features(keys=self._features_keys(), args=[self.k.segment_prefix, *ids]))

    def _features_keys(self) -> list[str]:
        return [self.k.featloc, self.k.segment_width, self.k.meta]

    def features_and_metadata(self, ids: Sequence[str]) -> tuple[list[np.ndarray | None], list[dict[str, Any]]]:
        """:meth:`features_of` and :meth:`metadata_of` of ``ids`` in one round trip (what a lease hands out)."""
        if not ids:
            return [], []
        pipe = self.r.pipeline(transaction=False)
        queue_script(pipe, self.scripts.features, self._features_keys(), [self.k.segment_prefix, *ids])
        pipe.hmget(self.k.metadata, list(ids))
        rows, metas = raise_unexpected(pipe.execute(raise_on_error=False))
        features = self.features_of(ids) if isinstance(rows, NoScriptError) else decode_features(rows)  # (a restarted Redis)
        return features, [json.loads(b) if b else {} for b in metas]

    def metadata_of(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raw = self.r.hmget(self.k.metadata, list(ids))
        return [json.loads(b) if b else {} for b in raw]

    def pending_ids(self) -> list[str]:
        """Every pending item id (any order)."""
        return members(self.r.zrange(self.k.pending, 0, -1))

    def top(self, n: int, offset: int = 0) -> list[tuple[str, float]]:
        """The ``n`` highest-scored pending items after skipping ``offset``, best first (read-only)."""
        return scored(self.r.zrevrange(self.k.pending, offset, offset + n - 1, withscores=True))

    def members_at(self, ranks: Sequence[int]) -> list[str]:
        """Pending ids at the given ranks (0 = best; one round trip; ranks past the end are left out).

        A seeded caller gets a reproducible sample of the queue, e.g. the reference set of
        density weighting (``ZRANDMEMBER`` would not be reproducible).
        """
        pipe = self.r.pipeline(transaction=False)
        for r in ranks:
            pipe.zrevrange(self.k.pending, int(r), int(r))
        return [m for reply in pipe.execute() for m in members(reply)]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        """Up to ``n`` pending items drawn uniformly by ``rng`` (reproducible): ``(ids, (m, n_features) float32)``."""
        depth = self.depth()
        ranks: list[int] = rng.choice(depth, size=min(depth, n), replace=False).tolist() if depth else []
        ids = self.members_at(ranks)
        rows = [(i, f) for i, f in zip(ids, self.features_of(ids), strict=True) if f is not None]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [i for i, _ in rows], np.vstack([f for _, f in rows])

    def score_of(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.pending, item_id)  # type: ignore[return-value]

    def ranking(self) -> list[tuple[str, float]]:
        """Every pending item with its score, best first."""
        return scored(self.r.zrevrange(self.k.pending, 0, -1, withscores=True))

    def is_labeled(self, item_id: str) -> bool:
        return bool(self.r.sismember(self.k.labeled, item_id))

    def known(self, ids: Sequence[str]) -> list[bool]:
        """Whether the queue has met each of ``ids``: pending, leased, labeled or dropped (one round trip).

        An item produced but not scored yet is not known here (it is still on the items topic).
        """
        pipe = self.r.pipeline(transaction=False)
        for item_id in ids:
            pipe.zscore(self.k.pending, item_id)
            pipe.zscore(self.k.leased, item_id)
            pipe.sismember(self.k.labeled, item_id)
            pipe.sismember(self.k.dropped, item_id)
        replies = pipe.execute()
        return [any(r not in (None, 0, False) for r in replies[4 * i : 4 * i + 4]) for i in range(len(ids))]

    # ----------------------------------------------------------------- counts
    def depth(self) -> int:
        """Items in the pending sorted set (not counting leases that ran out but are not yet returned)."""
        return int(self.r.zcard(self.k.pending))

    def n_waiting(self, now: float | None = None) -> int:
        """Items waiting for a labeler: pending ones, and leased ones whose lease has run out.

        Read-only (for gauges): an expired lease is returned to the pending set only by the
        next lease or ``expire_leases``, which may be a while when labelers are idle.
        """
        now = self.now() if now is None else now
        pipe = self.r.pipeline(transaction=True)
        pipe.zcard(self.k.pending)
        pipe.zcount(self.k.leased, "-inf", now)
        pending, expired = pipe.execute()
        return int(pending) + int(expired)

    def n_scored(self) -> int:
        """Items waiting with a score of 0 or more: all but the ones the live model could not score (-1)."""
        return int(self.r.zcount(self.k.pending, 0, "+inf"))

    def n_leased(self, now: float | None = None) -> int:
        """Items out with labelers: leases that have not run out at ``now``."""
        return int(self.r.zcount(self.k.leased, f"({self.now() if now is None else now}", "+inf"))

    def n_leased_by(self, owner: str) -> int:
        """Items currently leased to ``owner``."""
        return int(self.r.scard(self.k.owned(owner)))

    def n_labeled(self) -> int:
        return int(self.r.scard(self.k.labeled))

    def n_dropped(self) -> int:
        """Items that left the queue unlabeled after ``max_skips`` labelers passed on them."""
        return int(self.r.scard(self.k.dropped))

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest unlabeled item was enqueued (0 when empty)."""
        now = self.now() if now is None else now
        first = scored(self.r.zrange(self.k.segment_time, 0, 0, withscores=True))
        return max(0.0, now - first[0][1]) if first else 0.0

    # ----------------------------------------------------------------- admin
    def clear(self) -> None:
        """Delete every key of this namespace."""
        keys = list(self.r.scan_iter(match=glob_literal(f"{self.k.prefix}:{self.k.namespace}:") + "*", count=CLEAR_BATCH))
        for lo in range(0, len(keys), CLEAR_BATCH):
            self.r.unlink(*keys[lo : lo + CLEAR_BATCH])
        self._forget_namespace()
        logger.debug("cleared queue namespace %s (%d keys)", self.k.namespace, len(keys))

    def _forget_namespace(self) -> None:
        """Drop what this client remembers of the namespace's contents (after :meth:`clear`); subclasses extend it."""


def parse_feature_names(raw: str | None) -> list[str] | None:
    """Recorded feature names: a JSON list, or the comma-joined text ``import-labels`` wrote before (``None``: none
    recorded, or neither: a warning)."""
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = [n.strip() for n in raw.split(",")] if "," in raw else None
    if not isinstance(names, list):
        logger.warning("queue meta 'feature_names' is not a JSON list (%.80r): features are shown by position", raw)
        return None
    return [str(n) for n in names]


def parse_declared(raw: str | None) -> tuple[str | int, ...] | None:
    """Recorded declared classes, a JSON list of strings or integers (``None``: none recorded, or not such a list)."""
    try:
        classes = json.loads(raw) if raw else None
    except ValueError:
        classes = None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in classes):
        return None
    return tuple(classes)
