"""Typed message records for every topic, with JSON encode/decode.

Each record mirrors a JSON Schema file in ``schemas/json/`` (the contract users
read); ``decode_*`` validates by hand rather than with ``jsonschema`` because it
runs once per streamed message and must name the item, the field and the reason
when it rejects one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ITEM_SCHEMA = "item.v1"
QUEUE_ENTRY_SCHEMA = "queue_entry.v1"
LABEL_SCHEMA = "label.v1"
MODEL_VERSION_SCHEMA = "model_version.v1"
DEAD_LETTER_SCHEMA = "dead_letter.v1"
SKIP_SCHEMA = "skip.v1"


class DecodeError(ValueError):
    """A message that does not fit its contract.

    Parameters
    ----------
    item_id : the id of the offending item, or ``None`` when it has none.
    field : the offending field (dotted path), or ``None`` for the whole message.
    reason : what is wrong, in words.
    """

    def __init__(self, item_id: str | None, field: str | None, reason: str) -> None:
        self.item_id = item_id
        self.field = field
        self.reason = reason
        where = f"item {item_id!r}" if item_id is not None else "item <no id>"
        what = f"field {field!r}" if field is not None else "message"
        super().__init__(f"{where}: {what}: {reason}")


def _loads(payload: bytes | str, item_id_hint: str | None = None) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(item_id_hint, None, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DecodeError(item_id_hint, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _item_id(obj: Mapping[str, Any], key: str = "id") -> str:
    raw = obj.get(key)
    if raw is None:
        raise DecodeError(None, key, "missing")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise DecodeError(None, key, f"expected a string or integer, got {type(raw).__name__}")
    text = str(raw)
    if not text or len(text) > 512:
        raise DecodeError(None, key, "must be 1 to 512 characters")
    return text


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """A raw item to be scored.

    Parameters
    ----------
    id : unique item id (the Kafka key and the queue member).
    features : (n_features,) float32 vector.
    metadata : free-form JSON object carried along untouched.
    """

    id: str
    features: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def encode(self, *, binary: bool = False, raw: bool = False) -> bytes:
        """JSON bytes; ``binary=True`` packs features as base64 float32 (faster to decode).

        ``raw=True`` writes the raw layout instead (:data:`RAW_ITEM_MAGIC`, see
        :func:`encode_raw_item`): no JSON, no base64, the fastest to decode; it carries no
        metadata (``ValueError`` if the item has some).
        """
        if raw:
            if self.metadata:
                raise ValueError(f"item {self.id!r}: the raw layout carries no metadata; use JSON (binary=True)")
            return encode_raw_item(self.id, self.features)
        obj: dict[str, Any] = {"schema": ITEM_SCHEMA, "id": self.id}
        vec = np.asarray(self.features, dtype="<f4")
        if binary:
            obj["features_b64"] = base64.b64encode(vec.tobytes()).decode()
        else:
            obj["features"] = [float(v) for v in vec]
        if self.metadata:
            obj["metadata"] = self.metadata
        return _dumps(obj)


# The raw item layout: a 4-byte magic (a JSON item starts with "{" or whitespace, so the two
# never clash), the id's UTF-8 length (uint16 LE) and bytes, the vector length (uint32 LE),
# then the values as float32 LE. For producers that push many vectors: decoding it is a
# few slices instead of a JSON parse and base64.
RAW_ITEM_MAGIC = b"ASI\x01"


def encode_raw_item(item_id: str, features: Any) -> bytes:
    """One item in the raw layout (see :data:`RAW_ITEM_MAGIC`).

    Parameters
    ----------
    item_id : 1 to 512 characters.
    features : (n_features,) values, written as float32.

    Examples
    --------
    >>> encode_raw_item("a", [1.0])
    b'ASI\\x01\\x01\\x00a\\x01\\x00\\x00\\x00\\x00\\x00\\x80?'
    """
    ident = item_id.encode()
    if not 0 < len(item_id) <= 512:
        raise ValueError(f"item id must be 1 to 512 characters, got {len(item_id)}")
    vec = np.ascontiguousarray(features, dtype="<f4").ravel()
    return b"".join((RAW_ITEM_MAGIC, len(ident).to_bytes(2, "little"), ident, vec.size.to_bytes(4, "little"), vec.tobytes()))


def _split_raw(payload: bytes, key: str | None) -> tuple[str, bytes]:
    """``(id, float32 bytes)`` of a raw-layout payload.

    Raises
    ------
    DecodeError
        Naming the item (or the message key), the field and the reason.
    """
    if len(payload) < 6:
        raise DecodeError(key, "payload", "raw item shorter than its 6-byte header")
    end = 6 + int.from_bytes(payload[4:6], "little")
    if len(payload) < end + 4:
        raise DecodeError(key, "payload", f"raw item truncated: {len(payload)} bytes, its id and length need {end + 4}")
    try:
        item_id = payload[6:end].decode()
    except UnicodeDecodeError:
        raise DecodeError(key, "id", "not valid UTF-8") from None
    if not 0 < len(item_id) <= 512:
        raise DecodeError(key, "id", "must be 1 to 512 characters")
    n = int.from_bytes(payload[end : end + 4], "little")
    raw = payload[end + 4 :]
    if len(raw) != 4 * n:
        raise DecodeError(item_id, "features", f"raw item says {n} values but holds {len(raw)} bytes")
    return item_id, raw


def b64_features(item_id: str, text: Any) -> np.ndarray:
    """A ``features_b64`` field as float32 values; :class:`DecodeError` if it is not base64 of whole float32s."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise DecodeError(item_id, "features_b64", "not valid base64") from None
    if len(raw) % 4:
        raise DecodeError(item_id, "features_b64", "length is not a multiple of 4 bytes")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _checked_item(item_id: str, vec: np.ndarray, n_features: int | None, metadata: Any) -> Item:
    """The item after the checks every layout shares: length, finiteness, metadata type."""
    if vec.size == 0:
        raise DecodeError(item_id, "features", "empty")
    if n_features is not None and vec.size != n_features:
        raise DecodeError(item_id, "features", f"expected {n_features} values, got {vec.size}")
    bad = ~np.isfinite(vec)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DecodeError(item_id, f"features[{pos}]", f"not a finite number ({vec[pos]})")
    if not isinstance(metadata, dict):
        raise DecodeError(item_id, "metadata", "expected a JSON object")
    return Item(item_id, vec, metadata)


