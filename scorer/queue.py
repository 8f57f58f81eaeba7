"""The ranked labeling queue in Redis: a sorted set with domain verbs.

Like arq's ``ArqRedis.enqueue_job``, every write is a small server-side script so
it is atomic and idempotent: adding an item that is already pending, leased or
labeled changes nothing, which is what makes Kafka redelivery harmless.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from scorer.keys import QueueKeys

_ADD = """
-- KEYS: pending, features, enqueued, labeled, leased, metadata, dropped
-- ARGV: now, then (id, score, features, metadata-json-or-empty) repeated
local now = ARGV[1]
local added = 0
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[4], id) == 0 and redis.call('SISMEMBER', KEYS[7], id) == 0
     and not redis.call('ZSCORE', KEYS[5], id) then
    added = added + redis.call('ZADD', KEYS[1], ARGV[i+1], id)
    redis.call('HSET', KEYS[2], id, ARGV[i+2])
    redis.call('ZADD', KEYS[3], 'NX', now, id)
    if ARGV[i+3] ~= '' then redis.call('HSET', KEYS[6], id, ARGV[i+3]) end
  end
end
return added
"""

# The per-owner sets are found at run time from the lease owner (single-node Redis;
# a Redis Cluster deployment would need hash tags on the namespace).
_RELEASE_OWNER = """
local function release_owner(owner_hash, owned_prefix, id)
  local owner = redis.call('HGET', owner_hash, id)
  if owner then
    redis.call('SREM', owned_prefix .. owner, id)
    redis.call('HDEL', owner_hash, id)
  end
end
"""

_EXPIRE = _RELEASE_OWNER + """
-- KEYS: leased, pending, lease_owner, last_score ; ARGV: now, owned_prefix, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local s = redis.call('HGET', KEYS[4], id) or '0'
  redis.call('ZADD', KEYS[2], s, id)
  release_owner(KEYS[3], ARGV[2], id)
  redis.call('HDEL', KEYS[4], id)
end
return #due
"""

_CLAIM = """
-- KEYS: pending, leased, lease_owner, last_score, owned ; ARGV: expires_at, labeler, ids...
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local s = redis.call('ZSCORE', KEYS[1], id)
  if s then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('HSET', KEYS[4], id, s)
    redis.call('SADD', KEYS[5], id)
    table.insert(out, id)
    table.insert(out, s)
  end
