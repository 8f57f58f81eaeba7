"""``activestream bench throughput ...``: the benchmarks of the source tree's ``benchmarks/`` folder.

Benchmarks are scripts of the repository checkout, not part of the installed package, and
the product never imports them: this command runs ``python -m benchmarks.throughput ARGS``
as a child process with the checkout on its ``PYTHONPATH``. Its options are the
benchmark's own (``activestream bench throughput --help`` prints them).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import activestream
from activestream.commands import options

log = logging.getLogger(__name__)

#: The benchmark modules ``bench`` runs, by subcommand.
BENCHMARKS = {"throughput": "benchmarks.throughput", "faults": "benchmarks.faults"}


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``bench`` and its subcommands on the ``activestream`` parser's subcommands.

    A benchmark subcommand takes whatever follows it (its ``--help`` included) and hands it
    to the benchmark: ``main`` lets through the arguments of a command whose ``pass_through``
    default is set.
    """
    p = subparsers.add_parser("bench", help="benchmarks: speed and memory (see benchmarks/)")
    bench = p.add_subparsers(dest="bench", required=True)
    t = bench.add_parser(
        "throughput",
        help="scorer items/s, bulk re-rank at 100k/1M pending, label -> live model latency, Redis bytes per item",
        description="Throughput and latency at scale, each figure beside its reference measured in the same run. "
        "Uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else starts a local Kafka and redis-server. "
        "Options: see `python -m benchmarks.throughput --help`.",
        add_help=False,  # --help goes to the benchmark, which knows its options
    )
    t.set_defaults(func=run, pass_through=True)
    f = bench.add_parser(
        "faults",
        help="the local stack under SIGKILLs, a Redis and a broker restart, fuzzed records and API requests: losses, 5xx, recovery",
        description="Starts its own Kafka, Redis and services; kills and restarts them while items stream and a labeler labels, "
        "injects fuzzed records and requests, and counts items and labels lost, exits, dead letters, 5xx and recovery times. "
        "Options: see `python -m benchmarks.faults --help`.",
        add_help=False,
    )
    f.set_defaults(func=run, pass_through=True)


def checkout() -> Path | None:
    """The repository checkout the ``activestream`` package runs from, if it has a ``benchmarks/`` folder.

    Returns
    -------
    Its root (an editable install or a checkout), or ``None`` (an installed wheel).
    """
    root = Path(activestream.__file__).resolve().parents[1]
    return root if (root / "benchmarks" / "__init__.py").is_file() else None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark named by ``args.bench`` with ``args.extra`` as its arguments.

    Returns
    -------
    The benchmark's exit status.

    Raises
    ------
    SystemExit
        With one ``error:`` line when there is no ``benchmarks/`` folder to run.
    """
    root = checkout()
    if root is None:
        raise SystemExit("error: `activestream bench` needs the source tree's benchmarks/ folder (run it from a checkout)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    cmd = [sys.executable, "-m", BENCHMARKS[args.bench], *args.extra]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the benchmark too: let it stop what it started
            continue
