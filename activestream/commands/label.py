"""``activestream label``: label items from the queue topic in the terminal, or from an answers file."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.tables import DatasetError, label_columns, label_set
from activestream.wiring import connect

if TYPE_CHECKING:

    from activestream.config import Settings
    from activestream.labeling.terminal import Answer
    from activestream.rankedqueue import RankedQueue
    from activestream.streams.bus import Bus
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``label`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("label", help="label items from the queue topic in the terminal (or from an answers file)")
    options.add_connection(p)
    p.add_argument("--labeler-id", default=os.environ.get("USER", "labeler"), help="who the labels are from (default: $USER, else %(default)s)")
    p.add_argument("--labeler-group", default="labelers",
                   help="the dispatcher's labeler group these labelers belong to (its --labeler-group; default %(default)s)")
    p.add_argument("--group", default=None,
                   help="consumer group of the labelers (default: <topic prefix>.labelers[.<labeler group>], the one that group's dispatcher "
                        "waits for)")
    p.add_argument("--max-items", type=options.count, default=None, help="stop after this many labels (a skipped item does not count)")
    p.add_argument("--idle-timeout", type=options.seconds, default=None, help="exit after this many seconds without work")
    p.add_argument("--seconds-per-label", type=options.seconds, default=None,
                   help="the labeling time each label reports (annotation hours in the report); default: the time the answer took")
    p.add_argument("--answers", default=None, help="CSV with the true labels: label automatically (a simulated labeler)")
    p.add_argument("--id-column", default="id", help="with --answers: its item id column (default: %(default)s)")
    p.add_argument("--label-column", default="label", help="with --answers: its label column (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Label what the dispatcher sends until ``--max-items`` / ``--idle-timeout`` (or Ctrl-C).

    Returns
    -------
    0; an unreadable ``--answers`` file exits with one ``error:`` line.
    """
    from activestream.labeling.auth import reserved_problem
    from activestream.labeling.terminal import label_from_topic

    reserved = reserved_problem(args.labeler_id)
    if reserved is not None:
        raise SystemExit(f"error: --labeler-id {reserved}")
    s, bus, topics = connect(args)
    queue = campaign_queue(s)
    try:
        answer: Answer = (answers_from(read_answers(args.answers, args.id_column, args.label_column)) if args.answers
                          else terminal_prompt(s, bus, topics, queue))
    except BaseException:
        bus.close()
        raise
    try:
        n = label_from_topic(bus, topics, answer, labeler_id=args.labeler_id, group=args.group or topics.labelers_group(args.labeler_group),
                             max_items=args.max_items, idle_timeout=args.idle_timeout, seconds_per_label=args.seconds_per_label,
                             still_leased=still_leased_to(queue, args.labeler_group) if queue is not None else None)
    finally:
        bus.close()
    print(f"published {n} labels to {topics.labels}", flush=True)
    return 0


def still_leased_to(queue: RankedQueue, labeler_group: str) -> Callable[[str], bool]:
    """Whether an item is leased to the dispatcher of ``labeler_group`` now (by Redis's clock)."""
    from activestream.labeling.dispatcher import dispatch_owner

    owner = dispatch_owner(labeler_group)
    return lambda item_id: queue.lease_holder(item_id) == owner


def campaign_queue(s: Settings) -> RankedQueue | None:
    """The campaign's queue when ``REDIS_URL`` reaches it (its recorded classes, header and answer shape; its clock, Redis's,
    which leases run out by), else ``None`` (a warning when it is set but cannot be read)."""
    if not s.redis_url:
        return None
    import redis

    from activestream.wiring import make_queue

    queue = make_queue(s, socket_timeout=5.0)
    try:
        queue.now()
    except redis.RedisError as exc:
        log.warning("the campaign's Redis could not be read (%s): no recorded classes, feature names or answer shape; queue entries "
                    "are shown whether or not their lease ran out", exc)
        return None
    return queue


