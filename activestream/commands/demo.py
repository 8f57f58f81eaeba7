"""``activestream demo``: replay scikit-learn's digits, the default strategy against random."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from activestream.commands import options
from activestream.commands.simulate import fail, run_simulation, writable
from activestream.scorer.strategies import DEFAULT_STRATEGY, RANDOM

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``demo`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("demo", help="replay scikit-learn digits: default strategy vs random, learning curves and savings")
    options.add_simulation(p, budget=400, report="reports/demo.json")
    p.set_defaults(func=run, metric="accuracy")


def run(args: argparse.Namespace) -> int:
    """Run the digits campaigns and print the learning curves, the label savings and the last version's live estimates.

    Returns
    -------
    0, or 2 with one ``error:`` line (an unwritable ``--report``, no Redis, ...).
    """
    from activestream.simulation.datasets import digits

    problem = writable(Path(args.report))
    if problem:
        return fail(problem)
    # The live estimates of each campaign's last version only, beside its truth: at every version
    # (simulate --live-estimates) they would make the demo minutes long.
    args.live_estimates, args.live_estimates_every = True, args.budget
    return run_simulation(digits(), args, [DEFAULT_STRATEGY, RANDOM], Path(args.report))
