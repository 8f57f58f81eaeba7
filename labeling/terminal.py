"""``activestream label``: a terminal labeler that consumes the queue topic and publishes labels."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from activestream.schemas import DecodeError, Label, Skip, decode_queue_entry, int_label
from activestream.streams.bus import Bus
from activestream.streams.topics import LABELERS_GROUP, Topics

Answer = Callable[[str, list[float] | None, dict[str, object]], "str | int | None"]


def prompt_answer(item_id: str, features: list[float] | None, metadata: dict[str, object]) -> str | int | None:
    """Ask a person on the terminal; an empty answer skips the item. End of input (Ctrl-D) raises ``EOFError``."""
    shown = ", ".join(f"{v:.3g}" for v in (features or [])[:12])
    print(f"\nitem {item_id}  metadata={metadata}  features=[{shown}{', ...' if features and len(features) > 12 else ''}]")
    text = input("label (empty = skip): ").strip()
    if not text:
        return None
    number = int_label(text)
    return number if number is not None else text


def label_from_topic(
    bus: Bus,
    topics: Topics,
    answer: Answer,
    *,
    labeler_id: str,
    group: str | None = None,
    max_items: int | None = None,
    idle_timeout: float | None = None,
    seconds_per_label: float = 0.0,
) -> int:
    """Label queue-topic entries with ``answer`` until ``max_items``, ``idle_timeout`` s without work or the end of input.

    ``answer`` ends the session by raising ``EOFError`` (or ``KeyboardInterrupt``): the entry it was
    shown is not committed (the dispatcher hands it out again when its lease runs out).

    Returns labels published. Each queue message is committed after its label is flushed.
    """
    consumer = bus.consumer([topics.queue], group or topics.group(LABELERS_GROUP))
    done = 0
    idle = 0.0
    try:
        while max_items is None or done < max_items:
            msgs = consumer.consume(1, 0.5)
            if not msgs:
                idle += 0.5
                if idle_timeout is not None and idle >= idle_timeout:
                    break
                continue
            idle = 0.0
            m = msgs[0]
            try:
                entry = decode_queue_entry(m.value)
            except DecodeError as err:
                print(f"skipping a bad queue entry: {err}")
                consumer.commit(msgs)
                continue
            feats = entry.features.tolist() if entry.features is not None else None
            try:  # (the control flag is hidden from the labeler: knowing it would bias the unbiased sample)
                value = answer(entry.id, feats, {k: v for k, v in entry.metadata.items() if k != "control"})
            except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C: the item goes back uncommitted, to be labeled later
                print()
                break
            if value is not None:
                label = Label(entry.id, uuid.uuid4().hex, labeler_id, label=value, seconds=seconds_per_label, features=entry.features,
                              control=entry.metadata.get("control") is True)  # (the dispatcher's random-control picks)
                bus.publish(topics.labels, label.encode(), key=entry.id.encode())
                done += 1
            else:  # passed on: the dispatcher hands it back and counts the skip
                bus.publish(topics.skips, Skip(entry.id, labeler_id).encode(), key=entry.id.encode())
            bus.flush()
            consumer.commit(msgs)
    finally:
        consumer.close()
    return done
