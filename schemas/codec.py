"""The JSON envelope every record shares: compact encoding, and parsing into one object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activestream.schemas.errors import DecodeError

# Python's default parser. It takes NaN and Infinity (not JSON): each record's checks refuse
# them where they land (a feature, a number field, metadata), naming the field.
_DECODER = json.JSONDecoder()


def load_object(payload: bytes | str, item_id_hint: str | None = None) -> dict[str, Any]:
    """The JSON object in ``payload``.

    Parameters
    ----------
    payload : the message value: UTF-8 (or UTF-16/32, as ``json.loads`` detects it) JSON.
    item_id_hint : names the item in the error when the payload cannot say (its key).

    Raises
    ------
    DecodeError
        If the payload is not JSON (bad encoding, an integer of more digits than Python
        converts, nesting deeper than the parser's recursion limit), or not a JSON object.
    """
    try:
        # Strict decoding, unlike json.loads: UTF-8 bytes of a lone surrogate are not text.
        text = payload.decode(json.detect_encoding(payload)) if isinstance(payload, bytes | bytearray) else payload
        obj = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise DecodeError(item_id_hint, None, f"not valid JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise DecodeError(item_id_hint, None, "not valid JSON for this decoder (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond int()'s digit limit
        raise DecodeError(item_id_hint, None, f"not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise DecodeError(item_id_hint, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def dump_object(obj: Mapping[str, Any]) -> bytes:
    """``obj`` as compact JSON bytes; a non-finite float raises ``ValueError`` (JSON has none)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
