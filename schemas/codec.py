"""The JSON envelope every record shares: compact encoding, and parsing into one object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activestream.schemas.errors import DecodeError


def load_object(payload: bytes | str, item_id_hint: str | None = None) -> dict[str, Any]:
    """The JSON object in ``payload``.

    Parameters
    ----------
    payload : the message value.
    item_id_hint : names the item in the error when the payload cannot say (its key).

    Raises
    ------
    DecodeError
        If the payload is not JSON, or not a JSON object.
    """
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(item_id_hint, None, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DecodeError(item_id_hint, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def dump_object(obj: Mapping[str, Any]) -> bytes:
    """``obj`` as compact JSON bytes; a non-finite float raises ``ValueError`` (JSON has none)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
