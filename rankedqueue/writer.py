"""The writer side of the ranked queue: what the scorer calls.

Enqueueing (:meth:`QueueWriter.add`, pipelined as :meth:`QueueWriter.add_nowait` with its
:class:`PendingAdd`), re-ranking the whole queue with a new model
(:meth:`QueueWriter.rerank`) and the feature-width bookkeeping. Adding an item that is
already pending, leased, labeled or dropped changes nothing, which is what makes Kafka
redelivery harmless.

A bulk re-rank scores every live row, builds the new sorted set client-side as a ``DUMP``
payload (sorted best first, so Redis inserts each member in O(1)), ``RESTORE``\\ s it under
a scratch key and swaps it in with one script that first takes out whatever was leased,
labeled or dropped meanwhile and adds what was enqueued meanwhile.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import redis

from activestream.rankedqueue.auto_accept import AUDIT_MAX_WAITING
from activestream.rankedqueue.base import QueueBase, members
from activestream.rankedqueue.dump import argsort_best_first, zset_dump
from activestream.rankedqueue.keys import (
    ADD_CHUNK,
    AGE_EVICT_SEGMENTS,
    DEFAULT_FEATURE_DTYPE,
    FEATURE_DTYPES,
    FLOAT16_MAX,
    MAX_ID_BYTES,
    META_FEATURE_DTYPE,
    META_N_FEATURES,
    POOL_STATS,
    SEGMENT_BYTES,
    SEGMENT_MERGE_LOOK,
    SEGMENT_OPEN_SECONDS,
    SEGMENT_ROWS,
    ZADD_CHUNK,
    QueueKeys,
)
from activestream.rankedqueue.pool import PoolLimits, Thresholds, best_first, sampling_keys, unpack_member
from activestream.rankedqueue.segments import PackedIds, ScoreFn, SegmentCache, SegmentReader, score_segments

logger = logging.getLogger(__name__)


class PendingAdd:
    """Enqueue scripts sent to Redis whose replies are read by :meth:`result` (see :meth:`QueueWriter.add_nowait`).

    Attributes
    ----------
    known : after :meth:`result`, one flag per id of ``add_nowait``'s ``check``: whether the
        queue had already taken that id (pending, leased, labeled or dropped) when the check ran.
    evicted, rejected, replaced : after :meth:`result`, pending items the capped pool evicted for
        these items, new items it did not take (they did not outrank its lowest one), and
        reservoir members they replaced.
    thresholds : after :meth:`result`, what an item had to beat when the last script ran
        (``None``: no script ran).
    """

    def __init__(self, client: redis.Redis, conn: Any, n_calls: int, *, release: bool = True, n_checked: int = 0,
                 has_reservoir: bool = False) -> None:
        self._client = client
        self._conn = conn
        self._n_calls = n_calls  # script replies to read (the calls and their rows are not kept)
        self._release = release  # False: the caller's own connection (see QueueWriter.writer), kept open
        self._n_checked = n_checked  # ids in the HMGET sent before the scripts (0: none sent)
        self._has_reservoir = has_reservoir
        self._added: int | None = None if conn is not None else 0
        self.known: list[bool] = []
        self.evicted = self.rejected = self.replaced = 0
        self.thresholds: Thresholds | None = None

    def result(self) -> int:
        """Wait for Redis; the number of items newly added. Raises what the scripts raised."""
        if self._added is not None:
            return self._added
        pool, conn = self._client.connection_pool, self._conn
        added, error = 0, None
        try:
            if self._n_checked:  # its reply comes first: it was sent first
                self.known = [loc is not None for loc in conn.read_response()]  # '' (a tombstone) is known too
            for _ in range(self._n_calls):
                try:
                    reply = conn.read_response()
                except redis.ResponseError as exc:
                    error = error or exc
                    continue
                added += int(reply[0])
                self.evicted += int(reply[1])
                self.rejected += int(reply[2])
                self.replaced += int(reply[5])
                self.thresholds = Thresholds.parse(reply[3], reply[4], self._has_reservoir)
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


class QueueWriter(QueueBase):
    """The scorer's side of one queue namespace: enqueue, re-rank, feature widths.

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
        (a copy is used only while the segment's token matches: a segment compacted in place
        by a full pool, or a segment number that names other rows, is read afresh). 0: off.
    pool : the capped pool's limits (capacity, reservoir, max age; default: no cap, no reservoir).
    segment_rows : rows a segment grows to (and at most ``SEGMENT_BYTES`` of them) by taking later calls' rows and sparse
        segments' live rows (``lua/fn_segment_write.lua``); 0: one segment per enqueue call, never merged (a known layout, for tests).
    """

    def __init__(
        self, client: redis.Redis, keys: QueueKeys | None = None, *, feature_dtype: str | None = None, segment_cache_bytes: int = 0,
        pool: PoolLimits | None = None, segment_rows: int = SEGMENT_ROWS,
    ) -> None:
        if feature_dtype is not None and feature_dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature_dtype must be one of {FEATURE_DTYPES}, got {feature_dtype!r}")
        super().__init__(client, keys)
        self.feature_dtype = feature_dtype
        self._dtype: np.dtype | None = None  # what this client writes, once known
        self.segment_cache = SegmentCache(segment_cache_bytes)
        self._reader = SegmentReader(client, self.k)
        self.last_rerank: dict[str, float] = {}  # phase timings of this client's last bulk re-rank
        self.pool = pool or PoolLimits()
        self.segment_rows = segment_rows

    @property
    def segment_cache_bytes(self) -> int:
        """The segment cache's budget in bytes (0: off)."""
        return self.segment_cache.budget

    @segment_cache_bytes.setter
    def segment_cache_bytes(self, budget: int) -> None:
        self.segment_cache.budget = budget

    def _forget_namespace(self) -> None:
        super()._forget_namespace()
        self._dtype = None  # a cleared namespace takes the next writer's dtype

    def _write_dtype(self) -> np.dtype:
        """The dtype this client writes: the configured one, else the namespace's, else float32."""
        if self._dtype is None:
            name = self.feature_dtype or self.get_meta(META_FEATURE_DTYPE) or DEFAULT_FEATURE_DTYPE
            self._dtype = np.dtype(name).newbyteorder("<")
        return self._dtype

    # ----------------------------------------------------------------- enqueue
    def add(
        self, ids: Sequence[str], scores: np.ndarray, features: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None, *,
        now: float | None = None,
    ) -> int:
        """Enqueue items unless already pending, leased, labeled or dropped (the first write wins).

        Parameters
        ----------
        ids : (n,) item ids.
        scores : (n,) finite scores, higher = label sooner.
        features : (n, n_features) float32, stored for re-ranking and for labels.
        metadata : (n,) JSON objects (may be empty).
        now : enqueue time (default: Redis's clock).

        Returns
        -------
        Number of items newly added (a redelivered batch returns 0).
        """
        return self.add_nowait(ids, scores, features, metadata, now=now).result()

    def add_nowait(
        self, ids: Sequence[str], scores: np.ndarray, features: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None, *,
        now: float | None = None, conn: Any | None = None, check: Sequence[str] = (), sampling: np.ndarray | None = None,
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

        ``sampling`` : (n,) the ids' reservoir sampling keys (:func:`~activestream.rankedqueue.pool.sampling_keys`),
        when the caller has them already (the scorer's admission filter does); else computed here.
        """
        n = len(ids)
        if n == 0 and not check:
            return PendingAdd(self.r, None, 0)
        calls = self._add_calls(ids, scores, features, metadata, now, sampling=sampling) if n else []
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
                conn.send_command("EVAL", self.scripts.add.script, len(k), *k, *a)
        except BaseException:
            conn.disconnect()
            if not shared:
                pool.release(conn)
            raise
        return PendingAdd(self.r, conn, len(calls), release=not shared, n_checked=len(check), has_reservoir=self.pool.reservoir > 0)

    def _add_calls(
        self, ids: Sequence[str], scores: np.ndarray, features: np.ndarray, metadata: Sequence[dict[str, Any]] | None, now: float | None,
        *, capped: bool = True, sampling: np.ndarray | None = None,
    ) -> list[tuple[list[str], list[Any]]]:
        """The enqueue script calls (keys, args) for :meth:`add_nowait`: one per ``ADD_CHUNK`` items.

        ``capped=False``: past the pool's cap and the reservoir (a reservoir member taken into the pool, an audit item);
        such calls neither append nor merge: they come from the labeling side, whose settings may lack the scorer's max
        age, and a merge there would give young rows an old segment's time.
        """
        n = len(ids)
        sc = np.ascontiguousarray(scores, dtype="<f8").reshape(-1)
        if len(sc) != n or not np.isfinite(sc).all():
            raise ValueError("add() needs one finite score per item")
        if metadata is not None and len(metadata) != n:
            raise ValueError(f"add() got {len(metadata)} metadata objects for {n} items")
        if sampling is not None and len(sampling) != n:
            raise ValueError(f"add() got {len(sampling)} sampling keys for {n} items")
        if capped and self.pool.capacity is not None and n > 1:  # rows best first: see pool.best_first
            order = best_first(ids, sc)
            ids, sc, features = [ids[j] for j in order], sc[order], np.asarray(features).reshape(n, -1)[order]
            metadata = [metadata[j] for j in order] if metadata is not None else None
            sampling = np.asarray(sampling)[order] if sampling is not None else None
            n = len(order)
        dtype = self._write_dtype()
        feats = np.asarray(features, dtype=np.float32).reshape(n, -1)
        if dtype.itemsize == 2:  # float16: clip, or the cast would store inf
            feats = np.clip(feats, -FLOAT16_MAX, FLOAT16_MAX)
        rows = np.ascontiguousarray(feats, dtype=dtype)
        rb = rows.shape[1] * dtype.itemsize
        md_args: list[str] | None = None
        if metadata is not None and any(metadata):
            md_args = [json.dumps(md) if md else "" for md in metadata]
        k = self.k
        keys = [k.pending, k.featloc, k.meta, k.segment_live, k.segment_time, k.segment_width, k.metadata, k.rerank_lock, k.rerank_removed,
                k.skips, k.reservoir, k.reservoir_rows, k.pool_stats, k.audit]
        cap = self.pool.capacity if capped and self.pool.capacity is not None else -1
        res = self.pool.reservoir if capped else 0
        ukeys = None
        if res:
            ukeys = np.ascontiguousarray(sampling if sampling is not None else sampling_keys(ids), dtype="<f8")
        raw_ids = [i.encode() for i in ids]
        lens = np.fromiter(map(len, raw_ids), dtype=np.int64, count=n)
        if lens.max() > MAX_ID_BYTES:
            raise ValueError("item ids longer than 65535 bytes cannot be queued")
        lens16 = lens.astype("<u2")
        max_age = self.pool.max_age
        open_s = SEGMENT_OPEN_SECONDS if max_age is None else min(SEGMENT_OPEN_SECONDS, max_age / 10)
        merge_look = SEGMENT_MERGE_LOOK if max_age is None else 0
        grow = min(self.segment_rows, SEGMENT_BYTES // rb) if capped else 0
        calls = []
        for lo in range(0, n, ADD_CHUNK):
            hi = min(n, lo + ADD_CHUNK)
            blob = (hi - lo).to_bytes(4, "little") + lens16[lo:hi].tobytes() + b"".join(raw_ids[lo:hi])
            args: list[Any] = ["" if now is None else now, k.segment_prefix, rb, hi - lo, rows[lo:hi].tobytes(), "1" if md_args else "0",
                               dtype.name, blob, sc[lo:hi].tobytes(), cap, res, ukeys[lo:hi].tobytes() if ukeys is not None else "",
                               k.skippers_prefix, k.skipped_by_prefix, grow, open_s, merge_look, *raw_ids[lo:hi]]
            if md_args:
                args += md_args[lo:hi]
            calls.append((keys, args))
        return calls

    # ----------------------------------------------------------------- the capped pool (see rankedqueue.pool)
    def thresholds(self) -> Thresholds:
        """What an item must beat now to enter the pool or the reservoir (one round trip): the lowest pending item that is
        no audit item (those are never evicted for their rank: see ``add.lua``)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.zcard(self.k.pending)
        pipe.zrange(self.k.pending, 0, AUDIT_MAX_WAITING, withscores=True)
        pipe.hkeys(self.k.audit)
        pipe.zcard(self.k.reservoir)
        pipe.zrange(self.k.reservoir, -1, -1, withscores=True)
        depth, lows, audits, n_res, top = pipe.execute()
        held = set(audits)
        low = next((score for member, score in lows if member not in held), lows[-1][1] if lows else None)
        cap, res = self.pool.capacity, self.pool.reservoir
        pool = "" if cap is None or depth < cap else (str(low) if low is not None else "inf")
        return Thresholds.parse(pool, str(top[0][1]) if res and n_res >= res and top else "", res > 0)

    def evict_older_than(self, max_age: float, now: float | None = None) -> int:
        """Evict the pending items enqueued more than ``max_age`` seconds before ``now`` (leased ones stay); how many."""
        k = self.k
        cutoff = (self.now() if now is None else now) - max_age
        keys = [k.pending, k.featloc, k.segment_live, k.segment_time, k.segment_width, k.metadata, k.rerank_lock, k.rerank_removed,
                k.skips, k.pool_stats, k.meta]
        total, offset = 0, 0
        while True:  # bounded batches of segments keep each script call short
            evicted, seen, still = self.scripts.evict_old(keys=keys, args=[cutoff, k.segment_prefix, k.skippers_prefix, k.skipped_by_prefix,
                                                                           offset, AGE_EVICT_SEGMENTS])
            total += int(evicted)
            offset += int(still)  # (segments still holding a leased row are passed over)
            if int(seen) < AGE_EVICT_SEGMENTS:
                return total

    def count_streamed(self, streamed: int, rejected: int, read: int, offsets: Mapping[tuple[str, int], tuple[int, int]]) -> bool:
        """Add to the pool's counters what a scorer's batches brought (streamed) and turned away before Redis, and mark
        how far they go in the items topic: called before their offsets commit, so that a crash in between cannot lose
        the counts (see :attr:`QueueKeys.pool_offsets`).

        Parameters
        ----------
        streamed, rejected, read : the batches' counts (``read``: every item record, whatever became of it).
        offsets : (topic, partition) -> (the mark the scorer expects there, -1 for none; the highest offset among the batches).

        Returns
        -------
        Whether they were counted: not when a partition's mark is past the one expected (another scorer counted its
        records meanwhile, after a rebalance): nothing changes then, and the caller reads again from its committed offsets.
        """
        args: list[str | int] = [streamed, rejected, read]
        for (topic, partition), (expected, upto) in offsets.items():
            args += [f"{topic}:{partition}", expected, upto]
        return bool(self.scripts.count_streamed(keys=[self.k.pool_stats, self.k.pool_offsets], args=args))

    def counted_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the highest offset the pool's counters count (see :meth:`count_streamed`)."""
        out = {}
        for field_, offset in self.r.hgetall(self.k.pool_offsets).items():
            name = field_.decode() if isinstance(field_, bytes) else field_
            topic, _, partition = name.rpartition(":")
            out[(topic, int(partition))] = int(offset)
        return out

    def pool_stats(self) -> dict[str, int]:
        """The pool's counters (:data:`POOL_STATS`), with the reservoir's size."""
        raw = self.r.hmget(self.k.pool_stats, list(POOL_STATS))
        out = {name: int(v or 0) for name, v in zip(POOL_STATS, raw, strict=True)}
        out["reservoir"] = int(self.r.zcard(self.k.reservoir))
        return out

    def reservoir_size(self) -> int:
        """Members of the random reservoir (0: none, or no reservoir)."""
        return int(self.r.zcard(self.k.reservoir))

    def reservoir_ids(self, ranks: Sequence[int]) -> list[str]:
        """Reservoir members at the given ranks of its sampling keys (a seeded caller draws reproducibly)."""
        pipe = self.r.pipeline(transaction=False)
        for r in ranks:
            pipe.zrange(self.k.reservoir, int(r), int(r))
        return [m for reply in pipe.execute() for m in members(reply)]

    def promote(self, ids: Sequence[str]) -> int:
        """Take reservoir members into the queue as pending items (past the cap: a control pick leases them at once).

        Ids the queue already knows (pending, leased, labeled, dropped) and non-members change
        nothing. Returns how many were added.
        """
        raw: list[Any] = self.r.hmget(self.k.reservoir_rows, list(ids)) if ids else []
        got = [(i, unpack_member(v)) for i, v in zip(ids, raw, strict=True) if v is not None]
        if not got:
            return 0
        dtype = self._read_dtype()
        X = np.vstack([np.frombuffer(row, dtype=dtype).astype(np.float32) for _, (_, row, _) in got])
        mds = [json.loads(md) if md else {} for _, (_, _, md) in got]
        return self.add_past_cap([i for i, _ in got], np.array([sc for _, (sc, _, _) in got]), X, mds)

    def add_past_cap(self, ids: Sequence[str], scores: np.ndarray, features: np.ndarray,
                     metadata: Sequence[dict[str, Any]] | None = None) -> int:
        """:meth:`add` past the capped pool's cap and the reservoir: items a lease takes at once (a reservoir member as a
        control pick, an audit item), which the pool must not refuse for their score. The next enqueue evicts the lowest
        pending items down to the cap again. Returns how many were added."""
        calls = self._add_calls(list(ids), scores, features, metadata, None, capped=False)
        return sum(int(self.scripts.add(keys=kk, args=aa)[0]) for kk, aa in calls)

    def writer(self) -> Any:
        """A connection of its own for :meth:`add_nowait` (give it back with :meth:`release_writer`)."""
        return self.r.connection_pool.get_connection()

    def release_writer(self, conn: Any) -> None:
        self.r.connection_pool.release(conn)

    # ----------------------------------------------------------------- widths
    def ensure_n_features(self, n: int) -> int:
        """Record the feature dimension on first use; return the one every scorer must enforce."""
        self.r.hsetnx(self.k.meta, META_N_FEATURES, n)
        return int(self.r.hget(self.k.meta, META_N_FEATURES) or n)

    def stored_widths(self) -> list[int]:
        """The feature counts of the rows stored for pending and leased items (one, unless widths were mixed)."""
        itemsize = self._read_dtype().itemsize
        return sorted({w // itemsize for w in self._segment_widths().values()})

    def _segment_widths(self) -> dict[int, int]:
        """Segment -> bytes per row, for every segment that still holds a live row."""
        return {int(s): int(w) for s, w in self.r.hgetall(self.k.segment_width).items()}

    # ----------------------------------------------------------------- re-rank
    def iter_pending(self, chunk: int = 50_000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield ``(ids, features (m, n_features) float32)`` for every pending item, in chunks, each item once.

        It takes no lock: on a queue being written to, an item enqueued while it runs, or moved by a merge
        (``lua/fn_segment_write.lua``) from a segment not read yet into one already read, may be left out.
        """
        widths = self._segment_widths()
        dtype = self._read_dtype()
        skip = set(members(self.r.zrange(self.k.leased, 0, -1)))  # leased, then every id yielded (a merge may move a row it read)
        ids: list[str] = []
        rows: list[np.ndarray] = []
        for seg in self._reader.stream(widths, dtype):
            keep = np.flatnonzero(seg.alive)
            seg_ids = list(PackedIds(seg.ids, seg.starts[keep], seg.lengths[keep]))
            mask = np.array([i not in skip for i in seg_ids], dtype=bool)
            if not mask.all():
                keep, seg_ids = keep[mask], [i for i, m in zip(seg_ids, mask.tolist(), strict=True) if m]
            skip.update(seg_ids)
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
        for lo in range(0, len(ids), ZADD_CHUNK):
            mapping = {ids[i]: float(scores[i]) for i in range(lo, min(lo + ZADD_CHUNK, len(ids)))}
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
        snap = self.scripts.rerank_begin(keys=[k.rerank_lock, k.rerank_removed, k.meta, k.segment_width], args=[token, ttl_ms])
        if snap is None:
            return None
        tmp = f"{k.rerank_tmp}:{token}"
        clock = time.perf_counter
        t0 = clock()
        stats: dict[str, float] = {}
        try:
            segseq, dtype_name, flat = int(snap[0]), snap[1].decode(), snap[2]
            widths = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            cached = self.segment_cache.sync(widths)
            stats["cached_segments"] = float(len(self.segment_cache)) if cached else 0.0
            segs = self._reader.stream(widths, np.dtype(dtype_name).newbyteorder("<"), cache=self.segment_cache if cached else None)
            members_, starts, lengths, scores = score_segments(score, segs, stats)
            stats["read_and_score_s"] = clock() - t0
            if len(scores):
                t1 = clock()
                order = argsort_best_first(scores)
                stats["sort_s"] = clock() - t1
                t1 = clock()
                payload = zset_dump(members_, starts[order], lengths[order], scores[order])
                stats["dump_s"] = clock() - t1
                t1 = clock()
                try:
                    self.r.restore(tmp, ttl_ms, payload, replace=True)
                except redis.ResponseError as exc:  # a server that refuses this payload: plain ZADDs, best first
                    logger.warning("RESTORE of the re-ranked queue refused (%s): writing it with ZADDs", exc)
                    self._zadd_chunks(tmp, members_, starts[order], lengths[order], scores[order], ttl_ms)
                stats["restore_s"] = clock() - t1
            t1 = clock()
            ranked = int(self.scripts.rerank_swap(keys=[k.rerank_lock, tmp, k.pending, k.leased, k.rerank_removed, k.segment_width, k.meta,
                                                        k.rerank_old, k.last_score, k.labeled],
                                                  args=[token, segseq, k.segment_prefix, "" if version is None else version]))
            stats["swap_s"] = clock() - t1
        except BaseException:
            self.scripts.rerank_abort(keys=[k.rerank_lock, k.rerank_removed, tmp], args=[token])
            raise
        stats["total_s"] = clock() - t0
        stats["rows"] = float(len(scores))
        self.last_rerank = stats
        logger.debug("re-rank of %s: %d rows, %d pending after the swap, %.3f s", k.namespace, len(scores), ranked, stats["total_s"])
        return None if ranked < 0 else ranked

    def _zadd_chunks(self, key: str, members_: np.ndarray, starts: np.ndarray, lengths: np.ndarray, scores: np.ndarray, ttl_ms: int) -> None:
        """Write a ranking with plain ZADDs (best first), for a server that refuses the DUMP payload."""
        raw = members_.tobytes()
        pipe = self.r.pipeline(transaction=False)
        for lo in range(0, len(scores), ZADD_CHUNK):
            hi = min(len(scores), lo + ZADD_CHUNK)
            pipe.zadd(key, {raw[s : s + ln]: float(v) for s, ln, v in zip(starts[lo:hi].tolist(), lengths[lo:hi].tolist(), scores[lo:hi].tolist(),
                                                                          strict=True)})
        pipe.pexpire(key, ttl_ms)
        pipe.execute()
