"""Whether a test may skip for want of a service or program, or must fail (CI)."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_services() -> bool:
    """``ACTIVESTREAM_REQUIRE_SERVICES=1`` (CI): nothing a test needs may be missing."""
    return os.environ.get("ACTIVESTREAM_REQUIRE_SERVICES") == "1"


def unavailable(reason: str, what: str = "service") -> NoReturn:
    """Skip the test for ``reason``, or fail it where services are required."""
    if require_services():
        pytest.fail(f"required {what} unavailable: {reason}")
    pytest.skip(reason)


def program(name: str, needed_for: str) -> str:
    """The path of ``name`` on PATH, else :func:`unavailable`."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"needs {name} ({needed_for})", "program")
    return path
