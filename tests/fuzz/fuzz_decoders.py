"""Coverage-guided fuzzing of every decoder (atheris, libFuzzer): each must be total.

The first byte of an input picks the decoder (see :data:`tests.fuzz.targets.DECODERS`), the
rest is the payload; :func:`tests.fuzz.targets.check` fails on any exception but a
``DecodeError`` one of the decoder's checks raised, and on a decoded record that does not
encode again to itself. libFuzzer's options pass through; CI runs it for a fixed budget::

    python -m tests.fuzz.fuzz_decoders -max_total_time=60 -rss_limit_mb=2048 CORPUS_DIR

An empty corpus directory is first seeded with valid records of every kind (and the
issue-18 triggers). A crash is written to ``crash-<sha1>`` (``-artifact_prefix=``) and
the run exits non-zero; each one found becomes a regression test in
``tests/unit/test_decoders_total.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris
import numpy as np  # noqa: F401  (imported before instrumentation: only our code is instrumented)

with atheris.instrument_imports(include=["activestream", "tests.fuzz"]):
    from tests.fuzz.targets import BATCH_SEPARATOR, DECODERS, check

NAMES = sorted(DECODERS)


def seeds() -> list[bytes]:
    """Valid records of every kind, batches of them, and the issue-18 triggers, for each decoder."""
    from activestream.schemas import Item
    from tests.unit.test_decoders_total import DEEP, HUGE_INT, LONE_SURROGATE_ID, VALID, serialize

    records = [serialize(obj, True) for obj in VALID.values()]
    records += [Item("r1", np.arange(3, dtype=np.float32)).encode(raw=True), Item("b1", np.ones(3, np.float32)).encode(binary=True)]
    records += [BATCH_SEPARATOR.join(records[:4]), DEEP[:2000], HUGE_INT, LONE_SURROGATE_ID]
    return [bytes([i]) + r for i in range(len(NAMES)) for r in records]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    check(NAMES[data[0] % len(NAMES)], data[1:])


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    if dirs and dirs[0].is_dir() and not any(dirs[0].iterdir()):
        for i, s in enumerate(seeds()):
            (dirs[0] / f"seed-{i:03d}").write_bytes(s)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
