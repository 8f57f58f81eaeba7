"""Feature-row storage: segments as read back from Redis, the reader, and a re-rank's segment cache.

A segment holds rows as one string (``seg:<n>:f``), their ids as another (``seg:<n>:i``:
uint32 count, uint16 lengths, the UTF-8 ids) and a token that changes with every write
(``seg:<n>:t``); ``featloc`` maps an id to ``"<n>:<row>"``. An enqueue call appends its
admitted rows to the newest segment while it is open, else starts one, and moves the live rows
of sparse segments into a merge segment (``lua/fn_segment_write.lua``). A
re-rank reads a million rows with a thousand GETs instead of a million HGET fields; rows of
labeled or dropped items are marked in a bitmap (``seg:<n>:d``) and a segment is freed with
its last live row. In a capped pool a segment whose rows are an eighth dead is compacted in
place: its live rows close up (those before the first dead row stay where they are) and its
token changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import overload

import numpy as np
import redis

from activestream.rankedqueue.keys import RERANK_MIN_ROWS, SEGMENTS_PER_FETCH, QueueKeys

logger = logging.getLogger(__name__)

ScoreFn = Callable[[Sequence[str], np.ndarray], np.ndarray]
"""``(ids, X (m, n_features) float32) -> (m,)`` scores: what a bulk re-rank calls on chunks."""


class PackedIds(Sequence[str]):
    """Item ids kept as one byte buffer; each id is decoded only when asked for.

    A bulk re-rank hands these to the score function: strategies that do not look at
    ids (all but the random control) never pay for a million ``str`` objects.

    Parameters
    ----------
    buf : (total_bytes,) uint8, the UTF-8 ids back to back.
    starts, lengths : (n,) integers, where each id's bytes are in ``buf``.
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
class Segment:
    """One segment as read back: its rows, its ids and which rows are still live."""

    seq: int
    X: np.ndarray  # (n, d) in the stored dtype
    ids: np.ndarray  # (bytes,) uint8
    starts: np.ndarray  # (n,) int64 into ids
    lengths: np.ndarray  # (n,) int64
    alive: np.ndarray  # (n,) bool


NO_ROWS = np.zeros(0, dtype=bool)  # a cached segment's liveness is read afresh each time


def alive_rows(n: int, dead: bytes | None) -> np.ndarray:
    """The rows a segment's dead-row bitmap does not mark.

    Parameters
    ----------
    n : rows in the segment.
    dead : the ``seg:<n>:d`` bitmap (``None``: no row died yet).

    Returns
    -------
    (n,) bool, True for a live row.
    """
    alive = np.ones(n, dtype=bool)
    if dead:
        bits = np.unpackbits(np.frombuffer(dead, dtype=np.uint8))[:n].astype(bool)  # SETBIT 0 is the first byte's MSB
        alive[: len(bits)] = ~bits
    return alive


