"""Field checks and coercions shared by several records: ids, text, numbers, label values, metadata.

What a decoded record may hold is what every place it goes can carry: Redis (any bytes),
JSON (``dump_object``: no NaN or Infinity) and UTF-8. So text fields are strings UTF-8 can
encode (no lone surrogate, e.g. ``"\\ud800"``, which JSON can escape but UTF-8 cannot hold),
numbers are finite, integers fit 64 bits, and metadata is a JSON object of bounded depth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from activestream.schemas.codec import load_object
from activestream.schemas.errors import DecodeError, show

LabelValue = str | int
_T = TypeVar("_T")

MAX_ID_CHARS = 512
# Integers that every consumer can hold (ONNX int64 class labels, Redis, numpy).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Metadata is carried along and encoded again (queue, labeling page): this deep at most, so
# encoding it can never run out of recursion depth wherever that happens.
MAX_METADATA_DEPTH = 32


def is_text(value: str) -> bool:
    """Whether ``value`` is a string UTF-8 can encode (no lone surrogate)."""
    if value.isascii():  # (the usual case, and cheap)
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def read_id(obj: Mapping[str, Any], key: str = "id") -> str:
    """The id in field ``key``: a string or integer of 1 to 512 characters, as text.

    A string id holds any Unicode characters UTF-8 can encode (so not a lone surrogate);
    an integer id is taken as its decimal text.

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
    if isinstance(raw, int):  # (str() of a huge integer would raise: its length is known anyway)
        raw = str(raw) if -(10**MAX_ID_CHARS) < raw < 10**MAX_ID_CHARS else ""
    if not raw or len(raw) > MAX_ID_CHARS:
        raise DecodeError(None, key, f"must be 1 to {MAX_ID_CHARS} characters")
    if not is_text(raw):
        raise DecodeError(None, key, "not valid Unicode text (holds a lone surrogate, which UTF-8 cannot encode)")
    return raw


def about_item(payload: bytes | str, key: str | None) -> tuple[dict[str, Any], str]:
    """The JSON object of a record about an item (label, skip) and its ``item_id`` (the key names it if unreadable)."""
    obj = load_object(payload, key)
    try:
        return obj, read_id(obj, "item_id")
    except DecodeError as exc:
        raise DecodeError(key, exc.field, exc.reason) from None


def required_text(obj: Mapping[str, Any], item_id: str | None, name: str) -> str:
    """A required non-empty string field (UTF-8 encodable)."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise DecodeError(item_id, name, "missing or not a string")
    if not is_text(value):
        raise DecodeError(item_id, name, "not valid Unicode text (holds a lone surrogate)")
    return value


def optional_text(obj: Mapping[str, Any], item_id: str | None, name: str, default: str | None) -> str | None:
    """An optional string field (UTF-8 encodable); ``default`` when absent or null."""
    value = obj.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise DecodeError(item_id, name, f"expected a string, got {type(value).__name__}")
    if not is_text(value):
        raise DecodeError(item_id, name, "not valid Unicode text (holds a lone surrogate)")
    return value


def finite_number(obj: Mapping[str, Any], item_id: str | None, name: str, default: float | None, *, minimum: float | None = None) -> float:
    """An optional number field as a finite float (``default`` when absent; ``None``: required)."""
    if name not in obj:
        if default is None:
            raise DecodeError(item_id, name, "missing")
        return default
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(item_id, name, f"expected a number, got {show(value)}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond float64
        raise DecodeError(item_id, name, "not a finite number (an integer beyond float64)") from None
    if not math.isfinite(out):
        raise DecodeError(item_id, name, f"not a finite number ({out})")
    if minimum is not None and out < minimum:
        raise DecodeError(item_id, name, f"expected a number of at least {minimum}, got {show(value)}")
    return out


def integer(obj: Mapping[str, Any], item_id: str | None, name: str, default: int | None, *, minimum: int = INT64_MIN) -> int:
    """An optional integer field within 64 bits (``default`` when absent; ``None``: required)."""
    if name not in obj:
        if default is None:
            raise DecodeError(item_id, name, "missing")
        return default
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(item_id, name, f"expected an integer, got {show(value)}")
    if not minimum <= value <= INT64_MAX:
        raise DecodeError(item_id, name, f"expected an integer from {minimum} to {INT64_MAX}, got {show(value)}")
    return value


def label_value(item_id: str | None, name: str, v: Any) -> LabelValue:
    """``v`` if it is a class: non-empty UTF-8 text, or an integer within 64 bits (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise DecodeError(item_id, name, f"expected a string or integer class, got {show(v)}")
    if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
        raise DecodeError(item_id, name, f"an integer class must fit 64 bits, got {show(v)}")
    if isinstance(v, str) and not is_text(v):
        raise DecodeError(item_id, name, "not valid Unicode text (holds a lone surrogate)")
    return v


def metadata(item_id: str | None, value: Any, name: str = "metadata") -> dict[str, Any]:
    """A metadata field: a JSON object (``{}`` when absent, null or another empty value).

    Nested at most ``MAX_METADATA_DEPTH`` deep, without NaN or Infinity (which Python's
    parser takes but JSON cannot carry). Its strings are kept as they are: JSON escapes any
    of them (a lone surrogate too) when it is encoded again.
    """
    if not value:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(item_id, name, "expected a JSON object")
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise DecodeError(item_id, name, f"nested more than {MAX_METADATA_DEPTH} levels deep")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif isinstance(child, float) and not math.isfinite(child):
                raise DecodeError(item_id, name, f"holds a number JSON cannot carry ({child})")
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


def parse_classes(text: str) -> tuple[LabelValue, ...]:
    """A campaign's declared classes from ``"barbera, barolo, grignolino"`` (or ``"0,1,2"``: integers when every one is).

    Raises
    ------
    ValueError
        Naming the problem: no class, an empty one (``a,,b``), one given twice.
    """
    names = [t.strip() for t in text.split(",")]
    if not any(names):
        raise ValueError("no class given (comma-separated, e.g. 'cat,dog')")
    if not all(names):
        raise ValueError(f"an empty class in {text!r}")
    numbers = [int_label(n) for n in names]
    classes: tuple[LabelValue, ...] = tuple(n for n in numbers if n is not None) if None not in numbers else tuple(names)
    repeated = sorted({str(c) for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"class {repeated[0]!r} given twice")
    return classes


def not_a_class(values: Sequence[LabelValue], classes: Sequence[LabelValue]) -> str | None:
    """Why ``values`` (one label, or a label set) are not all of the declared ``classes``, or ``None`` when they are.

    A value is compared as the classes' type (``"3"`` is the class 3, as the retrainer converts it);
    ``"Barolo"`` is not ``"barolo"``.
    """
    kind = "integers" if all(isinstance(c, int) for c in classes) else "strings"
    known = set(classes)
    for v in values:
        # (a value of no label type, e.g. a null or a float in a request's list, is no class: it is not coerced)
        if isinstance(v, bool) or not isinstance(v, str | int) or coerce_label_value(v, kind) not in known:
            shown = ", ".join(str(c) for c in classes[:20]) + (", ..." if len(classes) > 20 else "")
            return f"{v!r} is not one of this campaign's classes ({shown}; ACTIVESTREAM_CLASSES)"
    return None


def distinct_labels(values: Sequence[_T]) -> tuple[_T, ...]:
    """A label set's ``values`` without repeats, in order (a set holding values that cannot be hashed is returned as it is:
    the label's checks refuse it)."""
    return tuple(dict.fromkeys(values)) if all(isinstance(v, str | int | float) for v in values) else tuple(values)
