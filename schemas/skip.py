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
    """

    item_id: str
    labeler_id: str
    ts: float = dataclasses.field(default_factory=time.time)

    def encode(self) -> bytes:
        """JSON bytes."""
        return dump_object({"schema": SKIP_SCHEMA, "item_id": self.item_id, "labeler_id": self.labeler_id, "ts": float(self.ts)})


def decode_skip(payload: bytes | str, *, key: str | None = None) -> Skip:
    """Decode and validate one skip record; :class:`DecodeError` (only) names the item, the field and the reason."""
    try:
        obj, item_id = about_item(payload, key)
        return Skip(item_id, required_text(obj, item_id, "labeler_id"), finite_number(obj, item_id, "ts", time.time()))
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(key, exc) from exc
