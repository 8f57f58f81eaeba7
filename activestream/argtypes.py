"""argparse types for the CLI's numeric options: a bad value is one line naming the bound."""

from __future__ import annotations

import argparse
from typing import Any


def bounded(kind: type, low: float, high: float, what: str, *, open_ends: bool = False) -> Any:
    """An argparse type: a ``kind`` (int or float) in ``[low, high]`` (``(low, high)`` if ``open_ends``), else one line saying ``what``."""

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        inside = low < v < high if open_ends else low <= v <= high  # (NaN is in no interval)
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return v

    return parse


count = bounded(int, 1, float("inf"), "at least 1")
count_or_off = bounded(int, 0, float("inf"), "an integer >= 0 (0: off)")
share = bounded(float, 0.0, 1.0, "in [0, 1]")
open_share = bounded(float, 0.0, 1.0, "strictly between 0 and 1", open_ends=True)
seconds = bounded(float, 0.0, 1e12, "a finite number >= 0")
positive_seconds = bounded(float, 0.0, 1e12, "a finite number of seconds > 0", open_ends=True)
port = bounded(int, 0, 65535, "a port in [0, 65535] (0: any free port)")
