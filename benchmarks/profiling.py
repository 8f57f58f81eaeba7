"""py-spy samples of a running process, and the top functions in them (``bench throughput --profile``).

The throughput benchmark attaches py-spy to each scorer process while it fills the queue and
keeps the raw stacks (collapsed format: ``frame;frame;... count`` per line, one file per
process, flamegraph-ready); :func:`summarize` turns them into the functions that took the
most samples, which is what the report keeps.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# A py-spy frame is "function (path/to/file.py:line)"; the line is dropped to add up a function.
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable (the ``dev`` extra installs it next to this Python), or None."""
    beside = Path(sys.executable).parent / "py-spy"  # a venv's bin/, which need not be on PATH
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Sample ``pid`` until :func:`stop`; the raw stacks go to ``out``.

    Blocking sampling (py-spy pauses the process for each sample): stacks are consistent, at
    ~100 samples/s the cost to the process is small.
    """
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy not found: pip install py-spy (it is in the project's dev extra)")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str | None:
    """Stop sampling (SIGINT makes py-spy write its file). Returns what py-spy said if it failed, else None."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        said, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "py-spy did not stop on SIGINT"
    text = said.decode(errors="replace")
    return None if "Wrote raw flamegraph data" in text else (text.strip()[-500:] or f"py-spy exited {proc.returncode}")


def _function(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    return f"{m['func']} ({m['file']})" if m else frame.strip()


def summarize(raw: str, top: int = 12) -> dict[str, Any]:
    """The functions that took the most samples in py-spy's raw (collapsed) stacks.

    Parameters
    ----------
    raw : lines of ``frame;frame;...;frame count`` (outermost frame first).
    top : how many functions to keep in each list.

    Returns
    -------
    ``{"samples": n, "self": [[function, share], ...], "total": [[function, share], ...]}``:
    ``self`` counts a sample for the innermost frame only (where the time went), ``total``
    for every function on the stack once (what it spent, callees included). Shares are of
    all samples. Functions are ``name (file)``, lines added up.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    n = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        funcs = [_function(f) for f in stack.split(";")]
        n += c
        own[funcs[-1]] += c
        for f in dict.fromkeys(funcs):  # a recursive function counts once per sample
            inclusive[f] += c

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[f, round(v / n, 4)] for f, v in counter.most_common(top)] if n else []

    return {"samples": n, "self": shares(own), "total": shares(inclusive)}
