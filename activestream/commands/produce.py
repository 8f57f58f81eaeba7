"""``activestream produce FILE``: push a CSV / CSV.gz / JSONL / Parquet file to the items topic."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.wiring import connect

if TYPE_CHECKING:
    from activestream.config import Settings

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``produce`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("produce", help="push a CSV / CSV.gz / JSONL / Parquet file to the items topic")
    options.add_connection(p)
    p.add_argument("file")
    p.add_argument("--id-column", default=None, help="item id column (default: id; row number when absent, and an error when given and absent)")
    p.add_argument("--id-prefix", default="row-", help="prefix of row-number ids")
    p.add_argument("--exclude", action="append", help="columns that are not features (repeatable), e.g. the label")
    p.add_argument("--raw", action="store_true",
                   help="write float vectors without metadata in the raw binary layout (fastest for the scorer to decode; "
                        "the default is JSON with base64 features, which other consumers of the topic can read)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish every row of ``args.file`` to the items topic, keyed by its id.

    A malformed line or a row without an id is reported on stderr and skipped; the rest
    still goes out.

    Returns
    -------
    0; 1 when rows were skipped; 2 (one ``error:`` line) when the file cannot be read.
    """
    from tqdm import tqdm

    from activestream.producer import encode_row, read_items

    s, bus, topics = connect(args)
    n = 0
    skipped: list[str] = []
    seen: set[str] = set()
    repeated = 0

    def skip(problem: str) -> None:  # a malformed line or a row without an id is reported and skipped; the rest still goes out
        print(f"skipped {problem}", file=sys.stderr)
        skipped.append(problem)

    try:
        # --id-column's default ("id") may be absent (row-number ids); a column the user named must exist.
        rows = read_items(args.file, id_column=args.id_column or "id", id_required=args.id_column is not None, exclude=args.exclude or (), on_error=skip,
                          on_feature_names=lambda names: store_feature_names(s, names))
        for row_no, (item_id, feats, md) in enumerate(tqdm(rows, unit="item", disable=args.no_progress, desc="producing")):
            iid = item_id if item_id is not None else f"{args.id_prefix}{row_no}"
            if iid in seen:
                repeated += 1
            seen.add(iid)
            bus.publish(topics.items, encode_row(iid, feats, md, raw=args.raw), key=iid.encode())
            n += 1
        bus.flush()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    if repeated:  # the queue is keyed by id: a repeat is taken for a redelivery of the first
        print(f"warning: {args.file}: {repeated} row(s) repeat an earlier id; the queue keeps one item per id", file=sys.stderr)
    print(f"produced {n} items to {topics.items}" + (f"; skipped {len(skipped)} row(s)" if skipped else ""), flush=True)
    return 1 if skipped else 0


def store_feature_names(settings: Settings, names: list[str]) -> None:
    """Keep a table's feature names (its header) with the namespace's queue: the labeling page shows features by name.

    Without a Redis (``produce`` itself needs only the broker) or when it cannot be reached, a warning: the items still go out.
    """
    if not settings.redis_url:
        log.info("no REDIS_URL: the feature names are not stored (the labeling page shows features by position)")
        return
    import redis

    from activestream.rankedqueue.keys import META_FEATURE_NAMES
    from activestream.wiring import make_queue

    try:
        make_queue(settings, socket_timeout=5.0).set_meta(**{META_FEATURE_NAMES: json.dumps(names)})
    except redis.RedisError as exc:
        log.warning("feature names not stored in namespace %r (%s): the labeling page shows features by position", settings.namespace, exc)
