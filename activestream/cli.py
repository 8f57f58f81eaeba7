"""The ``activestream`` command: the root parser, and ``main``.

Each subcommand is a module of :mod:`activestream.commands` with ``add_parser(subparsers)``
and ``run(args) -> int``; this module only registers them, in the order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from activestream.commands import (
    bench,
    demo,
    dispatcher,
    export,
    import_labels,
    label,
    label_studio,
    labeler_api,
    produce,
    publish_model,
    queue,
    report,
    retrainer,
    scorer,
    simulate,
    up,
)

log = logging.getLogger(__name__)

COMMANDS = (demo, simulate, scorer, retrainer, dispatcher, labeler_api, label_studio, queue, produce, import_labels, export, report, label, publish_model, up, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``activestream`` parser with every subcommand registered.

    Returns
    -------
    The parser; each subcommand's namespace has ``func``, its ``run``.
    """
    parser = argparse.ArgumentParser(prog="activestream", description="Streaming active learning: rank, label, retrain, prove the savings.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), configure logging and run the subcommand.

    Arguments the parser does not know are an error, except for a subcommand that passes
    them on (``bench throughput``: the benchmark's own options, as ``args.extra``).

    Returns
    -------
    The subcommand's exit status.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
