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

from activestream.commands import options
from activestream.config import feature_name_list
from activestream.wiring import connect, join_campaign, make_queue, new_namespace_note, settings_from

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``import-labels`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("import-labels", help="import labels you already have (CSV / CSV.gz / Parquet / JSONL) into the campaign")
    options.add_connection(p)
    p.add_argument("file")
    p.add_argument("--id-column", default="id", help="item id column (default: %(default)s)")
    p.add_argument("--label-column", action="append", required=True,
                   help="label column; repeat it, or give a shared prefix, for multi-label 0/1 columns (a list column works too)")
    p.add_argument("--exclude", action="append", help="columns that are neither features nor metadata (repeatable)")
    p.add_argument("--labeler-id", default="baseline", help="labeler id of the imported labels (default: %(default)s)")
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
    from activestream.baseline import check_campaign, import_rows, in_order, read_baseline
    from activestream.tables import DatasetError

    skipped: list[str] = []

    def skip(problem: str) -> None:
        print(problem, file=sys.stderr)
        skipped.append(problem)

    s = settings_from(args)
    names = feature_name_list(s)
    try:  # the file and its columns are checked before anything connects
        baseline = read_baseline(args.file, id_column=args.id_column, label_columns=args.label_column, exclude=args.exclude or (),
                                 feature_names=names, on_error=skip)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s, bus, topics = connect(args)
    queue = make_queue(s)
    note = new_namespace_note(queue, args.file)
    counts: dict[str, int] = {}
    try:
        classes = join_campaign(s, queue, redeclare=False)  # (before anything is written: another campaign's classes are refused)
        if args.random_sample and baseline.multilabel:
            print(f"note: {args.file}: a multi-label campaign makes no live estimates nor auto-accept calibration: --random-sample "
                  "only flags these labels as control ones (they train the model as any label does)", file=sys.stderr)
        elif args.random_sample and not int(queue.get_meta("model_version") or 0):
            print(f"note: {args.file}: no model is live yet: these control labels train the first model and cannot calibrate it "
                  "as the live model scores them; the first retrain scores them out of fold instead", file=sys.stderr)
        order = check_campaign(queue, baseline.feature_names, multilabel=baseline.multilabel, path=args.file)
        counts = import_rows(in_order(baseline.rows, order), bus, topics, queue, labeler_id=args.labeler_id, control=args.random_sample, path=args.file,
                             on_error=skip, classes=classes)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    print(f"imported {counts['imported']} label(s) from {args.file} to {topics.labels} as {args.labeler_id!r}"
          f"{' (control: a random sample)' if args.random_sample else ''}; {counts['already']} already imported; "
          f"{counts['produced']} new item(s) produced to {topics.items}"
          + (f"; skipped {len(skipped)} row(s)" if skipped else ""), flush=True)
    if note:  # (last: the file's own problems come first)
        print(note, file=sys.stderr)
    return 1 if skipped else 0