def parse_segment(seq: int, width: int, dtype: np.dtype, feat: bytes | None, ids: bytes | None, dead: bytes | None) -> Segment | None:
    """A segment from its stored strings (``None`` if it was freed: every row died).

    Parameters
    ----------
    seq : the segment number.
    width : bytes per row.
    dtype : the stored feature dtype (little-endian).
    feat, ids, dead : the ``:f``, ``:i`` and ``:d`` strings as read.
    """
    if feat is None or ids is None:  # freed since the snapshot: every row died
        return None
    n = int.from_bytes(ids[:4], "little")
    lengths = np.frombuffer(ids, dtype="<u2", count=n, offset=4).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    id_bytes = np.frombuffer(ids, dtype=np.uint8, offset=4 + 2 * n)
    X = np.frombuffer(feat, dtype=dtype).reshape(n, width // dtype.itemsize)
    return Segment(seq, X, id_bytes, starts, lengths, alive_rows(n, dead))


def cached_size(seg: Segment) -> int:
    """Bytes a cached segment holds: its rows and its whole ids blob (lengths table included),
    which its arrays are views of, plus the row offsets and lengths."""
    return seg.X.nbytes + len(seg.ids.base if isinstance(seg.ids.base, bytes) else seg.ids) + seg.starts.nbytes + seg.lengths.nbytes


class SegmentCache:
    """Segments a re-rank read, kept for the next one, up to ``budget`` bytes (0: off).

    A copy is used only while the segment's token matches: the token changes when a full pool
    compacts the segment in place, and after a Redis rollback or a ``clear()`` a segment number
    can name other rows. Which rows are dead changes without it, and is read each time.
    """

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget
        self.used = 0  # bytes held
        self._entries: dict[int, tuple[bytes, Segment]] = {}  # seq -> (its token, its rows and ids)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, seq: object) -> bool:
        return seq in self._entries

    def seqs(self) -> list[int]:
        """The segment numbers held."""
        return list(self._entries)

    def peek(self, seq: int) -> Segment | None:
        """The copy held for ``seq``, whatever its token (for inspection; :meth:`lookup` is what a re-rank uses)."""
        held = self._entries.get(seq)
        return None if held is None else held[1]

    def sync(self, widths: dict[int, int]) -> bool:
        """Drop cached segments no longer listed in ``widths`` (freed); whether to use the cache."""
        if not self.budget:
            return False
        for q in [q for q in self._entries if q not in widths]:
            self.drop(q)
        return True

    def lookup(self, seq: int, token: bytes | None) -> Segment | None:
        """The cached copy of ``seq`` (liveness not filled in) if its token still matches; a stale copy is dropped."""
        held = self._entries.get(seq)
        if held is None:
            return None
        if token is not None and token == held[0]:
            return held[1]
        self.drop(seq)  # its segment was freed or replaced: the copy is of nothing now
        return None

    def keep(self, seg: Segment, token: bytes | None) -> None:
        """Cache ``seg`` if it has a token and fits the budget."""
        size = cached_size(seg)
        if token is not None and self.used + size <= self.budget:
            self._entries[seg.seq] = (token, Segment(seg.seq, seg.X, seg.ids, seg.starts, seg.lengths, NO_ROWS))
            self.used += size

    def drop(self, seq: int) -> None:
        self.used -= cached_size(self._entries.pop(seq)[1])


class SegmentReader:
    """Reads one namespace's segments.

    Parameters
    ----------
    client : a redis-py client (``decode_responses=False``).
    keys : the namespace's key names.
    """

    def __init__(self, client: redis.Redis, keys: QueueKeys) -> None:
        self.r = client
        self.k = keys

    def read(self, seqs: list[int], widths: dict[int, int], dtype: np.dtype) -> list[tuple[Segment, bytes | None]]:
        """The listed segments still stored, in order, each with its token, in one round trip.

        A segment's rows, ids, dead-row bitmap and token are read in one transaction: a
        full pool compacts segments in place (``lua/fn_evict.lua``), and rows read apart
        from their ids could belong to another version of the segment.
        """
        pipe = self.r.pipeline(transaction=True)
        for seq in seqs:
            pipe.get(self.k.segment_features(seq))
            pipe.get(self.k.segment_ids(seq))
            pipe.get(self.k.segment_dead(seq))
            pipe.get(self.k.segment_token(seq))
        raw = pipe.execute()
        out = []
        for j, seq in enumerate(seqs):
            feat, ids, dead, token = raw[4 * j : 4 * j + 4]
            seg = parse_segment(seq, widths[seq], dtype, feat, ids, dead)
            if seg is not None:
                out.append((seg, token))
        return out

    def read_cached(self, cache: SegmentCache, seqs: list[int], widths: dict[int, int], dtype: np.dtype) -> list[Segment]:
        """:meth:`read` through ``cache``: a cached segment costs its token and dead-row bitmap.

        A segment is read whole when its token (read with its bitmap, in one transaction)
        is not the cached copy's; a segment without one (freed since the snapshot, or
        written before tokens) is not cached.
        """
        k = self.k
        pipe = self.r.pipeline(transaction=True)
        for q in seqs:
            pipe.get(k.segment_token(q))
            pipe.get(k.segment_dead(q))
        raw = pipe.execute()
        tokens = {q: raw[2 * j] for j, q in enumerate(seqs)}
        dead = {q: raw[2 * j + 1] for j, q in enumerate(seqs)}
        hit = {q: seg for q in seqs if (seg := cache.lookup(q, tokens[q])) is not None}
        fresh = {}
        for seg, token in self.read([q for q in seqs if q not in hit], widths, dtype):
            fresh[seg.seq] = seg
            cache.keep(seg, token)
        out = []
        for q in seqs:  # in order; a segment freed since the snapshot is in neither
            if q in fresh:
                out.append(fresh[q])
            elif q in hit:
                c = hit[q]
                out.append(Segment(q, c.X, c.ids, c.starts, c.lengths, alive_rows(len(c.starts), dead[q])))
        return out

    def stream(self, widths: dict[int, int], dtype: np.dtype, *, cache: SegmentCache | None = None) -> Iterator[Segment]:
        """Every listed segment in order, read ahead on a second connection while the caller works (when there is more than one fetch).

        Parameters
        ----------
        widths : segment -> bytes per row (the segments to read).
        dtype : the stored feature dtype.
        cache : read through this cache (``None``: read every segment).
        """
        seqs = sorted(widths)
        groups = [seqs[i : i + SEGMENTS_PER_FETCH] for i in range(0, len(seqs), SEGMENTS_PER_FETCH)]
        if not groups:
            return

        def read(group: list[int]) -> list[Segment]:
            return [seg for seg, _ in self.read(group, widths, dtype)] if cache is None else self.read_cached(cache, group, widths, dtype)

        if len(groups) == 1:  # nothing to read ahead of: no thread (its start costs more than a small pool's read)
            yield from read(groups[0])
            return
        with ThreadPoolExecutor(1, thread_name_prefix="queue-read") as pool:
            fut = pool.submit(read, groups[0])
            for nxt in [*groups[1:], None]:
                got = fut.result()
                if nxt is not None:
                    fut = pool.submit(read, nxt)
                yield from got


def score_segments(score: ScoreFn, segments: Iterator[Segment], stats: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every live row of ``segments`` (a bulk re-rank's pass).

    Segments are scored as they arrive (small ones a few at a time, up to
    ``RERANK_MIN_ROWS``): the model sees cache-sized blocks and rows are never copied
    into one big matrix.

    Parameters
    ----------
    score : ``(ids, X (m, d) float32) -> (m,)`` scores, called once per group of segments of one width.
    segments : the segments, in order.
    stats : adds the seconds spent in ``score`` under ``"score_s"``.

    Returns
    -------
    ``(id bytes (total,) uint8, starts (n,) int64, lengths (n,) int64, scores (n,) float64)`` over every live row.
    """
    id_parts: list[np.ndarray] = []
    start_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    group: list[Segment] = []
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
    for seg in segments:
        if not seg.alive.any():
            continue
        if group and seg.X.shape[1] != group[0].X.shape[1]:  # one model call per feature width
            flush()
            rows = 0
        group.append(seg)
        rows += int(seg.alive.sum())
        if rows >= RERANK_MIN_ROWS:
            flush()
            rows = 0
    if group:
        flush()
    if not score_parts:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), empty, empty, np.zeros(0)
    return np.concatenate(id_parts), np.concatenate(start_parts), np.concatenate(length_parts), np.concatenate(score_parts)