def decode_item(
    payload: bytes | str,
    *,
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
    key: str | None = None,
) -> Item:
    """Decode and validate one raw item.

    Parameters
    ----------
    payload : the message value.
    n_features : expected vector length; ``None`` accepts any non-empty length.
    feature_names : order used to turn a named-field record into a vector.
    key : the message key, used to name the item when the payload has no readable id.

    Raises
    ------
    DecodeError
        Naming the item, the field and the reason.
    """
    if isinstance(payload, bytes) and payload.startswith(RAW_ITEM_MAGIC):
        item_id, raw = _split_raw(payload, key)
        return _checked_item(item_id, np.frombuffer(raw, dtype="<f4").astype(np.float32), n_features, {})
    obj = _loads(payload, key)
    try:
        item_id = _item_id(obj)
    except DecodeError as exc:
        raise DecodeError(key, exc.field, exc.reason) from None
    if "features_b64" in obj:
        vec = b64_features(item_id, obj["features_b64"])
    elif "features" in obj:
        vec = _feature_vector(item_id, obj["features"], feature_names)
    else:
        raise DecodeError(item_id, "features", "missing")
    return _checked_item(item_id, vec, n_features, obj.get("metadata") or {})


# The exact bytes ``Item.encode(binary=True)`` writes for an item without metadata. Such
# payloads are split with bytes methods instead of a JSON parse (``decode_items``); anything
# else, or anything the split cannot vouch for, takes the full path of ``decode_item``.
_FAST_HEAD = b'{"schema":"item.v1","id":"'
_FAST_MID = b'","features_b64":"'
_FAST_TAIL = b'"}'


