"""The dead letter record (``dead_letter.v1``): a rejected message, kept with the reason."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import finite_number, is_text

DEAD_LETTER_SCHEMA = "dead_letter.v1"

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
        """The dead letter of ``payload`` from ``source``, rejected with ``err``."""
        return cls(source, err.reason, payload, err.item_id, err.field)

    @property
    def key(self) -> bytes | None:
        """Record key on the dead-letter topic: the item id, when there is one."""
        # (an id read from a rejected message may be anything: a lone surrogate is escaped)
        return self.item_id.encode(errors="backslashreplace") if self.item_id else None

    @property
    def reason_code(self) -> str:
        """A short label for metrics: the field (without index) or ``message``."""
        if self.field is None:
            return "message"
        return self.field.split("[")[0].split(".")[0]

    def encode(self) -> bytes:
        """JSON bytes, keeping at most :data:`MAX_DEAD_LETTER_PAYLOAD` bytes of the payload.

        The payload goes as text when it is UTF-8 that JSON does not inflate, else as
        base64 (``payload_b64``); a cut one also gives its full size (``payload_bytes``).
        """
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
        return dump_object(
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


def _text(obj: dict[str, Any], name: str) -> str | None:
    """A text field of a dead letter, or ``None``; a lone surrogate in it is shown escaped (``\\ud800``)."""
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(None, name, f"expected a string, got {type(value).__name__}")
    return value if is_text(value) else value.encode(errors="backslashreplace").decode()


def decode_dead_letter(payload: bytes | str) -> DeadLetter:
    """Decode one dead letter (leniently: it is read by people and tools, so only its types are checked).

    Raises
    ------
    DecodeError
        Naming the field and the reason; the only exception raised, for any payload.
    """
    try:
        obj = load_object(payload)
        item_id = _text(obj, "item_id")
        if "payload_b64" in obj:
            text = _text(obj, "payload_b64") or ""
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise DecodeError(item_id, "payload_b64", "not valid base64") from None
        else:
            raw = (_text(obj, "payload") or "").encode()
        return DeadLetter(
            source=str(_text(obj, "source")),
            reason=str(_text(obj, "reason")),
            payload=raw,
            item_id=item_id,
            field=_text(obj, "field"),
            ts=finite_number(obj, item_id, "ts", 0.0),
        )
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(None, exc) from exc
