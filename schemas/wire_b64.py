"""Items as JSON with base64 float32 features (``features_b64``), and their canonical bytes.

``Item(...).encode(binary=True)`` writes the values as base64 of little-endian float32:
faster to decode than a list of JSON numbers. Without metadata it writes exactly
``CANONICAL_HEAD + id + CANONICAL_MID + base64 + CANONICAL_TAIL``, which
:func:`activestream.schemas.decode_items` splits with bytes methods instead of a JSON
parse; anything else, or anything that split cannot vouch for, takes the full path of
:func:`activestream.schemas.decode_item`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from activestream.schemas.errors import DecodeError

CANONICAL_HEAD = b'{"schema":"item.v1","id":"'
CANONICAL_MID = b'","features_b64":"'
CANONICAL_TAIL = b'"}'


def b64_features(item_id: str, text: Any) -> np.ndarray:
    """A ``features_b64`` field as float32 values; :class:`DecodeError` if it is not base64 of whole float32s."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise DecodeError(item_id, "features_b64", "not valid base64") from None
    if len(raw) % 4:
        raise DecodeError(item_id, "features_b64", "length is not a multiple of 4 bytes")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)