def terminal_prompt(s: Settings, bus: Bus, topics: Topics, queue: RankedQueue | None = None) -> Answer:
    """The terminal prompt with what it can show: the declared classes (``ACTIVESTREAM_CLASSES``, else the ones the campaign
    recorded with ``queue``), else the live model's (the models topic); the features' names (``ACTIVESTREAM_FEATURE_NAMES``,
    else the campaign's recorded header)."""
    from activestream.config import declared_classes, feature_name_list
    from activestream.labeling.label_studio_project import live_classes
    from activestream.labeling.terminal import TerminalPrompt
    from activestream.rankedqueue.keys import META_LABEL_FIELD, task_of_field

    declared = declared_classes(s)
    names = feature_name_list(s)
    field = None
    if queue is not None:  # (what the campaign recorded: its classes, its header, its answers' shape)
        import redis

        try:
            declared = declared if declared is not None else queue.declared_classes()
            names = names if names is not None else queue.feature_names()
            field = queue.get_meta(META_LABEL_FIELD)
        except redis.RedisError as exc:
            log.warning("the campaign's recorded classes, feature names and answer shape could not be read (%s)", exc)
    live, task = live_classes(bus, topics)
    classes = declared if declared is not None else live
    multilabel = "multilabel" in (task, task_of_field(field) or s.task)  # (the live model's; else the recorded answers', else declared)
    return TerminalPrompt(classes, declared=declared is not None, feature_names=names, multilabel=multilabel)


def answers_from(truth: dict[str, str | int | tuple[str | int, ...]]) -> Answer:
    """A simulated labeler: answers each item with its label in ``truth`` (an unknown item is skipped)."""

    def answer(item_id: str, features: list[float] | None, metadata: dict[str, object]) -> str | int | tuple[str | int, ...] | None:
        return truth.get(item_id)

    return answer


def read_answers(path: str, id_column: str, label_column: str) -> dict[str, str | int | tuple[str | int, ...]]:
    """Item id -> label from a CSV; ids are read as text (``001`` stays ``001``). A multi-label answer is a
    prefix of 0/1 columns (``tag_``: classes by the rest of their names) or a column of JSON lists.

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

    if not os.path.exists(path):
        raise SystemExit(f"error: --answers {path}: no such file")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={id_column: pa.string()}))
    except (pa.ArrowException, OSError) as exc:
        raise SystemExit(f"error: --answers {path}: cannot be read: {exc}") from None
    cols = table.column_names
    if id_column not in cols:
        raise SystemExit(f"error: --answers {path}: column {id_column!r}: not found (columns: {', '.join(cols[:20])})")
    try:
        chosen = label_columns(Path(path), cols, [label_column])  # (a prefix of 0/1 columns: a multi-label answer)
    except DatasetError as exc:
        raise SystemExit(f"error: --answers {exc}") from None
    ids = table.column(id_column).to_pylist()
    if label_column not in cols and len(chosen) == 1:  # (one column that only starts with the name: a typo, not a tag set)
        raise SystemExit(f"error: --answers {path}: column {label_column!r}: not found (did you mean {next(iter(chosen))!r}?)")
    if len(chosen) > 1:
        flags = [table.column(c).to_pylist() for c in chosen]
        for c, values in zip(chosen, flags, strict=True):
            if any(v not in (0, 1) for v in values):
                raise SystemExit(f"error: --answers {path}: tag column {c!r}: must hold only 0/1")
        return {i: tuple(name for name, f in zip(chosen.values(), row, strict=True) if f == 1) for i, *row in zip(ids, *flags, strict=True)}
    labels = table.column(label_column).to_pylist()
    if any(isinstance(v, float) for v in labels):
        raise SystemExit(f"error: --answers {path}: column {label_column!r}: labels must be integers or strings, not floats")
    sets = [label_set(v) for v in labels]  # (a JSON list, as export writes a label set in CSV: a label set)
    return {i: v if s is None else s for i, v, s in zip(ids, labels, sets, strict=True)}  # type: ignore[misc]
