"""``activestream dead-letters``: what the campaign's services refused, item by item, and how often each reason came."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime

from activestream.commands import options
from activestream.wiring import connect


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``dead-letters`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("dead-letters", help="show the dead-letter topic: each refused record's item, field and reason, and counts")
    options.add_connection(p)
    p.add_argument("--last", type=options.count, default=20, help="show the newest this many records (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the records as JSON lines (source, item_id, field, reason, ts, payload head)")
    p.add_argument("--timeout", type=options.positive_seconds, default=30.0, help="seconds to wait for the topic's end (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the dead-letter topic to its end; print the newest ``--last`` records and the count of each reason.

    Returns
    -------
    0.
    """
    from activestream.schemas import DecodeError, decode_dead_letter

    _, bus, topics = connect(args)
    try:
        reader = bus.consumer([topics.dead_letters], None)
        try:
            msgs = reader.read_to_end(args.timeout)
        finally:
            reader.close()
    finally:
        bus.close()
    letters, unreadable = [], 0
    for m in msgs:
        try:
            letters.append(decode_dead_letter(m.value))
        except DecodeError:
            unreadable += 1
    letters.sort(key=lambda d: d.ts)
    shown = letters[-args.last:] if args.last else []
    if args.json:
        for d in shown:
            print(json.dumps({"source": d.source, "item_id": d.item_id, "field": d.field, "reason": d.reason, "ts": d.ts,
                              "payload_head": d.payload[:120].decode("utf-8", "replace")}))
        return 0
    print(f"{len(letters)} dead letter(s) on {topics.dead_letters}" + (f" ({unreadable} unreadable)" if unreadable else ""))
    for d in shown:
        when = datetime.fromtimestamp(d.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"  {when}  {d.source}  item {d.item_id!r}  {_where(d.field)}: {d.reason}")
    # By source and field (a value's index left out): each bad value's reason differs ("got 3", "got 4", "('a0')", ...).
    groups: dict[tuple[str, str], Counter[str]] = {}
    for d in letters:
        groups.setdefault((d.source, d.reason_code), Counter())[d.reason] += 1
    if groups:
        print("by field (most frequent first; the commonest reason shown):")
        for (source, code), reasons in sorted(groups.items(), key=lambda kv: -kv[1].total())[:20]:
            reason, _ = reasons.most_common(1)[0]
            others = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
            print(f"  {reasons.total():>7d}  {source}  {_where(None if code == 'message' else code)}: {reason}{others}")
    return 0


def _where(field: str | None) -> str:
    """``field 'features[2]'``, or the whole record's (a dead letter with no field: not JSON, too large, ...)."""
    return "the whole record" if field is None else f"field {field!r}"
