"""``activestream report [--json] [--plot FILE.png]``: whether the campaign pays off and whether it is done.

Reads the campaign's topics to their current end: the model versions the retrainer published
(their campaign figures), the items, dead-letters and autolabels topics (the auto-accept share) and the
labels topic (hours spent, where the versions do not say). What is shown is
:mod:`activestream.campaign_report`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections import Counter
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.wiring import connect

if TYPE_CHECKING:
    from activestream.campaign_report import TopicCounts
    from activestream.schemas import ModelVersion
    from activestream.streams.bus import Bus, Message
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``report`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("report", help="the campaign's learning curve, live estimates, stop rules, hours saved and auto-accept share")
    options.add_connection(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON (machine-readable)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="also draw the learning curve, the fitted random curve and the stop markers")
    p.add_argument("--timeout", type=options.positive_seconds, default=60.0, help="seconds to wait for each topic's end (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report (and draw it with ``--plot``).

    Returns
    -------
    0, or 2 with one ``error:`` line (an unwritable plot path).
    """
    from activestream.campaign_report import build_report, plot, render_text

    s, bus, topics = connect(args)
    try:
        versions, counts = read_campaign(bus, topics, args.timeout)
    finally:
        bus.close()
    report = build_report(s.namespace, versions, counts)
    if args.plot:
        try:
            plot(report, args.plot)
        except (OSError, ValueError) as exc:
            print(f"error: --plot {args.plot}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            return 2
    print(json.dumps(report, indent=2) if args.json else render_text(report), flush=True)
    if args.plot and not args.json:
        print(f"plot written to {args.plot}")
    return 0


def read_campaign(bus: Bus, topics: Topics, timeout: float) -> tuple[list[ModelVersion], TopicCounts]:
    """The published model versions (undecodable ones left out: the scorer dead-letters them) and the topic counts."""
    from activestream.campaign_report import TopicCounts
    from activestream.labeled_set import decode_all
    from activestream.schemas import DecodeError, decode_dead_letter, decode_item, decode_model_version

    def read(topic: str) -> list[Message]:
        reader = bus.consumer([topic], None)  # group-less, from the beginning
        try:
            return reader.read_to_end(timeout)
        finally:
            reader.close()

    versions = []
    for m in read(topics.models):
        try:
            versions.append(decode_model_version(m.value))
        except DecodeError:
            continue
    records: dict[str, set[bytes]] = {}  # item id -> its records on the items topic (digests of their bytes)
    for m in read(topics.items):
        try:  # (the key is the item id; an unkeyed record names it in its body)
            records.setdefault(m.key.decode(errors="replace") if m.key is not None else decode_item(m.value).id, set()).add(_digest(m.value))
        except DecodeError:
            continue
    dead: dict[str, set[bytes]] = {}  # item id -> the records of it the scorers dead-lettered (each once, however often)
    for m in read(topics.dead_letters):
        try:
            letter = decode_dead_letter(m.value)
        except DecodeError:
            continue
        if letter.source == topics.items and letter.item_id is not None:
            dead.setdefault(letter.item_id, set()).add(_digest(letter.payload))
    # (an item every record of which was dead-lettered never reached a model: it is not in the share's denominator)
    items = sum(1 for item_id, values in records.items() if values - dead.get(item_id, set()))
    undecodable: Counter[str] = Counter()
    autos = {lab.item_id for lab in decode_all(read(topics.auto_labels), undecodable)}
    # (once per label id: a redelivery, or the dispatcher's flagged copy of an answer to an audit item, is the same label)
    humans = list({lab.label_id: lab for lab in decode_all(read(topics.labels), undecodable) if lab.source == "human"}.values())
    return versions, TopicCounts(items=items, auto_accepted=len(autos), human_labels=len(humans),
                                 human_seconds=float(sum(lab.seconds for lab in humans)))


def _digest(value: bytes) -> bytes:
    """A record's bytes as 16 (the items topic may hold millions of records), of the part a dead letter keeps of it
    (its first ``MAX_DEAD_LETTER_PAYLOAD`` bytes: a longer record and its dead letter's payload are told apart by no more)."""
    from activestream.schemas import MAX_DEAD_LETTER_PAYLOAD

    return hashlib.blake2b(value[:MAX_DEAD_LETTER_PAYLOAD], digest_size=16).digest()
