"""Service subcommands (distributed mode): added by the distributed-mode work."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register service subcommands on the ``activestream`` parser."""
    _ = (sub, argparse)