def _split_fast(payload: bytes | str) -> tuple[str, bytes] | None:
    """``(id, float32 bytes)`` of a raw or canonical binary item, or ``None`` to take the JSON path.

    Accepts only what ``decode_item`` accepts with the same result: an id without
    escapes or control characters (1 to 512 characters) and strictly valid base64.
    """
    if not isinstance(payload, bytes):
        return None
    if payload.startswith(RAW_ITEM_MAGIC):
        try:
            return _split_raw(payload, None)
        except DecodeError:  # decode_item words the error
            return None
    if not payload.startswith(_FAST_HEAD) or not payload.endswith(_FAST_TAIL):
        return None
    mid = payload.find(_FAST_MID, len(_FAST_HEAD))
    if mid < 0:
        return None
    try:
        item_id = payload[len(_FAST_HEAD) : mid].decode()
        raw = binascii.a2b_base64(payload[mid + len(_FAST_MID) : -len(_FAST_TAIL)], strict_mode=True)
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
    """
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


def _feature_vector(
    item_id: str, raw: Any, feature_names: Sequence[str] | None
) -> np.ndarray:
    names = None
    if isinstance(raw, dict):
        names = list(feature_names or ())
        if feature_names is None:
            raise DecodeError(item_id, "features", "named fields given but no feature_names configured")
        values = []
        for name in feature_names:
            if name not in raw:
                raise DecodeError(item_id, f"features.{name}", "missing")
            values.append(raw[name])
        raw = values
    if not isinstance(raw, list):
        raise DecodeError(item_id, "features", f"expected a list of numbers, got {type(raw).__name__}")
    for pos, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, int | float) or v is None:
            raise DecodeError(item_id, f"features[{pos}]", f"not a number ({v!r})")
        if isinstance(v, float) and not math.isfinite(v):
            raise DecodeError(item_id, f"features[{pos}]", f"not a finite number ({v})")
    # Features are float32: 1e39 or a 400-digit integer is valid JSON but no finite float32
    # (checked on the whole vector: a per-value range check would slow every JSON item).
    try:
        with np.errstate(over="ignore"):
            out = np.asarray(raw, dtype=np.float64).astype(np.float32)
        overflow = np.flatnonzero(~np.isfinite(out))
    except OverflowError:  # an integer beyond float64
        out, overflow = np.zeros(0, dtype=np.float32), np.array([next(i for i, v in enumerate(raw) if not _fits_float(v))])
    if len(overflow):
        pos = int(overflow[0])
        v = raw[pos]
        shown = f"{v:.3e}" if _fits_float(v) else f"an integer of {len(str(abs(v)))} digits"
        field = f"features.{names[pos]}" if names is not None else f"features[{pos}]"
        raise DecodeError(item_id, field, f"not a finite float32 number ({shown})")
    return out


def _fits_float(v: float) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


# --------------------------------------------------------------------------- queue entries


@dataclass(frozen=True)
class QueueEntry:
    """An item offered to labelers, as served by the lease API and the queue topic.

    Parameters
    ----------
    id : item id.
    score : informativeness (higher means label it sooner).
    model_version : version that produced the score (0 before any model).
    features : (n_features,) float32 vector, for labelers and the label record.
    lease_expires_at : UNIX time after which the item returns to the queue.
    """

    id: str
    score: float
    model_version: int
    features: np.ndarray | None = None
    lease_expires_at: float | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "schema": QUEUE_ENTRY_SCHEMA,
            "id": self.id,
            "score": float(self.score),
            "model_version": int(self.model_version),
        }
        if self.features is not None:
            obj["features"] = [float(v) for v in np.asarray(self.features, dtype=np.float32)]
        if self.lease_expires_at is not None:
            obj["lease_expires_at"] = float(self.lease_expires_at)
        if self.metadata:
            obj["metadata"] = self.metadata
        return _dumps(obj)


def decode_queue_entry(payload: bytes | str) -> QueueEntry:
    obj = _loads(payload)
    item_id = _item_id(obj)
    score = obj.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise DecodeError(item_id, "score", "expected a number")
    version = obj.get("model_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DecodeError(item_id, "model_version", "expected an integer")
    feats = obj.get("features")
    vec = _feature_vector(item_id, feats, None) if feats is not None else None
    return QueueEntry(
        item_id, float(score), version, vec, obj.get("lease_expires_at"), obj.get("metadata") or {}
    )


# --------------------------------------------------------------------------- skips


@dataclass(frozen=True)
class Skip:
    """A labeler passing on an item it was sent on the queue topic (the dispatcher hands it back).

    Parameters
    ----------
    item_id : the item passed on.
    labeler_id : who passed on it (each labeler counts once towards the queue's ``max_skips``).
    """

    item_id: str
    labeler_id: str
    ts: float = dataclasses.field(default_factory=time.time)

    def encode(self) -> bytes:
        return _dumps({"schema": SKIP_SCHEMA, "item_id": self.item_id, "labeler_id": self.labeler_id, "ts": float(self.ts)})


def _about_item(payload: bytes | str, key: str | None) -> tuple[dict[str, Any], str]:
    """The JSON object of a record about an item (label, skip) and its ``item_id`` (the key names it if unreadable)."""
    obj = _loads(payload, key)
    try:
        return obj, _item_id(obj, "item_id")
    except DecodeError as exc:
        raise DecodeError(key, exc.field, exc.reason) from None


def _text(obj: Mapping[str, Any], item_id: str, name: str) -> str:
    """A required non-empty string field."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise DecodeError(item_id, name, "missing or not a string")
    return value


def decode_skip(payload: bytes | str, *, key: str | None = None) -> Skip:
    """Decode and validate one skip record; :class:`DecodeError` names the item, the field and the reason."""
    obj, item_id = _about_item(payload, key)
    labeler = _text(obj, item_id, "labeler_id")
    ts = obj.get("ts", time.time())
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise DecodeError(item_id, "ts", "expected a number")
    return Skip(item_id, labeler, float(ts))


# --------------------------------------------------------------------------- labels

LabelValue = str | int


def label_kinds(values: Sequence[LabelValue]) -> set[str]:
    """The label types among ``values``: a subset of ``{"integers", "strings"}``."""
    return {"integers" if isinstance(v, int) else "strings" for v in values}


def coerce_label_value(value: LabelValue, kind: str) -> LabelValue | None:
    """``value`` as the campaign's label type (``"integers"`` or ``"strings"``), or ``None`` if it cannot be.

    A terminal labeler types ``3`` (an integer) where a UI may send ``"3"``: both mean the
    same class, so neither is refused; ``"cat"`` in an integer campaign is.
    """
    if kind == "strings":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, int):
        return value
    return int_label(value)


