"""The skip record (``skip.v1``): a labeler passing on an item it was sent."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from activestream.schemas.codec import dump_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import about_item, finite_number, required_text

SKIP_SCHEMA = "skip.v1"


@dataclass(frozen=True)
class Skip:
    """A labeler passing on an item it was sent on the queue topic (the dispatcher hands it back).

    Parameters
    ----------
    item_id : the item passed on.
    labeler_id : who passed on it (each labeler counts once towards the queue's ``max_skips``).
    ts : UNIX time of the skip.
    lease_expires_at : the ``lease_expires_at`` of the queue entry passed on (``None``: not given): the dispatcher
        takes the skip only while its group holds that lease, not a later one of the same item.
    """

    item_id: str
    labeler_id: str
    ts: float = dataclasses.field(default_factory=time.time)
    lease_expires_at: float | None = None

    def encode(self) -> bytes:
        """JSON bytes."""
        obj = {"schema": SKIP_SCHEMA, "item_id": self.item_id, "labeler_id": self.labeler_id, "ts": float(self.ts)}
        if self.lease_expires_at is not None:
            obj["lease_expires_at"] = float(self.lease_expires_at)
        return dump_object(obj)


def decode_skip(payload: bytes | str, *, key: str | None = None) -> Skip:
    """Decode and validate one skip record; :class:`DecodeError` (only) names the item, the field and the reason."""
    try:
        obj, item_id = about_item(payload, key)
        lease = finite_number(obj, item_id, "lease_expires_at", 0.0) if obj.get("lease_expires_at") is not None else None
        return Skip(item_id, required_text(obj, item_id, "labeler_id"), finite_number(obj, item_id, "ts", time.time()), lease)
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(key, exc) from exc
