"""The ranked labeling queue in Redis: a sorted set with domain verbs.

Like arq's ``ArqRedis.enqueue_job``, every write is a small server-side script so
it is atomic and idempotent: adding an item that is already pending, leased,
labeled or dropped changes nothing, which is what makes Kafka redelivery harmless.

Storage, per namespace (key names in :mod:`rankedqueue.keys`):

- ``pending`` (ZSET id -> score) is the queue; ``leased`` (ZSET id -> expiry) holds the
  items out with labelers.
- Features live in *segments*: each enqueue batch writes its new items' rows as one
  string (``seg:<n>:f``), their ids as another (``seg:<n>:i``) and the server time it
  was written at as a token (``seg:<n>:t``), and ``featloc``
  maps an id to ``"<n>:<row>"``. A re-rank reads a million rows with a thousand GETs
  instead of a million HGET fields; rows of labeled or dropped items are marked in a
  bitmap (``seg:<n>:d``) and a segment is freed with its last live row.
- A bulk re-rank (:meth:`RankedQueue.rerank`) scores every live row, builds the new
  sorted set client-side as a ``DUMP`` payload (sorted best first, so Redis inserts
  each member in O(1)), ``RESTORE``\\ s it under a scratch key and swaps it in with one
  script that first takes out whatever was leased, labeled or dropped meanwhile and adds
  what was enqueued meanwhile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, overload

import anycrc
import numpy as np
import redis
from activestream.rankedqueue.keys import QueueKeys

# --------------------------------------------------------------------------- scripts

# Marks an item gone for good (labeled or dropped): its row dies, its segment is freed
# with the last live row, its featloc entry becomes a tombstone so it is never enqueued
# again, and a running bulk re-rank is told to leave it out.
_KILL_ROW = """
local function kill_row(featloc, seg_live, seg_time, seg_width, seg_prefix, lock, removed, id)
  local loc = redis.call('HGET', featloc, id)
  if loc and loc ~= '' then
    local sep = string.find(loc, ':', 1, true)
    local seq = string.sub(loc, 1, sep - 1)
    local row = tonumber(string.sub(loc, sep + 1))
    if redis.call('HINCRBY', seg_live, seq, -1) <= 0 then
      redis.call('DEL', seg_prefix .. seq .. ':f', seg_prefix .. seq .. ':i', seg_prefix .. seq .. ':d', seg_prefix .. seq .. ':t')
      redis.call('HDEL', seg_live, seq)
      redis.call('HDEL', seg_width, seq)
      redis.call('ZREM', seg_time, seq)
    else
      redis.call('SETBIT', seg_prefix .. seq .. ':d', row, 1)
    end
  end
  redis.call('HSET', featloc, id, '')
  if redis.call('EXISTS', lock) == 1 then redis.call('SADD', removed, id) end
