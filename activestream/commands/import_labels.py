"""``activestream import-labels FILE``: labels you already have (a baseline) into a running campaign.

Each row becomes a label record (``source: baseline``, a label id derived from the item id and
the label, so a second import of the same file changes nothing) on the labels topic, with the
row's features, so the retrainer trains on it. The item leaves the queue whatever holds it (a
lease, the dispatcher); an item the queue never met is produced to the items topic too (the
label goes first, so the scorer never queues it). ``--random-sample`` flags the labels
``control``: a uniform sample of the pool, which the retrainer scores with the live model
before training on it (live accuracy, auto-accept calibration).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.wiring import connect, make_queue, settings_from

if TYPE_CHECKING:
    from activestream.baseline import BaselineRow
    from activestream.rankedqueue import RankedQueue
    from activestream.streams.bus import Bus
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

BASELINE_SOURCE = "baseline"
BATCH = 500  # rows per round trip to Redis and flush of the bus


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``import-labels`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("import-labels", help="import labels you already have (CSV / CSV.gz / Parquet / JSONL) into the campaign")
    options.add_connection(p)
    p.add_argument("file")
    p.add_argument("--id-column", default="id", help="item id column (default: %(default)s)")
    p.add_argument("--label-column", action="append", required=True,
                   help="label column; repeat it, or give a shared prefix, for multi-label 0/1 columns (a list column works too)")
    p.add_argument("--exclude", action="append", help="columns that are neither features nor metadata (repeatable)")
    p.add_argument("--labeler-id", default=BASELINE_SOURCE, help="labeler id of the imported labels (default: %(default)s)")
    p.add_argument("--random-sample", action="store_true",
                   help="the file is a uniform random sample of the pool: its labels also serve as control labels "
                        "(live accuracy, auto-accept calibration)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import every usable row of ``args.file``.

    Returns
    -------
    0; 1 when rows were skipped (each reported as ``FILE: row N: reason``); 2 (one ``error:``
    line) when the file, a column or the campaign refuses the whole file.
    """
    from activestream.baseline import read_baseline
    from activestream.tables import DatasetError

    skipped: list[str] = []

    def skip(problem: str) -> None:
        print(problem, file=sys.stderr)
        skipped.append(problem)

    s = settings_from(args)
    names = s.feature_names.split(",") if s.feature_names else None
    try:  # the file and its columns are checked before anything connects
        baseline = read_baseline(args.file, id_column=args.id_column, label_columns=args.label_column, exclude=args.exclude or (),
                                 feature_names=names, on_error=skip)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s, bus, topics = connect(args)
    queue = make_queue(s)
    counts = {"imported": 0, "produced": 0, "already": 0}
    try:
        check_campaign(queue, baseline.feature_names, multilabel=baseline.multilabel, path=args.file)
        batch: list[BaselineRow] = []
        for row in baseline.rows:
            batch.append(row)
            if len(batch) >= BATCH:
                _import_batch(batch, bus, topics, queue, args, counts)
                batch = []
        if batch:
            _import_batch(batch, bus, topics, queue, args, counts)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    print(f"imported {counts['imported']} label(s) from {args.file} to {topics.labels} as {args.labeler_id!r}"
          f"{' (control: a random sample)' if args.random_sample else ''}; {counts['already']} already imported; "
          f"{counts['produced']} new item(s) produced to {topics.items}"
          + (f"; skipped {len(skipped)} row(s)" if skipped else ""), flush=True)
    return 1 if skipped else 0


def check_campaign(queue: RankedQueue, feature_names: tuple[str, ...], *, multilabel: bool, path: str) -> None:
    """Refuse a file whose shape the campaign cannot take: another feature width, or the other kind of answer.

    Raises
    ------
    DatasetError
        Naming the file and what differs.
    """
    from activestream.rankedqueue.keys import META_N_FEATURES
    from activestream.tables import DatasetError

    held = queue.get_meta(META_N_FEATURES)
    if held is not None and int(held) != len(feature_names):
        raise DatasetError(f"{path}: {len(feature_names)} feature column(s) ({', '.join(feature_names[:8])}"
                           f"{', ...' if len(feature_names) > 8 else ''}), but this campaign's items have {held} features; "
                           "leave the other columns out with --exclude")
    field = "labels" if multilabel else "label"
    agreed = queue.agree_meta("label_field", field)
    if agreed != field:
        raise DatasetError(f"{path}: this campaign's answers come as {agreed!r}, the file gives {field!r}")
    queue.agree_meta("feature_names", ",".join(feature_names))  # (for export --with-features; the first names win)


def _import_batch(rows: list[BaselineRow], bus: Bus, topics: Topics, queue: RankedQueue, args: argparse.Namespace,
                  counts: dict[str, int]) -> None:
    """Publish a batch's labels, take their items out of the queue, then produce the items the queue never met."""
    from activestream.baseline import label_id_for
    from activestream.schemas import Item, Label

    known = queue.known([r.item_id for r in rows])
    labels = [Label(item_id=r.item_id, label_id=label_id_for(r.item_id, r.label, r.labels), labeler_id=args.labeler_id, label=r.label,
                    labels=r.labels, features=r.features, source=BASELINE_SOURCE, control=args.random_sample) for r in rows]
    fresh = [lab for lab in labels if not queue.is_label_id_known(lab.label_id)]  # (imported before: not sent again)
    counts["already"] += len(labels) - len(fresh)
    for lab in fresh:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    bus.flush()
    # Marked labeled once the label is out and before any item is produced: a crash in between
    # re-sends the same label id (the retrainer counts it once), and a scorer never queues an
    # item the queue holds as labeled.
    for lab in fresh:
        queue.mark_labeled(lab.item_id, lab.label_id)
    counts["imported"] += len(fresh)
    new = [r for r, k in zip(rows, known, strict=True) if not k]
    for r in new:
        bus.publish(topics.items, Item(r.item_id, r.features, r.metadata).encode(binary=True), key=r.item_id.encode())
    bus.flush()
    counts["produced"] += len(new)
