"""``activestream export --out FILE``: the campaign's labeled dataset, one row per labeled or auto-accepted item.

Read from the labels, autolabels and items topics to their current end (see
:mod:`activestream.labeled_set` for the rules); written as Parquet, CSV or JSONL by the
suffix of ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from activestream.commands import options
from activestream.config import feature_name_list
from activestream.wiring import connect, make_queue

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``export`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("export", help="write the labeled dataset (one row per labeled or auto-accepted item) to Parquet / CSV / JSONL")
    options.add_connection(p)
    p.add_argument("--out", required=True, help="output file: .parquet, .csv (list columns as JSON text) or .jsonl")
    p.add_argument("--with-features", action="store_true",
                   help="add the features as columns, named by ACTIVESTREAM_FEATURE_NAMES, else the header produce or import-labels recorded, "
                        "else feature_0, feature_1, ...")
    p.add_argument("--timeout", type=options.positive_seconds, default=60.0, help="seconds to wait for each topic's end (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the export.

    Returns
    -------
    0, or 2 with one ``error:`` line (an unsupported suffix, an unwritable path).
    """
    from activestream.labeled_set import FORMATS, build_rows, write_rows

    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        print(f"error: --out {out}: unsupported format {out.suffix or '(none)'}; use {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    s, bus, topics = connect(args)
    try:
        names = feature_name_list(s)
        if names is None and args.with_features and s.redis_url:
            names = make_queue(s).feature_names()  # (the header produce or import-labels read)
        rows, counts = build_rows(bus, topics, with_features=args.with_features, feature_names=names, timeout=args.timeout,
                                  holdout_fraction=s.holdout_fraction)
    finally:
        bus.close()
    try:
        write_rows(rows, out)
    except (OSError, ValueError) as exc:
        print(f"error: --out {out}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    by_source = ", ".join(f"{counts[k]} {k}" for k in ("human", "baseline", "auto", "simulated") if counts[k])
    left_out = f"; {counts['undecodable']} undecodable record(s) left out" if counts["undecodable"] else ""
    left_out += f"; {counts['refused']} label(s) the retrainer refused left out (see the dead-letters topic)" if counts["refused"] else ""
    print(f"exported {len(rows)} item(s) ({by_source or 'none'}) to {out}{left_out}", flush=True)
    return 0
