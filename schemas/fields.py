"""Field checks and coercions shared by several records: ids, required text, label values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activestream.schemas.codec import load_object
from activestream.schemas.errors import DecodeError

LabelValue = str | int


def read_id(obj: Mapping[str, Any], key: str = "id") -> str:
    """The id in field ``key``: a string or integer of 1 to 512 characters, as text.

    Raises
    ------
    DecodeError
        Naming no item (the id is what is wrong), the field and the reason.
    """
    raw = obj.get(key)
    if raw is None:
        raise DecodeError(None, key, "missing")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise DecodeError(None, key, f"expected a string or integer, got {type(raw).__name__}")
    text = str(raw)
    if not text or len(text) > 512:
        raise DecodeError(None, key, "must be 1 to 512 characters")
    return text


def about_item(payload: bytes | str, key: str | None) -> tuple[dict[str, Any], str]:
    """The JSON object of a record about an item (label, skip) and its ``item_id`` (the key names it if unreadable)."""
    obj = load_object(payload, key)
    try:
        return obj, read_id(obj, "item_id")
    except DecodeError as exc:
        raise DecodeError(key, exc.field, exc.reason) from None


def required_text(obj: Mapping[str, Any], item_id: str, name: str) -> str:
    """A required non-empty string field."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise DecodeError(item_id, name, "missing or not a string")
    return value


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