end
return out
"""

_MARK_LABELED = _RELEASE_OWNER + """
-- KEYS: label_ids, pending, leased, lease_owner, last_score, labeled, enqueued, features, metadata, skips
-- ARGV: label_id, item_id, owned_prefix
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = ARGV[2]
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
release_owner(KEYS[4], ARGV[3], id)
redis.call('HDEL', KEYS[5], id)
redis.call('SADD', KEYS[6], id)
redis.call('ZREM', KEYS[7], id)
redis.call('HDEL', KEYS[8], id)
redis.call('HDEL', KEYS[9], id)
redis.call('HDEL', KEYS[10], id)
return 1
"""

_SKIP = _RELEASE_OWNER + """
-- KEYS: leased, pending, lease_owner, last_score, skips, skipped_by, dropped, enqueued, features, metadata
-- ARGV: item_id, max_skips, owned_prefix
local id = ARGV[1]
local s = redis.call('HGET', KEYS[4], id)
if not s then s = redis.call('ZSCORE', KEYS[2], id) end
if not s then return -1 end
redis.call('ZREM', KEYS[1], id)
release_owner(KEYS[3], ARGV[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('SADD', KEYS[6], id)
local n = redis.call('HINCRBY', KEYS[5], id, 1)
if n >= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[2], id)
  redis.call('SADD', KEYS[7], id)
  redis.call('ZREM', KEYS[8], id)
  redis.call('HDEL', KEYS[9], id)
  redis.call('HDEL', KEYS[10], id)
  return 0
end
redis.call('ZADD', KEYS[2], s, id)
return n
"""

# Redis scripts take their arguments on the Lua stack; keep calls well under its limit.
_CHUNK = 1000


@dataclass(frozen=True)
class Leased:
    """An item handed to a labeler.

    Parameters
    ----------
    id : item id.
    score : its score when leased.
    features : (n_features,) float32.
    expires_at : UNIX time the lease ends.
    metadata : the item's metadata.
    """

    id: str
    score: float
    features: np.ndarray | None
    expires_at: float
    metadata: dict[str, Any]
    control: bool = False  # picked uniformly at random (the random-control slice)


class RankedQueue:
    """Redis-backed ranked queue for one namespace.

    Parameters
    ----------
    client : a redis-py client (``decode_responses=False``).
    keys : the key names (namespace) to use.
    """

    def __init__(self, client: redis.Redis, keys: QueueKeys | None = None) -> None:
        self.r = client
        self.k = keys or QueueKeys()
        self._add = client.register_script(_ADD)
        self._expire = client.register_script(_EXPIRE)
        self._claim = client.register_script(_CLAIM)
        self._mark = client.register_script(_MARK_LABELED)
        self._skip = client.register_script(_SKIP)

    # ----------------------------------------------------------------- scorer side
    def add(
        self,
        ids: Sequence[str],
        scores: np.ndarray,
        features: np.ndarray,
        metadata: Sequence[dict[str, Any]] | None = None,
        *,
        now: float | None = None,
    ) -> int:
        """Enqueue items unless already pending, leased, labeled or dropped.

        Parameters
        ----------
        ids : (n,) item ids.
        scores : (n,) scores, higher = label sooner.
        features : (n, n_features) float32, stored for re-ranking and for labels.
        metadata : (n,) JSON objects (may be empty).

        Returns
        -------
        Number of items newly added (a redelivered batch returns 0).
        """
        now = time.time() if now is None else now
        feats = np.ascontiguousarray(features, dtype="<f4")
        added = 0
        for lo in range(0, len(ids), _CHUNK):
            args: list[Any] = [now]
            for i in range(lo, min(lo + _CHUNK, len(ids))):
                md = metadata[i] if metadata is not None else None
                args += [ids[i], float(scores[i]), feats[i].tobytes(), json.dumps(md) if md else ""]
            keys = [self.k.pending, self.k.features, self.k.enqueued, self.k.labeled, self.k.leased, self.k.metadata, self.k.dropped]
            added += int(self._add(keys=keys, args=args))
        return added

    def pending_ids(self) -> list[str]:
        """Every pending item id (any order)."""
        return [m.decode() for m in self.r.zrange(self.k.pending, 0, -1)]

    def iter_pending(self, chunk: int = 50_000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield ``(ids, features (m, n_features))`` for every pending item, in chunks."""
        cursor = 0
        while True:
            cursor, batch = self.r.zscan(self.k.pending, cursor=cursor, count=chunk)
            if batch:
                ids = [m.decode() for m, _ in batch]
                raw = self.r.hmget(self.k.features, ids)
                keep = [(i, b) for i, b in zip(ids, raw, strict=True) if b is not None]
                if keep:
                    X = np.frombuffer(b"".join(b for _, b in keep), dtype="<f4").reshape(len(keep), -1)
                    yield [i for i, _ in keep], X
            if cursor == 0:
                return

    def rescore(self, ids: Sequence[str], scores: np.ndarray) -> None:
        """Update the scores of items that are still pending (ZADD XX: leased ones stay leased)."""
        pipe = self.r.pipeline(transaction=False)
        for lo in range(0, len(ids), 10_000):
            mapping = {ids[i]: float(scores[i]) for i in range(lo, min(lo + 10_000, len(ids)))}
            pipe.zadd(self.k.pending, mapping, xx=True)
        pipe.execute()

    def set_meta(self, **fields: Any) -> None:
        self.r.hset(self.k.meta, mapping={k: str(v) for k, v in fields.items()})

    def get_meta(self, name: str) -> str | None:
        v = self.r.hget(self.k.meta, name)
        return v.decode() if v is not None else None

    def ensure_n_features(self, n: int) -> int:
        """Record the feature dimension on first use; return the one every scorer must enforce."""
        self.r.hsetnx(self.k.meta, "n_features", n)
        return int(self.r.hget(self.k.meta, "n_features") or n)

    # ----------------------------------------------------------------- labeler side
    def expire_leases(self, now: float | None = None) -> int:
        """Return every item whose lease has run out to the queue at its old score."""
        now = time.time() if now is None else now
        keys = [self.k.leased, self.k.pending, self.k.lease_owner, self.k.last_score]
        total = 0
        while True:  # bounded batches keep each script call short
            n = int(self._expire(keys=keys, args=[now, self.k.owned_prefix, 5000]))
            total += n
            if n < 5000:
                return total

    def top(self, n: int, offset: int = 0) -> list[tuple[str, float]]:
        """The ``n`` highest-scored pending items after skipping ``offset``, best first (read-only)."""
        return [(m.decode(), s) for m, s in self.r.zrevrange(self.k.pending, offset, offset + n - 1, withscores=True)]

    def skipped_by(self, labeler_id: str, ids: Sequence[str]) -> list[bool]:
        if not ids:
            return []
        return [bool(v) for v in self.r.smismember(self.k.skipped_by(labeler_id), list(ids))]

    def claim(self, ids: Sequence[str], labeler_id: str, ttl: float, now: float | None = None) -> list[tuple[str, float]]:
        """Atomically lease those of ``ids`` still pending; returns ``(id, score)`` claimed."""
        if not ids:
            return []
        now = time.time() if now is None else now
        keys = [self.k.pending, self.k.leased, self.k.lease_owner, self.k.last_score, self.k.owned(labeler_id)]
        flat = self._claim(keys=keys, args=[now + ttl, labeler_id, *ids])
        return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def features_of(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        if not ids:
            return []
        raw = self.r.hmget(self.k.features, list(ids))
        return [np.frombuffer(b, dtype="<f4").copy() if b is not None else None for b in raw]

    def metadata_of(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raw = self.r.hmget(self.k.metadata, list(ids))
        return [json.loads(b) if b else {} for b in raw]

    def lease_expiry(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.leased, item_id)  # type: ignore[return-value]

    def is_label_id_known(self, label_id: str) -> bool:
        return bool(self.r.sismember(self.k.label_ids, label_id))

    def mark_labeled(self, item_id: str, label_id: str) -> bool:
        """Take the item out of the queue for good. False if ``label_id`` was seen before."""
        k = self.k
        keys = [k.label_ids, k.pending, k.leased, k.lease_owner, k.last_score, k.labeled, k.enqueued, k.features, k.metadata, k.skips]
        return bool(self._mark(keys=keys, args=[label_id, item_id, k.owned_prefix]))

    def skip(self, item_id: str, labeler_id: str, max_skips: int) -> int:
        """Hand a leased item back. Returns its skip count, 0 if it was dropped, -1 if unknown."""
        k = self.k
        keys = [k.leased, k.pending, k.lease_owner, k.last_score, k.skips, k.skipped_by(labeler_id), k.dropped, k.enqueued, k.features, k.metadata]
        return int(self._skip(keys=keys, args=[item_id, max_skips, k.owned_prefix]))

    # ----------------------------------------------------------------- observation
    def depth(self) -> int:
        """Items waiting (not leased)."""
        return int(self.r.zcard(self.k.pending))

    def n_leased(self) -> int:
        return int(self.r.zcard(self.k.leased))

    def n_leased_by(self, owner: str) -> int:
        """Items currently leased to ``owner``."""
        return int(self.r.scard(self.k.owned(owner)))

    def n_labeled(self) -> int:
        return int(self.r.scard(self.k.labeled))

    def is_labeled(self, item_id: str) -> bool:
        return bool(self.r.sismember(self.k.labeled, item_id))

    def score_of(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.pending, item_id)  # type: ignore[return-value]

    def ranking(self) -> list[tuple[str, float]]:
        """Every pending item with its score, best first."""
        return [(m.decode(), s) for m, s in self.r.zrevrange(self.k.pending, 0, -1, withscores=True)]

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest unlabeled item was enqueued (0 when empty)."""
        now = time.time() if now is None else now
        first = self.r.zrange(self.k.enqueued, 0, 0, withscores=True)
        return max(0.0, now - first[0][1]) if first else 0.0

    def clear(self) -> None:
        """Delete every key of this namespace."""
        keys = list(self.r.scan_iter(match=f"{self.k.prefix}:{self.k.namespace}:*", count=1000))
        if keys:
            self.r.delete(*keys)
