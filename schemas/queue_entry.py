"""The queue entry record (``queue_entry.v1``): an item offered to labelers, with its score."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import finite_number, integer, metadata, read_id
from activestream.schemas.wire_json import feature_vector

QUEUE_ENTRY_SCHEMA = "queue_entry.v1"


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
        """JSON bytes; the features go as a list of numbers, readable by any labeler."""
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
        return dump_object(obj)


def decode_queue_entry(payload: bytes | str) -> QueueEntry:
    """Decode and validate one queue entry; :class:`DecodeError` (only) names the item, the field and the reason."""
    try:
        obj = load_object(payload)
        item_id = read_id(obj)
        score = finite_number(obj, item_id, "score", None)
        version = integer(obj, item_id, "model_version", 0, minimum=0)
        feats = obj.get("features")
        vec = feature_vector(item_id, feats, None) if feats is not None else None
        expires = finite_number(obj, item_id, "lease_expires_at", 0.0) if obj.get("lease_expires_at") is not None else None
        return QueueEntry(item_id, score, version, vec, expires, metadata(item_id, obj.get("metadata")))
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(None, exc) from exc
