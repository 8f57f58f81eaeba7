"""Features as JSON numbers: a list of floats, or a named-field record put in a configured order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from activestream.schemas.errors import DecodeError, show

NO_FEATURE_NAMES = "named fields given, but the campaign has no feature names (ACTIVESTREAM_FEATURE_NAMES, or a table's header given to produce)"


def feature_vector(item_id: str, raw: Any, feature_names: Sequence[str] | None) -> np.ndarray:
    """A ``features`` field as a (n_features,) float32 vector.

    Parameters
    ----------
    item_id : names the item in errors.
    raw : the field's JSON value: a list of numbers, or an object of named numbers.
    feature_names : the order of the values of a named-field record (``None``: none accepted).

    Raises
    ------
    DecodeError
        Naming the item, the field (``features[i]`` or ``features.name``) and the reason.
    """
    names = None
    if isinstance(raw, dict):
        names = list(feature_names or ())
        if feature_names is None:
            raise DecodeError(item_id, "features", NO_FEATURE_NAMES)
        values = []
        for name in feature_names:
            if name not in raw:
                raise DecodeError(item_id, f"features.{name}", "missing")
            values.append(raw[name])
        raw = values
    if not isinstance(raw, list):
        raise DecodeError(item_id, "features", f"expected a list of numbers, got {type(raw).__name__}")
    for pos, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, int | float) or v is None:
            raise DecodeError(item_id, _field(names, pos), f"not a number ({show(v)})")
        if isinstance(v, float) and not math.isfinite(v):
            raise DecodeError(item_id, _field(names, pos), f"not a finite number ({v})")
    # Features are float32: 1e39 or a 400-digit integer is valid JSON but no finite float32
    # (checked on the whole vector: a per-value range check would slow every JSON item).
    try:
        with np.errstate(over="ignore"):
            out = np.asarray(raw, dtype=np.float64).astype(np.float32)
        overflow = np.flatnonzero(~np.isfinite(out))
    except OverflowError:  # an integer beyond float64
        out, overflow = np.zeros(0, dtype=np.float32), np.array([next(i for i, v in enumerate(raw) if not _fits_float(v))])
    if len(overflow):
        pos = int(overflow[0])
        v = raw[pos]
        shown = f"{v:.3e}" if _fits_float(v) else f"an integer of {len(str(abs(v)))} digits"
        raise DecodeError(item_id, _field(names, pos), f"not a finite float32 number ({shown})")
    return out


def _field(names: list[str] | None, pos: int) -> str:
    """The field of the ``pos``-th value: by name in a named-field record, else by position."""
    return f"features.{names[pos]}" if names is not None else f"features[{pos}]"


def _fits_float(v: float) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


def as_written(vec: np.ndarray) -> list[float]:
    """(d,) features as Python floats; float32 ones (as items travel) by their shortest decimal, the value a producer
    wrote (``0.1``, not float32's widened ``0.10000000149011612``). Read back as float32, each is the same float32.

    >>> as_written(np.array([0.1, 2.5], dtype=np.float32))
    [0.1, 2.5]
    """
    if vec.dtype == np.float32:
        return vec.astype(str).astype(np.float64).tolist()  # type: ignore[no-any-return]
    return np.asarray(vec, dtype=np.float64).tolist()  # type: ignore[no-any-return]
