"""Decoding a batch of items at once (:func:`decode_items`): the scorer's hot path.

Three ways in, fastest first: a batch of raw items of one size is read as one structured
array; raw and canonical binary items (see :mod:`activestream.schemas.wire_b64`) are
split with bytes methods and validated as one matrix; every other payload goes through
:func:`activestream.schemas.decode_item`. Whatever the way, the accepted items, their
values and every rejection are what ``decode_item`` gives one payload at a time.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activestream.schemas.errors import DecodeError
from activestream.schemas.item import Item, decode_item
from activestream.schemas.wire_b64 import CANONICAL_HEAD, CANONICAL_MID, CANONICAL_TAIL
from activestream.schemas.wire_raw import RAW_ITEM_MAGIC, split_raw

log = logging.getLogger(__name__)


def _split_fast(payload: bytes | str) -> tuple[str, bytes] | None:
    """``(id, float32 bytes)`` of a raw or canonical binary item, or ``None`` to take the JSON path.

    Accepts only what ``decode_item`` accepts with the same result: an id without
    escapes or control characters (1 to 512 characters) and strictly valid base64.
    """
    if not isinstance(payload, bytes):
        return None
    if payload.startswith(RAW_ITEM_MAGIC):
        try:
            return split_raw(payload, None)
        except DecodeError:  # decode_item words the error
            return None
    if not payload.startswith(CANONICAL_HEAD) or not payload.endswith(CANONICAL_TAIL):
        return None
    mid = payload.find(CANONICAL_MID, len(CANONICAL_HEAD))
    if mid < 0:
        return None
    try:
        item_id = payload[len(CANONICAL_HEAD) : mid].decode()
        raw = binascii.a2b_base64(payload[mid + len(CANONICAL_MID) : -len(CANONICAL_TAIL)], strict_mode=True)
    except (UnicodeDecodeError, binascii.Error):
        return None
    if not 0 < len(item_id) <= 512 or '"' in item_id or "\\" in item_id or not item_id.isprintable():
        return None
    return item_id, raw


@dataclass
class ItemBatch:
    """Items decoded from a batch of payloads (see :func:`decode_items`).

    Parameters
    ----------
    ids : (m,) ids of the valid items, in payload order.
    features : (m, n_features) float32.
    metadata : (m,) metadata objects.
    index : (m,) position of each valid item among the payloads.
    errors : ``(position, DecodeError)`` of each rejected payload, in payload order.
    """

    ids: list[str]
    features: np.ndarray
    metadata: list[dict[str, Any]]
    index: list[int]
    errors: list[tuple[int, DecodeError]]


def _first_valid(fast: list[tuple[int, str, bytes]], slow: dict[int, Item]) -> tuple[int, int] | None:
    """``(position, length)`` of the first valid item in payload order (fast or slow), if any."""
    valid = ((pos, len(raw) // 4) for pos, _, raw in fast if raw and len(raw) % 4 == 0 and np.isfinite(np.frombuffer(raw, dtype="<f4")).all())
    first_fast = next(valid, None)
    first_slow = min(slow, default=None)
    if first_fast is None or (first_slow is not None and first_slow < first_fast[0]):
        return (first_slow, slow[first_slow].features.size) if first_slow is not None else None
    return first_fast


def _non_finite(item_id: str, vec: np.ndarray) -> DecodeError:
    """The error ``decode_item`` gives ``vec``, a (n,) vector holding a non-finite value."""
    bad = int(np.flatnonzero(~np.isfinite(vec))[0])
    return DecodeError(item_id, f"features[{bad}]", f"not a finite number ({vec[bad]})")


def _check_fast(fast: list[tuple[int, str, bytes]], d: int | None, errors: dict[int, DecodeError]) -> list[tuple[int, str, bytes]]:
    """The fast-path items of the expected length (the others go to ``errors``, as ``decode_item`` words it)."""
    good = []
    for pos, item_id, raw in fast:
        if len(raw) % 4:
            errors[pos] = DecodeError(item_id, "features_b64", "length is not a multiple of 4 bytes")
        elif not raw:
            errors[pos] = DecodeError(item_id, "features", "empty")
        elif d is None:  # no valid item in the whole batch: this one holds a non-finite value
            errors[pos] = _non_finite(item_id, np.frombuffer(raw, dtype="<f4"))
        elif len(raw) != 4 * d:
            errors[pos] = DecodeError(item_id, "features", f"expected {d} values, got {len(raw) // 4}")
        else:
            good.append((pos, item_id, raw))
    return good


def _decode_uniform_raw(payloads: Sequence[bytes | str], n_features: int | None) -> ItemBatch | None:
    """A batch of valid raw items that all share one length and one id length, as one matrix.

    What a producer of fixed-width ids and vectors sends (``activestream produce --raw``):
    the batch is joined into one buffer and read through a structured view, with no
    per-item slicing. Returns ``None`` unless every payload is such an item and valid
    (right length, UTF-8 id, finite values); :func:`decode_items` then takes the general
    path, which names what is wrong with each.
    """
    first = payloads[0] if payloads else None
    if not isinstance(first, bytes) or len(first) < 10 or not first.startswith(RAW_ITEM_MAGIC):
        return None
    size, id_len = len(first), int.from_bytes(first[4:6], "little")
    d, rem = divmod(size - 10 - id_len, 4)
    if rem or d <= 0 or id_len == 0 or (n_features is not None and d != n_features):
        return None
    if any(not isinstance(p, bytes) or len(p) != size for p in payloads):
        return None
    layout = np.dtype([("magic", "V4"), ("id_len", "<u2"), ("id", f"V{id_len}"), ("n", "<u4"), ("x", "<f4", (d,))])
    rows = np.frombuffer(b"".join(payloads), dtype=layout)  # type: ignore[arg-type]
    X = np.ascontiguousarray(rows["x"], dtype=np.float32)
    if (rows["magic"] != np.void(RAW_ITEM_MAGIC)).any() or (rows["id_len"] != id_len).any() or (rows["n"] != d).any():
        return None
    if not np.isfinite(X).all():
        return None
    blob = rows["id"].tobytes()
    try:
        ids = [blob[i : i + id_len].decode() for i in range(0, len(blob), id_len)]
    except UnicodeDecodeError:
        return None
    if id_len > 512 and any(len(i) > 512 for i in ids):  # 1 to 512 characters, as decode_item checks
        return None
    return ItemBatch(ids, X, [{} for _ in ids], list(range(len(ids))), [])


def decode_items(
    payloads: Sequence[bytes | str],
    *,
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
    keys: Sequence[str | None] | None = None,
) -> ItemBatch:
    """Decode and validate a batch of raw items: what :func:`decode_item` does to each, faster.

    A batch of raw items of one size is read as one structured array; canonical binary
    items (``Item(...).encode(binary=True)`` without metadata) are split with bytes
    methods and validated as one matrix; every other payload goes through
    :func:`decode_item`. Accepted items, their values and every rejection (item, field,
    reason) are the same as :func:`decode_item` gives one payload at a time.

    Parameters
    ----------
    payloads : (n,) message values.
    n_features : expected vector length; ``None`` takes the first valid item's length and
        rejects items of any other length (``features``: "expected ... values, got ...").
    feature_names : order used to turn named-field records into vectors.
    keys : (n,) message keys, naming items whose payload has no readable id.

    It raises nothing, for any payloads: should a fast path fail where no check foresaw,
    the batch is decoded again one payload at a time (:func:`decode_item` is total).
    """
    try:
        return _decode_items(payloads, n_features, feature_names, keys)
    except Exception:  # the safety net: one bad message must never stop the stream
        log.exception("decoding a batch of %d items failed; decoding them one at a time", len(payloads))
        return _decode_each(payloads, n_features, feature_names, keys)


def _decode_each(
    payloads: Sequence[bytes | str], n_features: int | None, feature_names: Sequence[str] | None, keys: Sequence[str | None] | None,
) -> ItemBatch:
    """:func:`decode_items` the plain way: :func:`decode_item` on each payload (the first valid one fixes the length)."""
    items: list[Item] = []
    index: list[int] = []
    errors: list[tuple[int, DecodeError]] = []
    d = n_features
    for pos, p in enumerate(payloads):
        try:
            key = keys[pos] if keys is not None else None
        except Exception:  # (a key that cannot be read names nothing)
            key = None
        try:
            item = decode_item(p, n_features=d, feature_names=feature_names, key=key)
        except DecodeError as err:
            errors.append((pos, err))
            continue
        d = item.features.size
        items.append(item)
        index.append(pos)
    X = np.vstack([it.features for it in items]).astype(np.float32) if items else np.zeros((0, d or 0), dtype=np.float32)
    return ItemBatch([it.id for it in items], X, [it.metadata for it in items], index, errors)


def _decode_items(
    payloads: Sequence[bytes | str], n_features: int | None, feature_names: Sequence[str] | None, keys: Sequence[str | None] | None,
) -> ItemBatch:
    uniform = _decode_uniform_raw(payloads, n_features)
    if uniform is not None:
        return uniform
    fast: list[tuple[int, str, bytes]] = []
    rest: list[int] = []
    for pos, p in enumerate(payloads):
        hit = _split_fast(p)
        if hit is not None:
            fast.append((pos, hit[0], hit[1]))
        else:
            rest.append(pos)

    def decode_rest(dim: int | None, positions: list[int]) -> tuple[dict[int, Item], dict[int, DecodeError]]:
        ok: dict[int, Item] = {}
        bad: dict[int, DecodeError] = {}
        for pos in positions:
            try:
                ok[pos] = decode_item(payloads[pos], n_features=dim, feature_names=feature_names, key=keys[pos] if keys is not None else None)
            except DecodeError as err:
                bad[pos] = err
        return ok, bad

    d, first = n_features, -1
    if d is None:  # the first valid item fixes the length (what came before it was invalid anyway)
        found = _first_valid(fast, decode_rest(None, rest)[0])
        if found is not None:
            first, d = found
    slow, errors = decode_rest(None, [p for p in rest if p < first])
    more = decode_rest(d, [p for p in rest if p >= first])
    slow.update(more[0])
    errors.update(more[1])
    rows: dict[int, tuple[str, np.ndarray | bytes, dict[str, Any]]] = {}
    good = _check_fast([f for f in fast if f[0] >= first], d, errors)
    _check_fast([f for f in fast if f[0] < first], None, errors)
    for pos, item in slow.items():
        if item.features.size != d:
            errors[pos] = DecodeError(item.id, "features", f"expected {d} values, got {item.features.size}")
        else:
            rows[pos] = (item.id, item.features, item.metadata)
    X_fast = np.frombuffer(b"".join(raw for _, _, raw in good), dtype="<f4").reshape(len(good), d or 0)
    finite = np.isfinite(X_fast).all(axis=1)
    for j in np.flatnonzero(~finite).tolist():
        errors[good[j][0]] = _non_finite(good[j][1], X_fast[j])
    if not rows:  # the usual case: every valid item came the fast way, already in order
        keep = np.flatnonzero(finite)
        X = X_fast[keep] if len(keep) < len(good) else X_fast
        ids = [good[j][1] for j in keep.tolist()]
        index = [good[j][0] for j in keep.tolist()]
        metadata: list[dict[str, Any]] = [{} for _ in ids]
    else:
        for j in np.flatnonzero(finite).tolist():
            rows[good[j][0]] = (good[j][1], X_fast[j], {})
        index = sorted(rows)
        ids = [rows[p][0] for p in index]
        X = np.vstack([rows[p][1] for p in index]).astype(np.float32) if index else np.zeros((0, d or 0), dtype=np.float32)
        metadata = [rows[p][2] for p in index]
    return ItemBatch(ids, np.asarray(X, dtype=np.float32), metadata, index, sorted(errors.items()))
