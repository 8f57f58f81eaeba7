"""The raw item layout (``ASI\\x01``): an item as a few length-prefixed slices, no JSON, no base64.

A 4-byte magic (a JSON item starts with "{" or whitespace, so the two never clash), the
id's UTF-8 length (uint16 LE) and bytes, the vector length (uint32 LE), then the values
as float32 LE. For producers that push many vectors: decoding it is a few slices instead
of a JSON parse and base64. It carries no metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from activestream.schemas.errors import DecodeError

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


def split_raw(payload: bytes, key: str | None) -> tuple[str, bytes]:
    """``(id, float32 bytes)`` of a raw-layout payload.

    Checks the framing and the id; whether the values are finite and as many as the
    stream's are the caller's checks.

    Parameters
    ----------
    payload : a message value that starts with :data:`RAW_ITEM_MAGIC`.
    key : the message key, naming the item while its id is unreadable.

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
