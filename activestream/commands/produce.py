"""``activestream produce FILE``: push a CSV / CSV.gz / JSONL / Parquet file to the items topic."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.config import feature_name_list
from activestream.wiring import connect

if TYPE_CHECKING:
    from activestream.config import Settings
    from activestream.rankedqueue import RankedQueue

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``produce`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("produce", help="push a CSV / CSV.gz / JSONL / Parquet file to the items topic")
    options.add_connection(p)
    p.add_argument("file", help="the items: CSV, CSV.gz, Parquet or JSONL (the items topic's JSON layout)")
    p.add_argument("--id-column", default=None, help="item id column (default: id; row number when absent, and an error when given and absent)")
    p.add_argument("--id-prefix", default="row-", help="prefix of row-number ids")
    p.add_argument("--exclude", action="append", help="columns that are not features (repeatable), e.g. the label")
    p.add_argument("--raw", action="store_true",
                   help="write float vectors without metadata in the raw binary layout (fastest for the scorer to decode; "
                        "the default is JSON with base64 features, which other consumers of the topic can read)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish every row of ``args.file`` to the items topic, keyed by its id.

    A row the scorer would refuse (a missing or non-numeric feature, another number of features than the
    campaign's, a malformed line, no id) is reported on stderr as ``FILE: row N: item 'x': field or column:
    reason`` and skipped; the rest still goes out. The campaign's width and feature names are read from its
    Redis when ``REDIS_URL`` is set (else the file's first good row sets the width).

    Returns
    -------
    0; 1 when rows were skipped; 2 (one ``error:`` line) when the file cannot be read or cannot be the campaign's.
    """
    from tqdm import tqdm

    from activestream.producer import JSONL_SUFFIXES, checked_payload, encode_row, read_items

    s, bus, topics = connect(args)
    n = 0
    skipped: list[str] = []
    seen: set[str] = set()
    repeated = 0
    met = 0  # items whose id the campaign met before (queued, labeled or dropped): they change nothing

    def skip(problem: str) -> None:  # a row the scorer would refuse is reported and skipped; the rest still goes out
        tqdm.write(f"skipped {problem}", file=sys.stderr)  # (on a line of its own, not glued to the progress bar)
        skipped.append(problem)

    width, known, queue, note = campaign_width(s, args.file)
    names = feature_name_list(s) or known  # (a named-field JSONL item: the order the scorer reads it in, see Scorer._decode)
    jsonl = args.file.lower().endswith(JSONL_SUFFIXES)
    try:
        # --id-column's default ("id") may be absent (row-number ids); a column the user named must exist.
        rows = read_items(args.file, id_column=args.id_column or "id", id_required=args.id_column is not None, exclude=args.exclude or (), on_error=skip,
                          on_feature_names=lambda header: store_feature_names(queue, header), id_prefix=args.id_prefix, n_features=width, known=known,
                          where=True)
        batch: list[tuple[str, bytes]] = []  # (asked of the campaign before they go out: a scorer may take them at once)

        def send() -> int:
            met_ = met_before(queue, [iid for iid, _ in batch])
            for iid, payload in batch:
                bus.publish(topics.items, payload, key=iid.encode())
            batch.clear()
            return met_

        for item_id, feats, md, at in tqdm(rows, unit="item", disable=args.no_progress, desc="producing"):
            iid = str(item_id)
            payload = encode_row(iid, feats, md, raw=args.raw)
            if jsonl:  # (a JSONL item, features_b64 ones too: checked by the scorer's own decoder, as the scorer will)
                problem, width = checked_payload(payload, iid, width, names)
                if problem:
                    skip(f"{at}: {problem}")
                    continue
            if iid in seen:
                repeated += 1
            seen.add(iid)
            batch.append((iid, payload))
            if len(batch) >= KNOWN_BATCH:
                met += send()
            n += 1
        met += send()
        bus.flush()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    if note and n:
        print(note, file=sys.stderr)
    if repeated:  # the queue is keyed by id: a repeat is taken for a redelivery of the first
        print(f"warning: {args.file}: {repeated} row(s) repeat an earlier id; the queue keeps one item per id", file=sys.stderr)
    if met:
        print(f"warning: {args.file}: {met} item(s) have ids the campaign met before (queued, labeled or dropped): the scorer keeps "
              "the first item of an id, so these change nothing", file=sys.stderr)
    print(f"produced {n} items to {topics.items}" + (f"; skipped {len(skipped)} row(s)" if skipped else ""), flush=True)
    return 1 if skipped else 0


KNOWN_BATCH = 1000  # ids asked of the campaign's Redis at once (one round trip)


def met_before(queue: RankedQueue | None, ids: list[str]) -> int:
    """How many of ``ids`` the campaign's queue met before (0 without a Redis to ask, or when it cannot be reached)."""
    if queue is None or not ids:
        return 0
    import redis

    try:
        return sum(queue.known(ids))
    except redis.RedisError:
        return 0


def campaign_width(settings: Settings, file: str) -> tuple[int | None, list[str] | None, RankedQueue | None, str | None]:
    """The campaign's feature width (``None``: not fixed yet, or no Redis to ask), its features' names (``None``: none
    recorded), its queue (``None`` without a Redis) and a note when the namespace is new beside others (a typo?).

    ``produce`` itself needs only the broker: without ``REDIS_URL``, or when that Redis cannot be reached (a warning),
    rows are checked against the file's first good row instead, and the feature names are not stored.
    """
    width = int(settings.n_features) if settings.n_features else None
    if not settings.redis_url:
        log.info("no REDIS_URL: rows are checked against the file itself, and the feature names are not stored")
        return width, None, None, None
    import redis

    from activestream.rankedqueue.keys import META_N_FEATURES, META_TOPIC_PREFIX
    from activestream.wiring import make_queue, new_namespace_note

    queue = make_queue(settings, socket_timeout=5.0)
    try:
        meta = queue.get_meta_fields(META_N_FEATURES, META_TOPIC_PREFIX)
        held, known = meta[META_N_FEATURES], queue.feature_names()
        note = new_namespace_note(queue, file)
    except redis.RedisError as exc:
        log.warning("Redis of namespace %r not reachable (%s): rows are checked against the file itself, and the feature names are not "
                    "stored (the labeling page shows features by position)", settings.namespace, exc)
        return width, None, None, None
    topics = meta[META_TOPIC_PREFIX]
    if topics is not None and topics != settings.topic_prefix:  # (the items would go where no scorer of the campaign reads)
        raise SystemExit(f"error: the campaign of namespace {settings.namespace!r} runs on the topics {topics}.* (recorded with its queue); "
                         f"these items would go to {settings.topic_prefix}.items: set ACTIVESTREAM_TOPIC_PREFIX={topics} (or --topic-prefix)")
    return (int(held) if held is not None else width), known, queue, note


def store_feature_names(queue: RankedQueue | None, names: list[str]) -> None:
    """Keep a table's feature names (its header) with the namespace's queue: the labeling page and ``export`` show features by name."""
    if queue is None:
        return
    import redis

    try:
        queue.record_feature_names(names, first_wins=True)  # (the campaign's order is its first table's: a later one is put in it)
    except redis.RedisError as exc:
        log.warning("feature names not stored in namespace %r (%s): the labeling page shows features by position", queue.k.namespace, exc)