end
"""

_ADD = """
-- KEYS: pending, featloc, meta, seg_live, seg_time, seg_width, metadata
-- ARGV: now ('': Redis's time), seg_prefix, row_bytes, n, rows (n * row_bytes), has_metadata ('0'/'1'), dtype,
--       ids blob (uint32 n, n uint16 lengths, the ids), scores (n little-endian doubles),
--       then n ids, then (if has_metadata) n JSON objects or ''
local now, prefix, rb, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rows, has_md, scores = ARGV[5], ARGV[6] == '1', ARGV[9]
local dtype = redis.call('HGET', KEYS[3], 'feature_dtype')
if not dtype then
  redis.call('HSET', KEYS[3], 'feature_dtype', ARGV[7])
elseif dtype ~= ARGV[7] then
  return redis.error_reply('queue stores features as ' .. dtype .. ', not ' .. ARGV[7])
end
local seq = redis.call('HINCRBY', KEYS[3], 'segseq', 1)
local loc_prefix = seq .. ':'
local first_id = 10
-- HSETNX: only an id never seen (not pending, leased, labeled or dropped) gets in, the first
-- time it comes (a duplicate within the batch too); the new ones are ZADDed in bulk (Lua's
-- unpack() is bounded by its C stack, hence the chunks).
local new, added, zargs = {}, 0, {}
for i = 1, n do
  local id = ARGV[first_id + i - 1]
  if redis.call('HSETNX', KEYS[2], id, loc_prefix .. added) == 1 then
    added = added + 1
    new[added] = i
    zargs[#zargs + 1] = struct.unpack('<d', scores, 8 * i - 7)
    zargs[#zargs + 1] = id
    if #zargs >= 4000 then
      redis.call('ZADD', KEYS[1], unpack(zargs))
      zargs = {}
    end
    if has_md then
      local md = ARGV[first_id + n + i - 1]
      if md ~= '' then redis.call('HSET', KEYS[7], id, md) end
    end
  end
end
if #zargs > 0 then redis.call('ZADD', KEYS[1], unpack(zargs)) end
if added == 0 then return 0 end
local data, blob = rows, ARGV[8]
if added < n then  -- some were known: keep only the new rows and ids
  local parts, lens, ids = {}, {}, {}
  for j = 1, added do
    local i = new[j]
    local id = ARGV[first_id + i - 1]
    parts[j] = string.sub(rows, (i - 1) * rb + 1, i * rb)
    lens[j] = struct.pack('<H', #id)
    ids[j] = id
  end
  data = table.concat(parts)
  blob = struct.pack('<I4', added) .. table.concat(lens) .. table.concat(ids)
end
redis.call('SET', prefix .. seq .. ':f', data)
redis.call('SET', prefix .. seq .. ':i', blob)
redis.call('HSET', KEYS[4], seq, added)
redis.call('HSET', KEYS[6], seq, rb)
local t = redis.call('TIME')
redis.call('SET', prefix .. seq .. ':t', t[1] .. '.' .. t[2])
if now == '' then now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end  -- (the queue's clock: Redis's)
redis.call('ZADD', KEYS[5], now, seq)
return added
"""

_FEATURES = """
-- KEYS: featloc, seg_width, meta ; ARGV: seg_prefix, ids...
local out = {redis.call('HGET', KEYS[3], 'feature_dtype') or 'float32'}
for i = 2, #ARGV do
  local loc = redis.call('HGET', KEYS[1], ARGV[i])
  local row = false
  if loc and loc ~= '' then
    local sep = string.find(loc, ':', 1, true)
    local seq = string.sub(loc, 1, sep - 1)
    local w = tonumber(redis.call('HGET', KEYS[2], seq))
    local r = tonumber(string.sub(loc, sep + 1))
    row = redis.call('GETRANGE', ARGV[1] .. seq .. ':f', r * w, r * w + w - 1)
  end
  out[i] = row
end
return out
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

# A lease ends without a label or skip: the item goes back to the queue at the score it had.
_HAND_BACK = _RELEASE_OWNER + """
local function hand_back(leased, pending, lease_owner, last_score, owned_prefix, id)
  redis.call('ZREM', leased, id)
  redis.call('ZADD', pending, redis.call('HGET', last_score, id) or '0', id)
  release_owner(lease_owner, owned_prefix, id)
  redis.call('HDEL', last_score, id)
end
"""

_EXPIRE = _HAND_BACK + """
-- KEYS: leased, pending, lease_owner, last_score ; ARGV: now, owned_prefix, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do hand_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], id) end
return #due
"""

_RETURN = _HAND_BACK + """
-- KEYS: leased, pending, lease_owner, last_score, control ; ARGV: item_id, holder, owned_prefix
-- Hands a leased item back as if never leased (no skip counted); only its holder may. 1 if returned.
local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[1], id) or redis.call('HGET', KEYS[3], id) ~= ARGV[2] then return 0 end
hand_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3], id)
redis.call('HDEL', KEYS[5], id)
return 1
"""

_CLAIM = """
-- KEYS: pending, leased, lease_owner, last_score, owned, control
-- ARGV: expires_at, labeler, control ('1'/'0'), most items the labeler may hold (-1: no limit), ids...
-- (every claim records whether it is a random-control pick: a new lease replaces the old record)
local out, cap = {}, tonumber(ARGV[4])
for i = 5, #ARGV do
  local id = ARGV[i]
  if cap >= 0 and redis.call('SCARD', KEYS[5]) >= cap then break end
  local s = redis.call('ZSCORE', KEYS[1], id)
  if s then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('HSET', KEYS[4], id, s)
    redis.call('SADD', KEYS[5], id)
    if ARGV[3] == '1' then redis.call('HSET', KEYS[6], id, ARGV[2]) else redis.call('HDEL', KEYS[6], id) end
    table.insert(out, id)
    table.insert(out, s)
  end
end
return out
"""

# An item that leaves for good takes its skip records with it: who skipped it (a set per
# skipped item) tells which labelers' skipped_by sets hold it, so none of them grows forever.
_FORGET_SKIPS = """
local function forget_skips(skips, skippers_prefix, skipped_by_prefix, id)
  local who = skippers_prefix .. id
  for _, labeler in ipairs(redis.call('SMEMBERS', who)) do redis.call('SREM', skipped_by_prefix .. labeler, id) end
  redis.call('DEL', who)
  redis.call('HDEL', skips, id)
end
"""

_MARK_LABELED = _RELEASE_OWNER + _KILL_ROW + _FORGET_SKIPS + """
-- KEYS: label_ids, pending, leased, lease_owner, last_score, labeled, featloc, metadata, skips,
--       seg_live, seg_time, seg_width, rerank_lock, rerank_removed, control, dropped
-- ARGV: label_id, item_id, owned_prefix, seg_prefix, skippers_prefix, skipped_by_prefix
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = ARGV[2]
redis.call('HDEL', KEYS[15], id)
redis.call('SREM', KEYS[16], id)  -- labeled after all (e.g. from a labeler who had it before the drop)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
release_owner(KEYS[4], ARGV[3], id)
redis.call('HDEL', KEYS[5], id)
redis.call('SADD', KEYS[6], id)
kill_row(KEYS[7], KEYS[10], KEYS[11], KEYS[12], ARGV[4], KEYS[13], KEYS[14], id)
redis.call('HDEL', KEYS[8], id)
forget_skips(KEYS[9], ARGV[5], ARGV[6], id)
return 1
"""

_SKIP = _RELEASE_OWNER + _KILL_ROW + _FORGET_SKIPS + """
-- KEYS: leased, pending, lease_owner, last_score, skips, skipped_by, dropped, featloc, metadata,
--       seg_live, seg_time, seg_width, rerank_lock, rerank_removed, control, passed (holder)
-- ARGV: item_id, max_skips, owned_prefix, seg_prefix, labeler_id, holder, now, skippers_prefix, skipped_by_prefix
-- Only the lease holder hands a leased item back (-2 for anyone else); a pending item may be
-- skipped by anyone it could be offered to. Each labeler counts once towards max_skips, so a
-- retried skip changes nothing. A holder other than the labeler (the dispatcher's group lease)
-- records when its labeler passed on the item, so the group gets other work first.
local id = ARGV[1]
local leased = redis.call('ZSCORE', KEYS[1], id)
if leased and redis.call('HGET', KEYS[3], id) ~= ARGV[6] then return -2 end
if ARGV[6] ~= ARGV[5] and (leased or redis.call('ZSCORE', KEYS[2], id)) then redis.call('ZADD', KEYS[16], ARGV[7], id) end
local s = redis.call('HGET', KEYS[4], id)
if not s then s = redis.call('ZSCORE', KEYS[2], id) end
if not s then return -1 end
if leased then
  redis.call('ZREM', KEYS[1], id)
  release_owner(KEYS[3], ARGV[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[15], id)
end
local n
if redis.call('SADD', KEYS[6], id) == 1 then
  redis.call('SADD', ARGV[8] .. id, ARGV[5])
  n = redis.call('HINCRBY', KEYS[5], id, 1)
else
  n = tonumber(redis.call('HGET', KEYS[5], id) or '0')
end
if n >= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[2], id)
  redis.call('SADD', KEYS[7], id)
  kill_row(KEYS[8], KEYS[10], KEYS[11], KEYS[12], ARGV[4], KEYS[13], KEYS[14], id)
  redis.call('HDEL', KEYS[9], id)
  redis.call('HDEL', KEYS[15], id)
  forget_skips(KEYS[5], ARGV[8], ARGV[9], id)
  return 0
end
redis.call('ZADD', KEYS[2], s, id)
return n
"""

_RERANK_BEGIN = """
-- KEYS: rerank_lock, rerank_removed, meta, seg_width ; ARGV: token, ttl_ms
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
redis.call('DEL', KEYS[2])
return {redis.call('HGET', KEYS[3], 'segseq') or '0', redis.call('HGET', KEYS[3], 'feature_dtype') or 'float32',
        redis.call('HGETALL', KEYS[4])}
"""

_RERANK_SWAP = """
-- KEYS: rerank_lock, tmp, pending, leased, rerank_removed, seg_width, meta, old, last_score, labeled
-- ARGV: token, segseq at the snapshot, seg_prefix, version ('' for none)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then redis.call('DEL', KEYS[2]); return -1 end
-- Leased: out, but an expired or skipped lease hands the item back at the new model's score.
for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local s = redis.call('ZSCORE', KEYS[2], id)
  if s then
    redis.call('HSET', KEYS[9], id, s)
    redis.call('ZREM', KEYS[2], id)
  end
end
-- Labeled or dropped since the snapshot: out.
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do redis.call('ZREM', KEYS[2], id) end
-- Enqueued since the snapshot (segments it did not see): in, at the score they have now.
local snap, late = tonumber(ARGV[2]), 0
for _, seq in ipairs(redis.call('HKEYS', KEYS[6])) do
  if tonumber(seq) > snap then
    local blob = redis.call('GET', ARGV[3] .. seq .. ':i')
    if blob then
      local n = struct.unpack('<I4', blob, 1)
      local pos = 5 + 2 * n
      for i = 1, n do
        local len = struct.unpack('<H', blob, 3 + 2 * i)
        local id = string.sub(blob, pos, pos + len - 1)
        pos = pos + len
        local s = redis.call('ZSCORE', KEYS[3], id)
        if s then
          redis.call('ZADD', KEYS[2], s, id)
          late = late + 1
        end
      end
    end
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('RENAME', KEYS[3], KEYS[8])
    redis.call('UNLINK', KEYS[8])  -- the old queue is freed in the background
  end
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('PERSIST', KEYS[3])
else
  redis.call('UNLINK', KEYS[3])
end
if ARGV[4] ~= '' then
  -- The first ranking ends the cold start: the labels so far are its (curriculum counts from here).
  redis.call('HSETNX', KEYS[7], 'cold_start_labels', redis.call('SCARD', KEYS[10]))
  redis.call('HSET', KEYS[7], 'ranked_version', ARGV[4])
end
redis.call('DEL', KEYS[1], KEYS[5])
return redis.call('ZCARD', KEYS[3])
"""

_RERANK_ABORT = """
-- KEYS: rerank_lock, rerank_removed, tmp ; ARGV: token
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return 1
"""

# Items per enqueue script call (one segment each): bounds how long one call blocks Redis.
_CHUNK = 5000
# A bulk re-rank scores segments one by one, small ones gathered up to this many rows
# (~8k rows per model call was fastest here: 1k-row calls cost 35% more, 16k-row ones 45%).
_RERANK_MIN_ROWS = 8192
# Segments fetched per pipelined round trip.
_SEGMENTS_PER_FETCH = 64

FEATURE_DTYPES = ("float32", "float16")
_FLOAT16_MAX = float(np.finfo(np.float16).max)


# --------------------------------------------------------------------------- DUMP payloads
#
# A sorted set is RESTOREd from the payload DUMP would produce: RDB type 5 (ZSET_2), the
# member count, then each member as an RDB string followed by its score as a
# little-endian double; then the RDB version (2 bytes) and the CRC-64/Jones of
# everything before it (8 bytes). Members are written best first: Redis inserts each
# one at the head of its skiplist, O(1) instead of O(log n).

_RDB_TYPE_ZSET_2 = 5
_RDB_VERSION = 8  # the oldest RDB version with ZSET_2 (Redis 4.0): every later server loads it
_REDIS_CRC64 = anycrc.Model("CRC64-REDIS")  # Jones polynomial, reflected, init 0: Redis's crc64.c


def crc64(data: bytes | np.ndarray) -> int:
    """Redis's CRC-64 of ``data`` (what DUMP puts in its payload's footer and RESTORE checks).

    anycrc's C implementation: ~1.5 ms for the 22 MB payload of a million members, where the
    numpy slicing-by-8 version this replaced took ~90 ms.

    >>> hex(crc64(b"123456789"))
    '0xe9c6d914c4b8d9ca'
    """
    return int(_REDIS_CRC64.calc(data))


def _rdb_len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return b"\x80" + n.to_bytes(4, "big")


def zset_dump(members: np.ndarray, starts: np.ndarray, lengths: np.ndarray, scores: np.ndarray) -> bytes:
    """A ``DUMP``-format payload of a sorted set, for ``RESTORE``.

    Parameters
    ----------
    members : (total_bytes,) uint8, the members' bytes back to back (any order).
    starts, lengths : (n,) where each member's bytes are in ``members``.
    scores : (n,) float64 scores; members are written in this order (give them best first).
    """
    n = len(scores)
    lengths = lengths.astype(np.int64)
    starts = starts.astype(np.int64)
    head = np.frombuffer(bytes([_RDB_TYPE_ZSET_2]) + _rdb_len(n), dtype=np.uint8)
    score_bytes = np.ascontiguousarray(scores, dtype="<f8").view(np.uint8).reshape(n, 8)
    lmax = int(lengths.max()) if n else 0
    if lmax < 1 << 6:
        body = _records_short(members, starts, lengths, score_bytes, lmax)
    else:
        body = _records_any(members, starts, lengths, score_bytes)
    out = np.empty(len(head) + len(body) + 10, dtype=np.uint8)
    out[: len(head)] = head
    out[len(head) : len(head) + len(body)] = body
    tail = len(out) - 10
    out[tail : tail + 2] = np.frombuffer(_RDB_VERSION.to_bytes(2, "little"), dtype=np.uint8)
    out[tail + 2 :] = np.frombuffer(crc64(out[: tail + 2]).to_bytes(8, "little"), dtype=np.uint8)
    return out.tobytes()


def argsort_best_first(scores: np.ndarray) -> np.ndarray:
    """``(n,)`` indices that order ``scores`` (no NaN) from highest to lowest.

    A large array is split at its median and the halves sorted at once, one on a
    second thread (numpy's sort releases the GIL): ~0.05 s instead of ~0.08 s per million.
    """
    neg = -np.asarray(scores, dtype=np.float64)
    n = len(neg)
    if n < _PARALLEL_SORT_MIN:
        return np.argsort(neg)
    idx = np.argpartition(neg, n // 2)  # every index before n // 2 scores at least as high as every one after
    top, rest = idx[: n // 2], idx[n // 2 :]
    with ThreadPoolExecutor(1, thread_name_prefix="queue-sort") as pool:
        later = pool.submit(lambda: rest[np.argsort(neg[rest])])
        top = top[np.argsort(neg[top])]
        return np.concatenate([top, later.result()])


# Below this many scores a re-rank sorts them on one thread.
_PARALLEL_SORT_MIN = 100_000


def _records_short(members: np.ndarray, starts: np.ndarray, lengths: np.ndarray, score_bytes: np.ndarray, lmax: int) -> np.ndarray:
    """Member records when every member is shorter than 64 bytes (a one-byte length).

    Each member is copied as a fixed ``lmax``-byte window (one memcpy-like gather), its
    score written right after its real length, and the padding dropped with one
    boolean mask: no per-byte index arrays.
    """
    n = len(lengths)
    width = 1 + lmax + 8
    recs = np.empty((n, width), dtype=np.uint8)
    recs[:, 0] = lengths
    if lmax:
        # Every lmax-byte window of the buffer as one fixed-size item: a row gather is a memcpy.
        padded = np.concatenate([members, np.zeros(lmax + 1, dtype=np.uint8)])
        windows = np.ndarray(buffer=padded, dtype=f"V{lmax}", shape=(len(members) + 1,), strides=(1,))
        recs[:, 1 : 1 + lmax] = windows[starts].view(np.uint8).reshape(n, lmax)
    # The score goes right after the member's real length (8-byte items at byte offsets).
    at = np.ndarray(buffer=recs, dtype="V8", shape=(n * width - 7,), strides=(1,))
    at[np.arange(n) * width + 1 + lengths] = np.ascontiguousarray(score_bytes).view("V8").reshape(n)
    return recs[np.arange(width) < (lengths + 9)[:, None]]


def _records_any(members: np.ndarray, starts: np.ndarray, lengths: np.ndarray, score_bytes: np.ndarray) -> np.ndarray:
    """Member records for any member lengths (RDB 1-, 2- or 5-byte length prefixes)."""
    n = len(lengths)
    hlen = np.where(lengths < 1 << 6, 1, np.where(lengths < 1 << 14, 2, 5))
    rec = hlen + lengths + 8
    out = np.empty(int(rec.sum()), dtype=np.uint8)
    off = np.cumsum(rec) - rec
    step = 1 << 18  # members per pass: bounds the index arrays' memory
    for lo in range(0, n, step):
        sl = slice(lo, min(n, lo + step))
        o, h, ln, st = off[sl], hlen[sl], lengths[sl], starts[sl]
        short, mid, long_ = h == 1, h == 2, h == 5
        out[o[short]] = ln[short]
        out[o[mid]] = 0x40 | (ln[mid] >> 8)
        out[o[mid] + 1] = ln[mid] & 0xFF
        if long_.any():
            out[o[long_]] = 0x80
            for k in range(4):
                out[o[long_] + 1 + k] = (ln[long_] >> (8 * (3 - k))) & 0xFF
        total = int(ln.sum())
        if total:
            rank = np.arange(total) - np.repeat(np.cumsum(ln) - ln, ln)
            out[np.repeat(o + h, ln) + rank] = members[np.repeat(st, ln) + rank]
        out[(o + h + ln)[:, None] + np.arange(8)] = score_bytes[sl]
    return out


# --------------------------------------------------------------------------- segments


class PackedIds(Sequence[str]):
    """Item ids kept as one byte buffer; each id is decoded only when asked for.

    A bulk re-rank hands these to the score function: strategies that do not look at
    ids (all but the random control) never pay for a million ``str`` objects.
    """

    def __init__(self, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        self._buf = buf
        self._starts = starts
        self._lengths = lengths

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        s = int(self._starts[i])
        return self._buf[s : s + int(self._lengths[i])].tobytes().decode()

    def __iter__(self) -> Iterator[str]:
        raw = self._buf.tobytes() if len(self._starts) else b""
        for s, ln in zip(self._starts.tolist(), self._lengths.tolist(), strict=True):
            yield raw[s : s + ln].decode()


@dataclass
class _Segment:
    """One segment as read back: its rows, its ids and which rows are still live."""

    seq: int
    X: np.ndarray  # (n, d) in the stored dtype
    ids: np.ndarray  # (bytes,) uint8
    starts: np.ndarray  # (n,) int64 into ids
    lengths: np.ndarray  # (n,) int64
    alive: np.ndarray  # (n,) bool


def _parse_segment(seq: int, width: int, dtype: np.dtype, feat: bytes | None, ids: bytes | None, dead: bytes | None) -> _Segment | None:
    if feat is None or ids is None:  # freed since the snapshot: every row died
        return None
    n = int.from_bytes(ids[:4], "little")
    lengths = np.frombuffer(ids, dtype="<u2", count=n, offset=4).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    id_bytes = np.frombuffer(ids, dtype=np.uint8, offset=4 + 2 * n)
    X = np.frombuffer(feat, dtype=dtype).reshape(n, width // dtype.itemsize)
    return _Segment(seq, X, id_bytes, starts, lengths, _alive(n, dead))


_NO_ROWS = np.zeros(0, dtype=bool)  # a cached segment's liveness is read afresh each time


def _cached_size(seg: _Segment) -> int:
    """Bytes a cached segment holds: its rows and its whole ids blob (lengths table included),
    which its arrays are views of, plus the row offsets and lengths."""
    return seg.X.nbytes + len(seg.ids.base if isinstance(seg.ids.base, bytes) else seg.ids) + seg.starts.nbytes + seg.lengths.nbytes


def _alive(n: int, dead: bytes | None) -> np.ndarray:
    """(n,) bool: the rows a segment's dead-row bitmap does not mark."""
    alive = np.ones(n, dtype=bool)
    if dead:
        bits = np.unpackbits(np.frombuffer(dead, dtype=np.uint8))[:n].astype(bool)  # SETBIT 0 is the first byte's MSB
        alive[: len(bits)] = ~bits
    return alive


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


ScoreFn = Callable[[Sequence[str], np.ndarray], np.ndarray]


class PendingAdd:
    """Enqueue scripts sent to Redis whose replies are read by :meth:`result` (see ``RankedQueue.add_nowait``).

    Attributes
    ----------
    known : after :meth:`result`, one flag per id of ``add_nowait``'s ``check``: whether the
        queue had already taken that id (pending, leased, labeled or dropped) when the check ran.
    """

    def __init__(
        self, queue: RankedQueue, conn: Any, n_calls: int, *, release: bool = True, n_checked: int = 0,
    ) -> None:
        self._queue = queue
        self._conn = conn
        self._n_calls = n_calls  # script replies to read (the calls and their rows are not kept)
        self._release = release  # False: the caller's own connection (see RankedQueue.writer), kept open
        self._n_checked = n_checked  # ids in the HMGET sent before the scripts (0: none sent)
        self._added: int | None = None if conn is not None else 0
        self.known: list[bool] = []

    def result(self) -> int:
        """Wait for Redis; the number of items newly added. Raises what the scripts raised."""
        if self._added is not None:
            return self._added
        pool, conn = self._queue.r.connection_pool, self._conn
        added, error = 0, None
        try:
            if self._n_checked:  # its reply comes first: it was sent first
                self.known = [loc is not None for loc in conn.read_response()]  # '' (a tombstone) is known too
            for _ in range(self._n_calls):
                try:
                    added += int(conn.read_response())
                except redis.ResponseError as exc:
                    error = error or exc
        except BaseException:
            conn.disconnect()  # (a shared writer reconnects on its next command)
            raise
        finally:
            if self._release:
                pool.release(conn)
            self._conn = None
        if error is not None:
            raise error
        self._added = added
        return added


def _glob_literal(text: str) -> str:
    """``text`` as a Redis glob pattern that matches only itself (``*?[]\\`` escaped)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _members(raw: Any) -> list[str]:
    """Sorted-set members as returned by redis-py (bytes) -> str (its stubs type replies loosely)."""
    return [m.decode() for m in raw]


def _scored(raw: Any) -> list[tuple[str, float]]:
    """``(member, score)`` pairs of a ``WITHSCORES`` reply -> ``[(str, float)]``."""
    return [(m.decode(), float(sc)) for m, sc in raw]


class RankedQueue:
    """Redis-backed ranked queue for one namespace.

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

    def __init__(
        self, client: redis.Redis, keys: QueueKeys | None = None, *, feature_dtype: str | None = None, segment_cache_bytes: int = 0,
    ) -> None:
        if feature_dtype is not None and feature_dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature_dtype must be one of {FEATURE_DTYPES}, got {feature_dtype!r}")
        self.r = client
        self.k = keys or QueueKeys()
        self.feature_dtype = feature_dtype
        self._dtype: np.dtype | None = None
        # Segments a re-rank read, kept for the next one (their rows and ids never change; only
        # which rows are dead does, and that is read each time). Off at 0.
        self.segment_cache_bytes = segment_cache_bytes
        self._cache: dict[int, tuple[bytes, _Segment]] = {}  # seq -> (its token, its rows and ids)
        self._cache_used = 0
        self._add = client.register_script(_ADD)
        self._features = client.register_script(_FEATURES)
        self._expire = client.register_script(_EXPIRE)
        self._claim = client.register_script(_CLAIM)
        self._return = client.register_script(_RETURN)
        self._mark = client.register_script(_MARK_LABELED)
        self._skip = client.register_script(_SKIP)
        self._rerank_begin = client.register_script(_RERANK_BEGIN)
        self._rerank_swap = client.register_script(_RERANK_SWAP)
        self._rerank_abort = client.register_script(_RERANK_ABORT)
        self.last_rerank: dict[str, float] = {}  # phase timings of this client's last bulk re-rank

    def _write_dtype(self) -> np.dtype:
        """The dtype this client writes: the configured one, else the namespace's, else float32."""
        if self._dtype is None:
            name = self.feature_dtype or self.get_meta("feature_dtype") or "float32"
            self._dtype = np.dtype(name).newbyteorder("<")
        return self._dtype

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
        """Enqueue items unless already pending, leased, labeled or dropped (the first write wins).

        Parameters
        ----------
        ids : (n,) item ids.
        scores : (n,) finite scores, higher = label sooner.
        features : (n, n_features) float32, stored for re-ranking and for labels.
        metadata : (n,) JSON objects (may be empty).

        Returns
        -------
        Number of items newly added (a redelivered batch returns 0).
        """
        return self.add_nowait(ids, scores, features, metadata, now=now).result()

    def add_nowait(
        self,
        ids: Sequence[str],
        scores: np.ndarray,
        features: np.ndarray,
        metadata: Sequence[dict[str, Any]] | None = None,
        *,
        now: float | None = None,
        conn: Any | None = None,
        check: Sequence[str] = (),
    ) -> PendingAdd:
        """Send :meth:`add`'s writes and return at once; ``.result()`` waits for Redis.

        Lets the scorer prepare its next micro-batch while Redis runs this one. The
        writes are on the wire when this returns; until ``.result()`` they may not have
        run yet, so commit nothing that depends on them before it.

        ``conn`` (from :meth:`writer`) sends them on that connection instead of a pooled
        one: several writes in flight on one connection run in the order they were sent
        (on separate connections Redis may run a later, smaller one first), so the first
        write of an id still wins. Read their ``.result()`` in the same order.

        ``check`` : ids (none of them in ``ids``) to look up in the same round trip, just
        before these writes and after every earlier one on ``conn``; ``.known`` tells,
        after ``.result()``, which of them the queue had already taken.
        """
        n = len(ids)
        if n == 0 and not check:
            return PendingAdd(self, None, 0)
        calls = self._add_calls(ids, scores, features, metadata, now) if n else []
        pool = self.r.connection_pool
        shared = conn is not None
        if conn is None:
            conn = pool.get_connection()
        try:
            if check:
                conn.send_command("HMGET", self.k.featloc, *check)
            # EVAL, not EVALSHA: a server without the script cached (new, restarted, flushed)
            # would answer NOSCRIPT and the write would have to run again later, after writes
            # and checks sent behind it, out of order. The 3 kB script per micro-batch is
            # noise next to its rows.
            for k, a in calls:
                conn.send_command("EVAL", self._add.script, len(k), *k, *a)
        except BaseException:
            conn.disconnect()
            if not shared:
                pool.release(conn)
            raise
        return PendingAdd(self, conn, len(calls), release=not shared, n_checked=len(check))

    def _add_calls(
        self, ids: Sequence[str], scores: np.ndarray, features: np.ndarray, metadata: Sequence[dict[str, Any]] | None, now: float | None,
    ) -> list[tuple[list[str], list[Any]]]:
        """The enqueue script calls (keys, args) for :meth:`add_nowait`: one per ``_CHUNK`` items."""
        n = len(ids)
        sc = np.ascontiguousarray(scores, dtype="<f8").reshape(-1)
        if len(sc) != n or not np.isfinite(sc).all():
            raise ValueError("add() needs one finite score per item")
        dtype = self._write_dtype()
        feats = np.asarray(features, dtype=np.float32).reshape(n, -1)
        if dtype.itemsize == 2:
            feats = np.clip(feats, -_FLOAT16_MAX, _FLOAT16_MAX)
        rows = np.ascontiguousarray(feats, dtype=dtype)
        rb = rows.shape[1] * dtype.itemsize
        md_args: list[str] | None = None
        if metadata is not None and any(metadata):
            md_args = [json.dumps(md) if md else "" for md in metadata]
        keys = [self.k.pending, self.k.featloc, self.k.meta, self.k.segment_live, self.k.segment_time, self.k.segment_width, self.k.metadata]
        raw_ids = [i.encode() for i in ids]
        lens = np.fromiter(map(len, raw_ids), dtype=np.int64, count=n)
        if lens.max() > 0xFFFF:
            raise ValueError("item ids longer than 65535 bytes cannot be queued")
        lens16 = lens.astype("<u2")
        calls = []
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            blob = (hi - lo).to_bytes(4, "little") + lens16[lo:hi].tobytes() + b"".join(raw_ids[lo:hi])
            args: list[Any] = ["" if now is None else now, self.k.segment_prefix, rb, hi - lo, rows[lo:hi].tobytes(), "1" if md_args else "0", dtype.name, blob,
                               sc[lo:hi].tobytes(), *raw_ids[lo:hi]]
            if md_args:
                args += md_args[lo:hi]
            calls.append((keys, args))
        return calls

    def writer(self) -> Any:
        """A connection of its own for :meth:`add_nowait` (give it back with :meth:`release_writer`)."""
        return self.r.connection_pool.get_connection()

    def release_writer(self, conn: Any) -> None:
        self.r.connection_pool.release(conn)

    def pending_ids(self) -> list[str]:
        """Every pending item id (any order)."""
        return _members(self.r.zrange(self.k.pending, 0, -1))

    def _read_segments(
        self, seqs: list[int], widths: dict[int, int], dtype: np.dtype, dead: dict[int, bytes | None] | None = None,
    ) -> list[_Segment]:
        """The listed segments, in one pipelined round trip; ``dead``: their dead-row bitmaps,
        when the caller has read them already (they are not fetched again)."""
        per = 3 if dead is None else 2
        pipe = self.r.pipeline(transaction=False)
        for seq in seqs:
            pipe.get(self.k.segment_features(seq))
            pipe.get(self.k.segment_ids(seq))
            if dead is None:
                pipe.get(self.k.segment_dead(seq))
        raw = pipe.execute()
        out = []
        for j, seq in enumerate(seqs):
            feat, ids, *bitmap = raw[per * j : per * j + per]
            seg = _parse_segment(seq, widths[seq], dtype, feat, ids, bitmap[0] if dead is None else dead[seq])
            if seg is not None:
                out.append(seg)
        return out

    def _read_cached(self, seqs: list[int], widths: dict[int, int], dtype: np.dtype) -> list[_Segment]:
        """:meth:`_read_segments` through the cache: a cached segment costs its dead-row bitmap.

        Each segment's token (the server time it was written at) is read with it: a cached
        copy is used only while the token matches, since after a Redis rollback (a crash
        with AOF every second, a failover) or a clear() a segment number can name other rows.
        A segment without a token (freed since the snapshot, or written before tokens) is not
        cached.
        """
        k = self.k
        pipe = self.r.pipeline(transaction=False)
        for q in seqs:
            pipe.get(k.segment_token(q))
            pipe.get(k.segment_dead(q))
        raw = pipe.execute()
        tokens = {q: raw[2 * j] for j, q in enumerate(seqs)}
        dead = {q: raw[2 * j + 1] for j, q in enumerate(seqs)}
        hit = {q for q in seqs if q in self._cache and tokens[q] is not None and tokens[q] == self._cache[q][0]}
        for q in seqs:
            if q in self._cache and q not in hit:  # its segment was freed or replaced: the copy is of nothing now
                self._uncache(q)
        fresh = {seg.seq: seg for seg in self._read_segments([q for q in seqs if q not in hit], widths, dtype, dead)}
        for seg in fresh.values():
            size = _cached_size(seg)
            if tokens[seg.seq] is not None and self._cache_used + size <= self.segment_cache_bytes:
                self._cache[seg.seq] = (tokens[seg.seq], _Segment(seg.seq, seg.X, seg.ids, seg.starts, seg.lengths, _NO_ROWS))
                self._cache_used += size
        out = []
        for q in seqs:  # in order; a segment freed since the snapshot is in neither
            if q in fresh:
                out.append(fresh[q])
            elif q in hit:
                c = self._cache[q][1]
                out.append(_Segment(q, c.X, c.ids, c.starts, c.lengths, _alive(len(c.starts), dead[q])))
        return out

    def _uncache(self, seq: int) -> None:
        self._cache_used -= _cached_size(self._cache.pop(seq)[1])

    def _sync_cache(self, widths: dict[int, int]) -> bool:
        """Drop cached segments no longer listed (freed); whether to use the cache."""
        if not self.segment_cache_bytes:
            return False
        for q in [q for q in self._cache if q not in widths]:
            self._uncache(q)
        return True

    def _segment_stream(self, widths: dict[int, int], dtype: np.dtype, *, cached: bool = False) -> Iterator[_Segment]:
        """Every listed segment, read ahead on a second connection while the caller works."""
        seqs = sorted(widths)
        groups = [seqs[i : i + _SEGMENTS_PER_FETCH] for i in range(0, len(seqs), _SEGMENTS_PER_FETCH)]
        if not groups:
            return
        read = self._read_cached if cached else self._read_segments
        with ThreadPoolExecutor(1, thread_name_prefix="queue-read") as pool:
            fut = pool.submit(read, groups[0], widths, dtype)
            for nxt in [*groups[1:], None]:
                got = fut.result()
                if nxt is not None:
                    fut = pool.submit(read, nxt, widths, dtype)
                yield from got

    def stored_widths(self) -> list[int]:
        """The feature counts of the rows stored for pending and leased items (one, unless widths were mixed)."""
        itemsize = self._read_dtype().itemsize
        return sorted({w // itemsize for w in self._segment_widths().values()})

    def _segment_widths(self) -> dict[int, int]:
        return {int(s): int(w) for s, w in self.r.hgetall(self.k.segment_width).items()}

    def _read_dtype(self) -> np.dtype:
        return np.dtype(self.get_meta("feature_dtype") or "float32").newbyteorder("<")

    def iter_pending(self, chunk: int = 50_000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield ``(ids, features (m, n_features) float32)`` for every pending item, in chunks."""
        widths = self._segment_widths()
        dtype = self._read_dtype()
        leased = set(_members(self.r.zrange(self.k.leased, 0, -1)))
        ids: list[str] = []
        rows: list[np.ndarray] = []
        for seg in self._segment_stream(widths, dtype):
            keep = np.flatnonzero(seg.alive)
            seg_ids = list(PackedIds(seg.ids, seg.starts[keep], seg.lengths[keep]))
            if leased:
                mask = np.array([i not in leased for i in seg_ids], dtype=bool)
                keep, seg_ids = keep[mask], [i for i, m in zip(seg_ids, mask.tolist(), strict=True) if m]
            ids += seg_ids
            rows.append(seg.X[keep])
            while len(ids) >= chunk:
                X = np.concatenate(rows).astype(np.float32)
                yield ids[:chunk], X[:chunk]
                ids, rows = ids[chunk:], [X[chunk:]]
        if ids:
            yield ids, np.concatenate(rows).astype(np.float32)

    def rescore(self, ids: Sequence[str], scores: np.ndarray) -> None:
        """Update the scores of items that are still pending (ZADD XX: leased ones stay leased)."""
        pipe = self.r.pipeline(transaction=False)
        for lo in range(0, len(ids), 10_000):
            mapping = {ids[i]: float(scores[i]) for i in range(lo, min(lo + 10_000, len(ids)))}
            pipe.zadd(self.k.pending, mapping, xx=True)
        pipe.execute()

    def rerank(self, score: ScoreFn, *, version: int | None = None, lock_ttl: float = 600.0) -> int | None:
        """Re-score every pending item with ``score`` and swap the new ranking in atomically.

        Parameters
        ----------
        score : ``(ids, X (m, n_features) float32) -> (m,)`` scores, called on chunks.
        version : model version behind the scores, recorded as ``ranked_version``.
        lock_ttl : seconds after which a crashed re-rank's lock lapses.

        Returns
        -------
        Items pending after the swap, or ``None`` when another re-rank of this queue is running (it
        holds the lock; the caller may retry later).

        Notes
        -----
        Only one re-rank runs per queue. Items leased, labeled or dropped while it runs
        are left out at the swap (leased items keep their lease), items enqueued while it
        runs are kept at the score they were enqueued with, and running it again with
        the same scores changes nothing.
        """
        token = uuid.uuid4().hex
        k = self.k
        ttl_ms = int(lock_ttl * 1000)
        snap = self._rerank_begin(keys=[k.rerank_lock, k.rerank_removed, k.meta, k.segment_width], args=[token, ttl_ms])
        if snap is None:
            return None
        tmp = f"{k.rerank_tmp}:{token}"
        clock = time.perf_counter
        t0 = clock()
        stats: dict[str, float] = {}
        try:
            segseq, dtype_name, flat = int(snap[0]), snap[1].decode(), snap[2]
            widths = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            cached = self._sync_cache(widths)
            stats["cached_segments"] = float(len(self._cache)) if cached else 0.0
            members, starts, lengths, scores = self._score_segments(score, widths, np.dtype(dtype_name).newbyteorder("<"), stats, cached=cached)
            stats["read_and_score_s"] = clock() - t0
            if len(scores):
                t1 = clock()
                order = argsort_best_first(scores)
                stats["sort_s"] = clock() - t1
                t1 = clock()
                payload = zset_dump(members, starts[order], lengths[order], scores[order])
                stats["dump_s"] = clock() - t1
                t1 = clock()
                try:
                    self.r.restore(tmp, ttl_ms, payload, replace=True)
                except redis.ResponseError:  # a server that refuses this payload: plain ZADDs, best first
                    self._zadd_chunks(tmp, members, starts[order], lengths[order], scores[order], ttl_ms)
                stats["restore_s"] = clock() - t1
            t1 = clock()
            ranked = int(self._rerank_swap(keys=[k.rerank_lock, tmp, k.pending, k.leased, k.rerank_removed, k.segment_width, k.meta, k.rerank_old,
                                               k.last_score, k.labeled],
                                         args=[token, segseq, k.segment_prefix, "" if version is None else version]))
            stats["swap_s"] = clock() - t1
        except BaseException:
            self._rerank_abort(keys=[k.rerank_lock, k.rerank_removed, tmp], args=[token])
            raise
        stats["total_s"] = clock() - t0
        stats["rows"] = float(len(scores))
        self.last_rerank = stats
        return None if ranked < 0 else ranked

    def _score_segments(
        self, score: ScoreFn, widths: dict[int, int], dtype: np.dtype, stats: dict[str, float], *, cached: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Score every live row: ``(id bytes, starts, lengths, scores)`` over all of them.

        Segments are scored as they arrive (small ones a few at a time): the model sees
        cache-sized blocks and rows are never copied into one big matrix.
        """
        id_parts: list[np.ndarray] = []
        start_parts: list[np.ndarray] = []
        length_parts: list[np.ndarray] = []
        score_parts: list[np.ndarray] = []
        group: list[_Segment] = []
        base = 0

        def flush() -> None:
            nonlocal base
            Xs = [seg.X if seg.alive.all() else seg.X[seg.alive] for seg in group]
            X = np.concatenate(Xs) if len(Xs) > 1 else Xs[0]
            ids = np.concatenate([seg.ids for seg in group]) if len(group) > 1 else group[0].ids
            offs = np.cumsum([0] + [len(seg.ids) for seg in group[:-1]])
            st = np.concatenate([seg.starts[seg.alive] + o for seg, o in zip(group, offs, strict=True)])
            ln = np.concatenate([seg.lengths[seg.alive] for seg in group])
            t = time.perf_counter()
            out = np.asarray(score(PackedIds(ids, st, ln), np.asarray(X, dtype=np.float32)), dtype=np.float64).reshape(-1)
            stats["score_s"] = stats.get("score_s", 0.0) + time.perf_counter() - t
            if len(out) != len(st) or np.isnan(out).any():
                raise ValueError("the score function must return one non-NaN score per row")
            id_parts.append(ids)
            start_parts.append(st + base)
            length_parts.append(ln)
            score_parts.append(out)
            base += len(ids)
            group.clear()

        rows = 0
        for seg in self._segment_stream(widths, dtype, cached=cached):
            if not seg.alive.any():
                continue
            if group and seg.X.shape[1] != group[0].X.shape[1]:
                flush()
                rows = 0
            group.append(seg)
            rows += int(seg.alive.sum())
            if rows >= _RERANK_MIN_ROWS:
                flush()
                rows = 0
        if group:
            flush()
        if not score_parts:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros(0, dtype=np.uint8), empty, empty, np.zeros(0)
        return np.concatenate(id_parts), np.concatenate(start_parts), np.concatenate(length_parts), np.concatenate(score_parts)

    def _zadd_chunks(self, key: str, members: np.ndarray, starts: np.ndarray, lengths: np.ndarray, scores: np.ndarray, ttl_ms: int) -> None:
        raw = members.tobytes()
        pipe = self.r.pipeline(transaction=False)
        for lo in range(0, len(scores), 10_000):
            hi = min(len(scores), lo + 10_000)
            pipe.zadd(key, {raw[s : s + ln]: float(v) for s, ln, v in zip(starts[lo:hi].tolist(), lengths[lo:hi].tolist(), scores[lo:hi].tolist(), strict=True)})
        pipe.pexpire(key, ttl_ms)
        pipe.execute()

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

    def ranked_version(self) -> int:
        """Model version whose scores the whole queue was last re-ranked with (0: none yet)."""
        return int(self.get_meta("ranked_version") or 0)

    def ensure_n_features(self, n: int) -> int:
        """Record the feature dimension on first use; return the one every scorer must enforce."""
        self.r.hsetnx(self.k.meta, "n_features", n)
        return int(self.r.hget(self.k.meta, "n_features") or n)

    # ----------------------------------------------------------------- labeler side
    def now(self) -> float:
        """The queue's clock: Redis's time, in UNIX seconds (one round trip).

        Lease expiries, passes and enqueue times are written by one host and compared by
        another (labeling API, dispatchers, scorers). Each host's own clock would let a
        host running ahead expire the others' leases early; the one Redis is the clock they
        share. Every ``now`` left out of this class's methods is this one.
        """
        sec, usec = self.r.time()
        return float(sec) + usec / 1e6

    def expire_leases(self, now: float | None = None) -> int:
        """Return every item whose lease has run out to the queue at its old score."""
        now = self.now() if now is None else now
        keys = [self.k.leased, self.k.pending, self.k.lease_owner, self.k.last_score]
        total = 0
        while True:  # bounded batches keep each script call short
            n = int(self._expire(keys=keys, args=[now, self.k.owned_prefix, 5000]))
            total += n
            if n < 5000:
                return total

    def top(self, n: int, offset: int = 0) -> list[tuple[str, float]]:
        """The ``n`` highest-scored pending items after skipping ``offset``, best first (read-only)."""
        return _scored(self.r.zrevrange(self.k.pending, offset, offset + n - 1, withscores=True))

    def members_at(self, ranks: Sequence[int]) -> list[str]:
        """Pending ids at the given ranks (0 = best; one round trip; ranks past the end are left out).

        A seeded caller gets a reproducible sample of the queue, e.g. the reference set of
        density weighting (``ZRANDMEMBER`` would not be reproducible).
        """
        pipe = self.r.pipeline(transaction=False)
        for r in ranks:
            pipe.zrevrange(self.k.pending, int(r), int(r))
        return [m for reply in pipe.execute() for m in _members(reply)]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        """Up to ``n`` pending items drawn uniformly by ``rng`` (reproducible): ``(ids, (m, n_features) float32)``."""
        depth = self.depth()
        ranks: list[int] = rng.choice(depth, size=min(depth, n), replace=False).tolist() if depth else []
        ids = self.members_at(ranks)
        rows = [(i, f) for i, f in zip(ids, self.features_of(ids), strict=True) if f is not None]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [i for i, _ in rows], np.vstack([f for _, f in rows])

    def control_holder(self, item_id: str) -> str | None:
        """The labeler ``item_id`` was last leased to as a control pick (``None`` if it was not one)."""
        holder = self.r.hget(self.k.control, item_id)
        return holder.decode() if holder is not None else None  # type: ignore[union-attr]

    def top_for(self, labeler_id: str, n: int, offset: int = 0, *, passed_since: float | None = None) -> list[tuple[str, float]]:
        """The best ``n`` pending items from rank ``offset`` on that ``labeler_id`` has not skipped.

        Reads on past the ones they skipped, so a labeler who skipped the head of the queue
        still gets items while others are pending. With ``passed_since`` (for a labeler
        group: the dispatcher), it leaves out only what one of the group passed on since then:
        the group gets the item again later, so another of its labelers may label it or skip it.
        """
        out: list[tuple[str, float]] = []
        while len(out) < n:
            page = max(n - len(out), 64)
            cands = self.top(page, offset)
            offset += len(cands)
            skipped = self.passed_on(labeler_id, [c for c, _ in cands], passed_since)
            out += [c for c, s in zip(cands, skipped, strict=True) if not s]
            if len(cands) < page:  # the end of the queue
                break
        return out[:n]

    def passed_on(self, labeler_id: str, ids: Sequence[str], passed_since: float | None = None) -> list[bool]:
        """Whether ``labeler_id`` skipped each of ``ids`` (for a labeler group, ``passed_since``: passed on since then)."""
        if passed_since is None:
            return self.skipped_by(labeler_id, ids)
        when = self.r.zmscore(self.k.passed(labeler_id), list(ids)) if ids else []
        return [w is not None and w >= passed_since for w in when]

    def forget_passed(self, holder: str, before: float) -> None:
        """Drop the records of what ``holder``'s labelers passed on before ``before`` (see :meth:`top_for`)."""
        self.r.zremrangebyscore(self.k.passed(holder), "-inf", f"({before}")

    def skipped_by(self, labeler_id: str, ids: Sequence[str]) -> list[bool]:
        if not ids:
            return []
        return [bool(v) for v in self.r.smismember(self.k.skipped_by(labeler_id), list(ids))]

    def claim(
        self, ids: Sequence[str], labeler_id: str, ttl: float, now: float | None = None, *, control: bool = False, max_held: int | None = None
    ) -> list[tuple[str, float]]:
        """Atomically lease those of ``ids`` still pending; returns ``(id, score)`` claimed.

        ``control`` records them as random-control picks of ``labeler_id`` (see :meth:`control_holder`).
        ``max_held`` stops claiming once ``labeler_id`` holds that many leases, checked in the
        same script: two dispatchers of one labeler group cannot overshoot it together.
        """
        if not ids:
            return []
        now = self.now() if now is None else now
        keys = [self.k.pending, self.k.leased, self.k.lease_owner, self.k.last_score, self.k.owned(labeler_id), self.k.control]
        cap = -1 if max_held is None else max_held
        flat = self._claim(keys=keys, args=[now + ttl, labeler_id, "1" if control else "0", cap, *ids])
        return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def unclaim(self, item_id: str, holder: str) -> bool:
        """Hand back ``holder``'s lease of ``item_id`` untouched (no skip counted). False if it is not theirs."""
        keys = [self.k.leased, self.k.pending, self.k.lease_owner, self.k.last_score, self.k.control]
        return bool(self._return(keys=keys, args=[item_id, holder, self.k.owned_prefix]))

    def features_of(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Stored features (float32) of ``ids``; ``None`` for unknown, labeled or dropped items."""
        if not ids:
            return []
        raw = self._features(keys=[self.k.featloc, self.k.segment_width, self.k.meta], args=[self.k.segment_prefix, *ids])
        dtype = np.dtype(raw[0].decode()).newbyteorder("<")
        return [np.frombuffer(b, dtype=dtype).astype(np.float32) if b is not None else None for b in raw[1:]]

    def metadata_of(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raw = self.r.hmget(self.k.metadata, list(ids))
        return [json.loads(b) if b else {} for b in raw]

    def lease_expiry(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.leased, item_id)  # type: ignore[return-value]

    def lease_holder(self, item_id: str, now: float | None = None) -> str | None:
        """Who holds the item's lease, if it is leased and the lease has not run out at ``now``."""
        pipe = self.r.pipeline(transaction=True)
        pipe.zscore(self.k.leased, item_id)
        pipe.hget(self.k.lease_owner, item_id)
        expiry, owner = pipe.execute()
        if expiry is None or owner is None or expiry <= (self.now() if now is None else now):
            return None
        return owner.decode()  # type: ignore[no-any-return]

    def is_label_id_known(self, label_id: str) -> bool:
        return bool(self.r.sismember(self.k.label_ids, label_id))

    def mark_labeled(self, item_id: str, label_id: str) -> bool:
        """Take the item out of the queue for good. False if ``label_id`` was seen before."""
        k = self.k
        keys = [k.label_ids, k.pending, k.leased, k.lease_owner, k.last_score, k.labeled, k.featloc, k.metadata, k.skips,
                k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed, k.control, k.dropped]
        return bool(self._mark(keys=keys, args=[label_id, item_id, k.owned_prefix, k.segment_prefix, k.skippers_prefix, k.skipped_by_prefix]))

    def skip(self, item_id: str, labeler_id: str, max_skips: int, *, holder: str | None = None, now: float | None = None) -> int:
        """Hand a leased item back (or pass on a pending one).

        ``holder`` is who must hold the lease of a leased item (default ``labeler_id``). A
        different holder, e.g. the dispatcher's lease for a labeler group, records when
        (``now``) one of its labelers passed on the item: see ``passed_since`` of :meth:`top_for`.

        Returns its skip count (each labeler counts once, so a retry changes nothing), 0 if
        it was dropped, -1 if unknown, -2 if it is leased to another labeler (left as it is).
        """
        k = self.k
        holder = labeler_id if holder is None else holder
        now = self.now() if now is None else now
        keys = [k.leased, k.pending, k.lease_owner, k.last_score, k.skips, k.skipped_by(labeler_id), k.dropped, k.featloc, k.metadata,
                k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed, k.control, k.passed(holder)]
        return int(self._skip(keys=keys, args=[item_id, max_skips, k.owned_prefix, k.segment_prefix, labeler_id, holder, now,
                                               k.skippers_prefix, k.skipped_by_prefix]))

    # ----------------------------------------------------------------- observation
    def depth(self) -> int:
        """Items in the pending sorted set (not counting leases that ran out but are not yet returned)."""
        return int(self.r.zcard(self.k.pending))

    def n_waiting(self, now: float | None = None) -> int:
        """Items waiting for a labeler: pending ones, and leased ones whose lease has run out.

        Read-only (for gauges): an expired lease is returned to the pending set only by the
        next lease or :meth:`expire_leases`, which may be a while when labelers are idle.
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

    def is_labeled(self, item_id: str) -> bool:
        return bool(self.r.sismember(self.k.labeled, item_id))

    def score_of(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.pending, item_id)  # type: ignore[return-value]

    def ranking(self) -> list[tuple[str, float]]:
        """Every pending item with its score, best first."""
        return _scored(self.r.zrevrange(self.k.pending, 0, -1, withscores=True))

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest unlabeled item was enqueued (0 when empty)."""
        now = self.now() if now is None else now
        first = _scored(self.r.zrange(self.k.segment_time, 0, 0, withscores=True))
        return max(0.0, now - first[0][1]) if first else 0.0

    def clear(self) -> None:
        """Delete every key of this namespace."""
        keys = list(self.r.scan_iter(match=_glob_literal(f"{self.k.prefix}:{self.k.namespace}:") + "*", count=1000))
        for lo in range(0, len(keys), 1000):
            self.r.unlink(*keys[lo : lo + 1000])
        self._dtype = None