def int_label(text: str) -> int | None:
    """``text`` as an integer class if it is one (``" 3"``, ``"-2"``, ``"３"``), else ``None``.

    Decimal digits of any script, as ``int()`` reads them; not ``"²"`` (``isdigit()`` is true
    for it, but ``int("²")`` raises) and not more than 4000 digits (``int()``'s limit).
    """
    t = text.strip()
    digits = t[1:] if t.startswith("-") else t
    return int(t) if digits.isdecimal() and len(digits) <= 4000 else None


@dataclass(frozen=True)
class Label:
    """A human (or auto-accepted) label for one item.

    Parameters
    ----------
    item_id : the labeled item.
    label : the class for single-label items, else ``None``.
    labels : the label set for multi-label items, else ``None``.
    labeler_id : who labeled it.
    seconds : time the labeler spent.
    label_id : idempotence key: a second submit with the same id changes nothing.
    features : (n_features,) float32 vector, attached by the labeling service so the
        retrainer can rebuild its training set from the labels topic alone.
    """

    item_id: str
    label_id: str
    labeler_id: str
    label: LabelValue | None = None
    labels: tuple[LabelValue, ...] | None = None
    seconds: float = 0.0
    features: np.ndarray | None = None
    source: str = "human"
    ts: float = dataclasses.field(default_factory=time.time)
    control: bool = False

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "schema": LABEL_SCHEMA,
            "item_id": self.item_id,
            "label_id": self.label_id,
            "labeler_id": self.labeler_id,
            "seconds": float(self.seconds),
            "source": self.source,
            "ts": float(self.ts),
        }
        if self.labels is not None:
            obj["labels"] = list(self.labels)
        else:
            obj["label"] = self.label
        if self.control:
            obj["control"] = True
        if self.features is not None:
            vec = np.asarray(self.features, dtype="<f4")
            obj["features_b64"] = base64.b64encode(vec.tobytes()).decode()
        return _dumps(obj)


