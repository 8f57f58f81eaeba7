"""``activestream queue info|clear``: a namespace's queue as JSON for an operator, or delete it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from activestream.commands import options
from activestream.wiring import make_queue, new_namespace_note, settings_from

if TYPE_CHECKING:
    from activestream.rankedqueue import RankedQueue

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``queue`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("queue", help="ops: a namespace's queue as JSON (info), or delete it (clear --yes)")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--redis-url", default=None, help="default: REDIS_URL")
    options.add_namespace(p)
    p.add_argument("--yes", action="store_true", help="clear: really delete the namespace's keys")
    p.set_defaults(func=run)


def queue_info(queue: RankedQueue) -> dict[str, Any]:
    """What an operator checks first about a namespace's queue: counts, widths, model versions.

    Parameters
    ----------
    queue : the namespace's queue.

    Returns
    -------
    A JSON-ready dict: ``namespace``, ``pending``, ``leased``, ``labeled``, ``dropped`` (skipped too often), ``oldest_pending_age_s``,
    ``n_features``, ``feature_dtype``, ``stored_widths``, ``model_version``, ``ranked_version``,
    ``task``, ``classes`` (the live model's), ``declared_classes``, ``label_kind``, and ``pool``: the capped pool's counters (item records read, items streamed, evicted,
    rejected at admission, evicted for age, reservoir replacements) and the reservoir's size.
    """
    from activestream.labeling.routes import meta_classes

    meta = queue.get_meta_fields("n_features", "feature_dtype", "model_version", "ranked_version", "classes", "task", "label_kind")
    return {
        "namespace": queue.k.namespace,
        "pending": queue.depth(),
        "leased": queue.n_leased(),
        "labeled": queue.n_labeled(),
        "dropped": queue.n_dropped(),
        "oldest_pending_age_s": round(queue.oldest_age(), 3),
        "n_features": int(meta["n_features"]) if meta["n_features"] else None,
        "feature_dtype": meta["feature_dtype"],
        "stored_widths": queue.stored_widths(),  # more than one: items of another width are pending
        "model_version": int(meta["model_version"] or 0),
        "ranked_version": int(meta["ranked_version"] or 0),
        "task": meta["task"],
        "classes": meta_classes(meta["classes"]),  # (the live model's)
        "declared_classes": list(queue.declared_classes() or []),  # (ACTIVESTREAM_CLASSES, as recorded; [] when none are)
        "label_kind": meta["label_kind"],
        "pool": queue.pool_stats(),
    }


def run(args: argparse.Namespace) -> int:
    """Print the queue's :func:`queue_info`, or clear the namespace (only with ``--yes``).

    Returns
    -------
    0, or 2 for ``clear`` without ``--yes``.
    """

    s = settings_from(args)
    queue = make_queue(s, socket_timeout=30.0)
    if args.action == "info":
        note = new_namespace_note(queue, "queue info")  # (all zeros for a namespace that holds nothing: a typo?)
        print(json.dumps(queue_info(queue), indent=2))
        if note:
            print(note, file=sys.stderr)
        return 0
    info = queue_info(queue)
    if not args.yes:
        print(f"error: `queue clear` deletes every key of namespace {s.namespace!r} ({info['pending']} pending, {info['leased']} leased, "
              f"{info['labeled']} labeled items; labels on the labels topic are kept); add --yes to do it", file=sys.stderr)
        return 2
    queue.clear()
    print(f"cleared namespace {s.namespace!r}: {info['pending']} pending, {info['leased']} leased, {info['labeled']} labeled items")
    return 0
