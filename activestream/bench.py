"""``activestream bench ...``: the benchmarks of ``benchmarks/`` from the command line.

Benchmarks are scripts in the source tree (``benchmarks/``), not part of the installed
package; this subcommand finds them next to the ``activestream`` package (an editable
install or a checkout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _benchmarks() -> Any:
    try:
        import benchmarks.throughput as mod
    except ImportError:
        root = Path(__file__).resolve().parents[1]
        if not (root / "benchmarks" / "throughput.py").exists():
            raise SystemExit("error: `activestream bench` needs the source tree's benchmarks/ folder (run it from a checkout)") from None
        sys.path.insert(0, str(root))
        import benchmarks.throughput as mod
    return mod


def cmd_throughput(args: argparse.Namespace) -> int:
    return int(_benchmarks().run_cli(args))


def add_parsers(sub: Any) -> None:
    """Register ``bench`` and its subcommands on the ``activestream`` parser."""
    p = sub.add_parser("bench", help="benchmarks: speed and memory (see benchmarks/)")
    bench = p.add_subparsers(dest="bench", required=True)
    t = bench.add_parser(
        "throughput",
        help="scorer items/s, bulk re-rank at 100k/1M pending, label -> live model latency, Redis bytes per item",
        description="Throughput and latency at scale, each figure beside its reference measured in the same run. "
        "Uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else starts a local Kafka and redis-server.",
    )
    add_throughput_arguments(t)
    t.set_defaults(func=cmd_throughput)


def add_throughput_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``bench throughput`` (shared with ``python benchmarks/throughput.py``)."""
    p.add_argument("--json", default=None, help="write the report here (one JSON object)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the whole suite (~2 min); the report says \"quick\": true and gives no target verdicts")
    p.add_argument("--sections", default=None, help="comma-separated subset of memory,scorer,rerank,label (default: all; Kafka starts only for scorer and label)")
    p.add_argument("--items", type=int, default=None, help="items per scorer throughput run (default 400000)")
    p.add_argument("--batch-size", type=int, default=None, help="scorer micro-batch (default 1000, the service default)")
    p.add_argument("--label-samples", type=int, default=None, help="labels timed per training-set size (default 25)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="sample each scorer process with py-spy while it fills the queue: raw stacks (flamegraph input) to DIR, "
                        "its top functions in the report")