def _label_value(item_id: str, fieldname: str, v: Any) -> LabelValue:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise DecodeError(item_id, fieldname, f"expected a string or integer class, got {v!r}")
    return v


def decode_label(payload: bytes | str, *, key: str | None = None) -> Label:
    """Decode and validate one label message.

    Raises
    ------
    DecodeError
        Naming the item, the field and the reason.
    """
    obj, item_id = _about_item(payload, key)
    label_id = _text(obj, item_id, "label_id")
    labeler = _text(obj, item_id, "labeler_id")
    label: LabelValue | None = None
    labels: tuple[LabelValue, ...] | None = None
    if "labels" in obj:
        raw = obj["labels"]
        if not isinstance(raw, list):
            raise DecodeError(item_id, "labels", "expected a list")
        labels = tuple(_label_value(item_id, f"labels[{i}]", v) for i, v in enumerate(raw))
    elif "label" in obj:
        label = _label_value(item_id, "label", obj["label"])
    else:
        raise DecodeError(item_id, "label", "missing (give 'label' or 'labels')")
    seconds = obj.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise DecodeError(item_id, "seconds", "expected a non-negative number")
    features = None
    if "features_b64" in obj:
        features = b64_features(item_id, obj["features_b64"])
        if not np.isfinite(features).all():
            raise DecodeError(item_id, "features_b64", "holds a non-finite number")
    elif "features" in obj:
        features = _feature_vector(item_id, obj["features"], None)
    if features is not None and features.size == 0:
        raise DecodeError(item_id, "features", "empty")
    return Label(
        item_id=item_id,
        label_id=label_id,
        labeler_id=labeler,
        label=label,
        labels=labels,
        seconds=float(seconds),
        features=features,
        source=str(obj.get("source", "human")),
        ts=float(obj.get("ts", time.time())),
        control=bool(obj.get("control", False)),
    )


# --------------------------------------------------------------------------- model versions


@dataclass(frozen=True)
class ModelVersion:
    """A trained model published to the scorers.

    Parameters
    ----------
    version : monotonically increasing version number.
    onnx : the ONNX model bytes (or ``None`` when ``artifact_uri`` points to them).
    sha256 : hex digest of the ONNX bytes; scorers refuse a mismatch.
    classes : class labels in the order of the model's probability columns.
    task : ``"multiclass"`` or ``"multilabel"``.
    metrics : validation figures (held-out score, n_labels, ...).
    """

    version: int
    onnx: bytes | None
    sha256: str
    classes: tuple[LabelValue, ...]
    task: str = "multiclass"
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    artifact_uri: str | None = None
    n_labels: int = 0
    label_ids_digest: str = ""
    created_at: float = dataclasses.field(default_factory=time.time)

    @staticmethod
    def digest(onnx: bytes) -> str:
        return hashlib.sha256(onnx).hexdigest()

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "schema": MODEL_VERSION_SCHEMA,
            "version": self.version,
            "sha256": self.sha256,
            "classes": list(self.classes),
            "task": self.task,
            "metrics": self.metrics,
            "n_labels": self.n_labels,
            "label_ids_digest": self.label_ids_digest,
            "created_at": self.created_at,
        }
        if self.onnx is not None:
            obj["onnx_b64"] = base64.b64encode(self.onnx).decode()
        if self.artifact_uri is not None:
            obj["artifact_uri"] = self.artifact_uri
        return _dumps(obj)


