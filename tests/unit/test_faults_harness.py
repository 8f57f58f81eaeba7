"""The faults benchmark's harness: `activestream bench faults` runs it, and its fuzzed records are all bad ones."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.fuzz import TRIGGERS, bad_records, http_requests


def test_bench_faults_runs_the_benchmark_module() -> None:
    out = subprocess.run([sys.executable, "-m", "activestream.cli", "bench", "faults", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--kills", "--bad-records", "--http-requests", "--json"):
        assert flag in out.stdout


def test_fuzzed_records_are_rejected_by_the_decoders_and_reproducible() -> None:
    records = bad_records(400, 8, seed=3)
    assert len(records) == 400 and {t for t, _ in records} == {"items", "labels"}
    assert records == bad_records(400, 8, seed=3)
    assert len({v for _, v in records}) > 300  # mostly distinct
    assert any(v in TRIGGERS for _, v in records)  # the triggers are among them
    requests = http_requests(50, seed=1)
    assert len(requests) == 50 and {m for m, _, _ in requests} <= {"GET", "POST", "PUT", "DELETE"}
