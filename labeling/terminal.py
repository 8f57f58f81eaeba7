"""``activestream label``: a terminal labeler that consumes the queue topic and publishes labels."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from activestream.schemas import DecodeError, Label, Skip, decode_queue_entry, int_label, not_a_class
from activestream.schemas.fields import LabelValue
from activestream.streams.bus import Bus, Message
from activestream.streams.topics import LABELERS_GROUP, Topics

# An item's answer: a class, a label set (a multi-label campaign; ``()``: no tag applies), or ``None`` to skip it.
Answer = Callable[[str, list[float] | None, dict[str, object]], "str | int | tuple[str | int, ...] | None"]
NONE_APPLY = "-"  # typed in a multi-label campaign: no tag applies (an empty answer skips)

SHOWN_FEATURES = 40  # features printed per item (name=value); the rest is counted


class TerminalPrompt:
    """Ask a person on the terminal for each item's label (an :data:`Answer`); an empty answer skips the item.

    Shows the item's metadata (without the hidden control flag), its features by name, and the classes to
    choose from. With ``declared`` classes (``ACTIVESTREAM_CLASSES``) any other answer is refused and asked
    again; without, an answer that is not one of the classes seen so far (the live model's, and this
    session's answers) must be typed twice: a typo such as ``Barolo`` for ``barolo`` would otherwise
    become a class of its own. In a ``multilabel`` campaign the answer is a comma-separated set of tags
    (``-``: none applies), each held to the same rule. End of input (Ctrl-D) raises ``EOFError``.

    Parameters
    ----------
    classes : the classes to offer (the declared ones, else the live model's; ``()``: none known yet).
    declared : whether ``classes`` are the campaign's declared classes (refuse others) or only the ones seen.
    feature_names : the features' names, in order (``None``: shown by position).
    multilabel : answers are tag sets (the campaign's model, or its first labels, are multi-label).
    ask, say : read an answer after a prompt / print a line (``input`` and ``print``; tests give their own).
    """

    def __init__(self, classes: Sequence[LabelValue] = (), *, declared: bool = False, feature_names: Sequence[str] | None = None,
                 multilabel: bool = False, ask: Callable[[str], str] | None = None, say: Callable[[str], None] = print) -> None:
        self.classes = list(classes)
        self.multilabel = multilabel
        self.declared = declared
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.ask = ask or (lambda text: input(text))  # (input looked up at each call: tests replace it)
        self.say = say

    def __call__(self, item_id: str, features: list[float] | None, metadata: dict[str, object]) -> LabelValue | tuple[LabelValue, ...] | None:
        self.say("")
        self.say(f"item {item_id}" + (f"  metadata={metadata}" if metadata else ""))
        if features:
            self.say(f"  {self._features(features)}")
        if self.classes:
            self.say(f"  {'tags' if self.multilabel else 'classes'}: {', '.join(str(c) for c in self.classes)}")
        if self.multilabel:
            return self._tags()
        while True:
            value = self._value(self.ask("label (empty = skip): "))
            if value is None:
                return None
            problem = not_a_class([value], self.classes) if self.classes else None
            if problem is None:
                return value
            if self.declared:
                self.say(f"  {problem}: type one of them")
                continue
            again = self._value(self.ask(f"  {value!r} is a new class (classes so far: {', '.join(str(c) for c in self.classes)}); "
                                    "type it again to add it, or give another answer: "))
            if again == value:
                self.classes.append(value)
                return value
            if again is None:
                return None
            if not_a_class([again], self.classes) is None:
                return again
            self.say(f"  {again!r} is not {value!r} either: asked again")

    def _tags(self) -> tuple[LabelValue, ...] | None:
        """A multi-label answer: comma-separated tags, ``-`` for none; new tags (undeclared) are confirmed by typing the answer again."""
        while True:
            text = self.ask(f"tags, comma-separated ({NONE_APPLY} = none apply, empty = skip): ").strip()
            if not text:
                return None
            tags = () if text == NONE_APPLY else tuple(dict.fromkeys(v for v in (self._value(t) for t in text.split(",")) if v is not None))
            if not tags and text != NONE_APPLY:
                continue
            problem = not_a_class(list(tags), self.classes) if tags and (self.classes or self.declared) else None
            if problem is None:
                return tags
            if self.declared:
                self.say(f"  {problem}: type them from the tags above")
                continue
            new = [t for t in tags if not_a_class([t], self.classes) is not None]
            if self.ask(f"  {', '.join(repr(t) for t in new)}: new tag(s) (tags so far: {', '.join(str(c) for c in self.classes)}); "
                        "type the same answer again to add them (anything else: asked again): ").strip() == text:
                self.classes += new
                return tags

    def _value(self, text: str) -> LabelValue | None:
        """A typed answer: a class's own text when it is one (``01`` of the classes ``01, 02`` stays text), else :func:`_typed`."""
        t = text.strip()
        return t if t and any(isinstance(c, str) and c == t for c in self.classes) else _typed(t)

    def _features(self, features: list[float]) -> str:
        names = self.feature_names if self.feature_names is not None and len(self.feature_names) == len(features) else None
        shown = [f"{names[j] if names else j}={v:.4g}" for j, v in enumerate(features[:SHOWN_FEATURES])]
        more = len(features) - SHOWN_FEATURES
        return "  ".join(shown) + (f"  (+{more} more)" if more > 0 else "")


def _typed(text: str) -> LabelValue | None:
    """A typed answer: ``None`` when empty (a skip), an integer when it is one, else the text (stripped)."""
    t = text.strip()
    if not t:
        return None
    number = int_label(t)
    return number if number is not None else t


def prompt_answer(item_id: str, features: list[float] | None, metadata: dict[str, object]) -> LabelValue | tuple[LabelValue, ...] | None:
    """:class:`TerminalPrompt` with no classes known: ask on the terminal; an empty answer skips the item."""
    return TerminalPrompt()(item_id, features, metadata)


def label_from_topic(
    bus: Bus,
    topics: Topics,
    answer: Answer,
    *,
    labeler_id: str,
    group: str | None = None,
    max_items: int | None = None,
    idle_timeout: float | None = None,
    seconds_per_label: float | None = None,
    still_leased: Callable[[str], bool] | None = None,
) -> int:
    """Label queue-topic entries with ``answer`` until ``max_items``, ``idle_timeout`` s without work or the end of input.

    ``answer`` ends the session by raising ``EOFError`` (or ``KeyboardInterrupt``): the entry it was
    shown is not committed (the dispatcher hands it out again when its lease runs out).

    Each label reports ``seconds_per_label`` as its labeling time (annotation hours), else (``None``) the
    seconds ``answer`` took: what a person at the terminal spent on the item.

    ``still_leased(item_id)`` says whether the item is leased to the labelers' group now (the queue's answer, by Redis's
    clock): with it, an entry whose item is not is passed over (its lease ran out and it went back to the queue, or it was
    labeled when this entry was shown before); ``None``: every entry is shown.

    Returns labels published. Each queue message is committed after its label is flushed. A label's id is derived from
    its queue entry, so an entry shown again (its commit did not happen: a crash, or an answer slower than the
    consumer's ``max.poll.interval.ms``) and answered again gives the same label, counted once downstream.
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
            if still_leased is not None and not still_leased(entry.id):
                print(f"passed over item {entry.id}: it is no longer leased to this labeler group (its lease ran out and it went "
                      "back to the queue, or it was labeled already)")
                consumer.commit(msgs)
                continue
            feats = entry.features.tolist() if entry.features is not None else None
            started = time.monotonic()
            try:  # (the control flag is hidden from the labeler: knowing it would bias the unbiased sample)
                value = answer(entry.id, feats, {k: v for k, v in entry.metadata.items() if k != "control"})
            except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C: the item goes back uncommitted, to be labeled later
                print()
                break
            if value is not None:
                seconds = seconds_per_label if seconds_per_label is not None else time.monotonic() - started
                label = Label(entry.id, entry_label_id(m, entry.lease_expires_at), labeler_id, label=None if isinstance(value, tuple) else value,
                              labels=value if isinstance(value, tuple) else None, seconds=seconds, features=entry.features,
                              control=entry.metadata.get("control") is True,  # (the dispatcher's random-control picks)
                              model_version=entry.model_version or None)  # (the version that ranked it: for the export; 0: none had)
                bus.publish(topics.labels, label.encode(), key=entry.id.encode())
                done += 1
            else:  # passed on: the dispatcher hands it back and counts the skip
                bus.publish(topics.skips, Skip(entry.id, labeler_id, lease_expires_at=entry.lease_expires_at).encode(), key=entry.id.encode())
            bus.flush()
            consumer.commit(msgs)
    finally:
        consumer.close()
    return done


def entry_label_id(m: Message, lease_expires_at: float | None) -> str:
    """The label id of an answer to the queue entry ``m``: the same each time the entry is read (its record's place, and
    its lease's end, which a topic created again under the same name would not repeat with the same offset)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"activestream:queue-entry/{m.topic}/{m.partition}/{m.offset}/{lease_expires_at!r}").hex
