"""The capped pool and the random reservoir: what bounds a namespace's memory on an unbounded stream.

The pool holds at most ``capacity`` pending items. When it is full, a new item enters only if it
outranks the lowest pending item, which is evicted: its row freed, its id forgotten (so the same
id sent again is decided afresh). Beside it, the *reservoir* keeps a uniform sample of every item
streamed: each item gets a sampling key, a hash of its id uniform in [0, 1), and the reservoir
keeps the ``reservoir`` items with the smallest keys (bottom-k sampling: Efraimidis & Spirakis'
A-Res with equal weights, which samples uniformly as Vitter's Algorithm R does). The key depends
on the id only, so the sample does not depend on the order items arrive in nor on which scorer
scored them, and a redelivered batch changes nothing. The reservoir keeps each member's row (the
random-control picks are drawn from it, see :meth:`QueueWriter.promote`).

Admission and eviction run in the enqueue script (``lua/add.lua``); each call answers with the
thresholds an item must pass (:class:`Thresholds`), which the scorer keeps, so an item that can
enter neither costs no Redis work (:mod:`activestream.scorer.admission`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLING_SEED = b"activestream-reservoir-1"  # the hash key: fixed, so every scorer draws the same key for an id
_KEYED = hashlib.blake2b(digest_size=8, key=SAMPLING_SEED)  # (copied per id, never updated itself)


@dataclass(frozen=True)
class PoolLimits:
    """How much one namespace keeps.

    Parameters
    ----------
    capacity : most pending items (``None``: no cap).
    reservoir : members of the random reservoir (0: none).
    max_age : seconds after which a pending item is evicted (``None``: never).
    """

    capacity: int | None = None
    reservoir: int = 0
    max_age: float | None = None

    @classmethod
    def of(cls, capacity: int, reservoir_share: float, max_age: float) -> PoolLimits:
        """From the settings: ``capacity`` 0 is no cap, ``max_age`` 0 is none; the reservoir is ``reservoir_share`` of the capacity,
        at least one member when the share is above 0 (a share that rounded to none left the control picks to the pending items)."""
        reservoir = max(1, round(capacity * reservoir_share)) if capacity and reservoir_share > 0 else 0
        return cls(capacity or None, reservoir, max_age or None)


@dataclass(frozen=True)
class Thresholds:
    """What an item must beat to be worth sending: a score above ``pool`` or a sampling key below ``reservoir``."""

    pool: float = -math.inf  # the lowest pending score of a full pool (-inf: not full)
    reservoir: float = math.inf  # the largest sampling key of a full reservoir (inf: not full; 0 without one)

    @classmethod
    def parse(cls, pool: bytes | str, reservoir: bytes | str, has_reservoir: bool) -> Thresholds:
        """From the enqueue script's reply ('' where not full)."""
        p = float(pool) if pool not in (b"", "") else -math.inf
        r = (float(reservoir) if reservoir not in (b"", "") else math.inf) if has_reservoir else 0.0
        return cls(p, r)

    def wanted(self, scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: which items could enter the pool or the reservoir (``scores``, ``keys`` : (n,))."""
        return (np.asarray(scores) > self.pool) | (np.asarray(keys) < self.reservoir)  # type: ignore[no-any-return]


def first_of_each_id(ids: Sequence[str]) -> list[int]:
    """Positions of the first occurrence of each id, in order (a later one is a duplicate: the queue's first write wins)."""
    return sorted({item_id: j for j, item_id in reversed(list(enumerate(ids)))}.values())


def best_first(ids: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """The order a capped pool stores a batch's rows in: each id's first occurrence, highest score first.

    Evictions take the lowest-ranked items first, so a segment written best first loses its last
    rows first, which compaction cuts off without moving a row (``lua/fn_evict.lua``).

    Parameters
    ----------
    ids : (n,) item ids; an id sent again within the batch is left out (its first occurrence counts).
    scores : (n,) float64.

    Returns
    -------
    (m,) int64 indices into ``ids``, m <= n; equal scores keep their arrival order.
    """
    idx = np.arange(len(ids)) if len(set(ids)) == len(ids) else np.array(first_of_each_id(ids), dtype=np.int64)
    return idx[np.argsort(-scores[idx], kind="stable")]  # type: ignore[no-any-return]


def sampling_keys(ids: Sequence[str]) -> np.ndarray:
    """Each id's reservoir sampling key: a keyed BLAKE2b hash of it, uniform in [0, 1).

    Returns
    -------
    (n,) float64.
    """
    return sampling_keys_of_bytes([item_id.encode() for item_id in ids])


def sampling_keys_of_bytes(ids: Sequence[bytes]) -> np.ndarray:
    """:func:`sampling_keys` of UTF-8 encoded ids (as Redis returns them: nothing to decode)."""
    if not ids:
        return np.empty(0, dtype=np.float64)
    # The scorer hashes every item it reads: copy the state after the key block instead of keying
    # each hash afresh (the same digests, about half the time), and convert all of them at once.
    digests = []
    for item_id in ids:
        h = _KEYED.copy()
        h.update(item_id)
        digests.append(h.digest())
    u = np.frombuffer(b"".join(digests), dtype="<u8")
    return (u >> np.uint64(11)).astype(np.float64) * 2.0**-53  # the top 53 bits: exact in a double, < 1


class SamplingKeyCache:
    """:func:`sampling_keys_of_bytes` for UTF-8 encoded ids asked for again and again (the pending items at every
    control-walk lease, the labels at every model version): each id hashed once, then looked up (a few times
    faster). Past ``limit`` ids it starts afresh, so its memory stays bounded; a call with more distinct ids than
    that hashes them all."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self._keys: dict[bytes, float] = {}

    def __call__(self, ids: Sequence[bytes]) -> np.ndarray:
        """(n,) float64: the keys of ``ids``, as :func:`sampling_keys_of_bytes` gives them."""
        if len(ids) > self.limit and len(set(ids)) > self.limit:
            return sampling_keys_of_bytes(ids)
        keys = self._keys
        found = list(map(keys.get, ids))  # (the common case, every id known: no Python loop)
        if None in found:
            new = list(dict.fromkeys(i for i, v in zip(ids, found, strict=True) if v is None))
            if len(keys) + len(new) > self.limit:
                keys.clear()
                new = list(dict.fromkeys(ids))
            keys.update(zip(new, sampling_keys_of_bytes(new).tolist(), strict=True))
            found = list(map(keys.__getitem__, ids))
        return np.array(found, dtype=np.float64)


def unpack_member(raw: bytes) -> tuple[float, bytes, bytes]:
    """A reservoir member's stored value -> ``(score, row bytes, metadata JSON or b"")``."""
    score, rb = float(np.frombuffer(raw, dtype="<f8", count=1)[0]), int.from_bytes(raw[8:12], "little")
    return score, raw[12 : 12 + rb], raw[12 + rb :]
