"""The item record (``item.v1``): a vector to be scored, in any of the three item wire formats."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import metadata, read_id
from activestream.schemas.wire_b64 import b64_features
from activestream.schemas.wire_json import feature_vector
from activestream.schemas.wire_raw import RAW_ITEM_MAGIC, encode_raw_item, split_raw

ITEM_SCHEMA = "item.v1"


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
        return dump_object(obj)


def _checked_item(item_id: str, vec: np.ndarray, n_features: int | None, md: dict[str, Any]) -> Item:
    """The item after the checks every layout shares: length, finiteness."""
    if vec.size == 0:
        raise DecodeError(item_id, "features", "empty")
    if n_features is not None and vec.size != n_features:
        raise DecodeError(item_id, "features", f"expected {n_features} values, got {vec.size}")
    bad = ~np.isfinite(vec)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DecodeError(item_id, f"features[{pos}]", f"not a finite number ({vec[pos]})")
    return Item(item_id, vec, md)


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
        Naming the item, the field and the reason; it is the only exception raised, for any
        payload (an error no check foresaw is raised as one with ``unexpected`` set).
    """
    try:
        return _decode_item(payload, n_features, feature_names, key)
    except DecodeError:
        raise
    except Exception as exc:  # the safety net: one bad message must never stop a stream
        raise DecodeError.from_unexpected(key, exc) from exc


def _decode_item(payload: bytes | str, n_features: int | None, feature_names: Sequence[str] | None, key: str | None) -> Item:
    if isinstance(payload, bytes) and payload.startswith(RAW_ITEM_MAGIC):
        item_id, raw = split_raw(payload, key)
        return _checked_item(item_id, np.frombuffer(raw, dtype="<f4").astype(np.float32), n_features, {})
    obj = load_object(payload, key)
    try:
        item_id = read_id(obj)
    except DecodeError as exc:
        raise DecodeError(key, exc.field, exc.reason) from None
    schema = obj.get("schema")
    if schema is not None and schema != ITEM_SCHEMA:  # (a producer of another version of the contract: said, not guessed at)
        raise DecodeError(item_id, "schema", f"expected {ITEM_SCHEMA!r} (or none), got {str(schema)[:64]!r}")
    if "features_b64" in obj and "features" in obj:
        raise DecodeError(item_id, "features", "give either features or features_b64, not both")
    if "features_b64" in obj:
        vec = b64_features(item_id, obj["features_b64"])
    elif "features" in obj:
        vec = feature_vector(item_id, obj["features"], feature_names)
    else:
        raise DecodeError(item_id, "features", "missing")
    return _checked_item(item_id, vec, n_features, metadata(item_id, obj.get("metadata")))
