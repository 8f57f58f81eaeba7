"""Reading a topic's log to its end: what a restarted retrainer reads back (versions, dead letters)."""

from __future__ import annotations

import hashlib

from activestream.schemas import DecodeError, ModelVersion, decode_dead_letter, decode_model_version
from activestream.streams.bus import Bus, Message
from activestream.streams.topics import Topics


def read_log(bus: Bus, topic: str, timeout: float) -> list[Message]:
    """Every record of ``topic`` now in the log (a group-less reader, closed after)."""
    reader = bus.consumer([topic], None)
    try:
        return reader.read_to_end(timeout)
    finally:
        reader.close()


def dead_lettered_labels(bus: Bus, topics: Topics, timeout: float) -> set[bytes]:
    """SHA-256 digests of the label payloads the dead-letters topic holds already."""
    seen = set()
    for m in read_log(bus, topics.dead_letters, timeout):
        try:
            dl = decode_dead_letter(m.value)
        except DecodeError:
            continue
        if dl.source == topics.labels:
            seen.add(hashlib.sha256(dl.payload).digest())
    return seen


def newest_version(bus: Bus, topics: Topics, timeout: float = 60.0) -> ModelVersion | None:
    """The newest model version on the models topic (records that are no model version are passed over)."""
    return newest_versions(bus, topics, timeout)[0]


def newest_versions(bus: Bus, topics: Topics, timeout: float = 60.0) -> tuple[ModelVersion | None, ModelVersion | None]:
    """``(newest, newest of the retrainer's own)`` on the models topic: a user's version (``publish-model``) carries none
    of the campaign's records (stop rules fired, auto-accept paused), so a restarted retrainer takes those from its own."""
    newest: ModelVersion | None = None
    own: ModelVersion | None = None
    for m in read_log(bus, topics.models, timeout):
        try:
            mv = decode_model_version(m.value)
        except DecodeError:
            continue
        if newest is None or mv.version > newest.version:
            newest = mv
        if mv.source == "retrainer" and (own is None or mv.version > own.version):
            own = mv
    return newest, own
