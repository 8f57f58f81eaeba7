"""``activestream label``: label items from the queue topic in the terminal, or from an answers file."""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.wiring import connect

if TYPE_CHECKING:
    from activestream.labeling.terminal import Answer

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``label`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("label", help="label items from the queue topic in the terminal (or from an answers file)")
    options.add_connection(p)
    p.add_argument("--labeler-id", default=os.environ.get("USER", "labeler"))
    p.add_argument("--group", default="labelers", help="consumer group of the labelers")
    p.add_argument("--max-items", type=options.count, default=None)
    p.add_argument("--idle-timeout", type=options.seconds, default=None, help="exit after this many seconds without work")
    p.add_argument("--seconds-per-label", type=options.seconds, default=0.0)
    p.add_argument("--answers", default=None, help="CSV with the true labels: label automatically (a simulated labeler)")
    p.add_argument("--id-column", default="id")
    p.add_argument("--label-column", default="label")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Label what the dispatcher sends until ``--max-items`` / ``--idle-timeout`` (or Ctrl-C).

    Returns
    -------
    0; an unreadable ``--answers`` file exits with one ``error:`` line.
    """
    from activestream.labeling.terminal import label_from_topic, prompt_answer

    s, bus, topics = connect(args)
    answer: Answer = prompt_answer
    if args.answers:
        answer = answers_from(read_answers(args.answers, args.id_column, args.label_column))
    try:
        n = label_from_topic(bus, topics, answer, labeler_id=args.labeler_id, group=args.group, max_items=args.max_items,
                             idle_timeout=args.idle_timeout, seconds_per_label=args.seconds_per_label)
    finally:
        bus.close()
    print(f"published {n} labels to {topics.labels}", flush=True)
    return 0


def answers_from(truth: dict[str, str | int]) -> Answer:
    """A simulated labeler: answers each item with its label in ``truth`` (an unknown item is skipped)."""

    def answer(item_id: str, features: list[float] | None, metadata: dict[str, object]) -> str | int | None:
        return truth.get(item_id)

    return answer


def read_answers(path: str, id_column: str, label_column: str) -> dict[str, str | int]:
    """Item id -> label from a CSV; ids are read as text (``001`` stays ``001``).

    Parameters
    ----------
    path : the CSV file.
    id_column, label_column : its item id and label columns.

    Raises
    ------
    SystemExit
        With one ``error:`` line: an unreadable file, a missing column, or float labels.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={id_column: pa.string()}))
    except (pa.ArrowException, OSError) as exc:
        raise SystemExit(f"error: --answers {path}: cannot be read: {exc}") from None
    for col in (id_column, label_column):
        if col not in table.column_names:
            raise SystemExit(f"error: --answers {path}: column {col!r}: not found (columns: {', '.join(table.column_names[:20])})")
    labels = table.column(label_column).to_pylist()
    if any(isinstance(v, float) for v in labels):
        raise SystemExit(f"error: --answers {path}: column {label_column!r}: labels must be integers or strings, not floats")
    return dict(zip(table.column(id_column).to_pylist(), labels, strict=True))