def decode_model_version(payload: bytes | str) -> ModelVersion:
    """Decode a model version and check its sha256 when the bytes are inline."""
    obj = _loads(payload)
    version = obj.get("version")
    vid = f"model v{version}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DecodeError(vid, "version", "expected a positive integer")
    sha = obj.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DecodeError(vid, "sha256", "expected 64 hex characters")
    onnx = None
    if "onnx_b64" in obj:
        try:
            onnx = base64.b64decode(obj["onnx_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise DecodeError(vid, "onnx_b64", "not valid base64") from None
        if ModelVersion.digest(onnx) != sha:
            raise DecodeError(vid, "sha256", "does not match the ONNX bytes")
    elif not obj.get("artifact_uri"):
        raise DecodeError(vid, "onnx_b64", "missing (give 'onnx_b64' or 'artifact_uri')")
    classes = obj.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DecodeError(vid, "classes", "expected a non-empty list")
    task = obj.get("task", "multiclass")
    if task not in ("multiclass", "multilabel"):
        raise DecodeError(vid, "task", f"unknown task {task!r}")
    return ModelVersion(
        version=version,
        onnx=onnx,
        sha256=sha,
        classes=tuple(classes),
        task=task,
        metrics=dict(obj.get("metrics") or {}),
        artifact_uri=obj.get("artifact_uri"),
        n_labels=int(obj.get("n_labels", 0)),
        label_ids_digest=str(obj.get("label_ids_digest", "")),
        created_at=float(obj.get("created_at", 0.0)),
    )


# --------------------------------------------------------------------------- dead letters


# A dead letter keeps at most this much of the rejected message: the whole of any item a
# producer means to send, while a dead letter of a huge junk record still fits the broker's
# default 1 MB record limit (base64 adds a third). Otherwise the broker refuses the dead
# letter, the transaction carrying it fails, and the stream stops at that record for good.
MAX_DEAD_LETTER_PAYLOAD = 256 * 1024


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message, kept with the reason it was rejected.

    Parameters
    ----------
    source : the topic (or input) it came from.
    reason : why it was rejected.
    payload : the original bytes.
    item_id, field : what and where, when known.
    """

    source: str
    reason: str
    payload: bytes
    item_id: str | None = None
    field: str | None = None
    ts: float = dataclasses.field(default_factory=time.time)

    @classmethod
    def from_error(cls, source: str, payload: bytes, err: DecodeError) -> DeadLetter:
        return cls(source, err.reason, payload, err.item_id, err.field)

    @property
    def key(self) -> bytes | None:
        """Record key on the dead-letter topic: the item id, when there is one."""
        return self.item_id.encode() if self.item_id else None

    @property
    def reason_code(self) -> str:
        """A short label for metrics: the field (without index) or ``message``."""
        if self.field is None:
            return "message"
        return self.field.split("[")[0].split(".")[0]

    def encode(self) -> bytes:
        kept = self.payload[:MAX_DEAD_LETTER_PAYLOAD]
        try:
            text = kept.decode()
            body: dict[str, Any] = {"payload": text}
            # JSON escapes a control byte into 6 (\u0000): such text goes as base64 (4 per 3) instead.
            if len(json.dumps(text)) > 4 * len(kept) // 3 + 8:
                body = {"payload_b64": base64.b64encode(kept).decode()}
        except UnicodeDecodeError:  # (a cut through a multi-byte character lands here too)
            body = {"payload_b64": base64.b64encode(kept).decode()}
        if len(kept) < len(self.payload):
            body["payload_bytes"] = len(self.payload)
        return _dumps(
            {
                "schema": DEAD_LETTER_SCHEMA,
                "source": self.source,
                "reason": self.reason,
                "item_id": self.item_id,
                "field": self.field,
                "ts": self.ts,
                **body,
            }
        )


def decode_dead_letter(payload: bytes | str) -> DeadLetter:
    obj = _loads(payload)
    if "payload_b64" in obj:
        raw = base64.b64decode(obj["payload_b64"])
    else:
        raw = str(obj.get("payload", "")).encode()
    return DeadLetter(
        source=str(obj.get("source")),
        reason=str(obj.get("reason")),
        payload=raw,
        item_id=obj.get("item_id"),
        field=obj.get("field"),
        ts=float(obj.get("ts", 0.0)),
    )
