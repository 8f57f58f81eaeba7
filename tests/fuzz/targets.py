"""The decoders held to be total, and what a decoded record must allow: shared by the property tests and the fuzzer.

:func:`check` runs one decoder on one payload. The decoder must return a record or raise
:class:`DecodeError` that one of its checks raised (not its safety net: ``unexpected``), and
a record it returns must be one every place it goes can carry: its text encodes as UTF-8,
and it encodes again to a payload that decodes to the same record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from activestream.retrainer.control_log import ControlObservation
from activestream.schemas import (
    DeadLetter,
    DecodeError,
    Item,
    Label,
    ModelVersion,
    QueueEntry,
    Skip,
    decode_dead_letter,
    decode_item,
    decode_items,
    decode_label,
    decode_model_version,
    decode_queue_entry,
    decode_skip,
)

FEATURE_NAMES = ["a", "b", "c"]
# Splits a fuzzed payload into the messages of one batch for decode_items.
BATCH_SEPARATOR = b"\n--\n"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(a, b)
    return bool(a == b)


def _round_trip(record: Any, again: Callable[[bytes], Any], payload: bytes) -> None:
    try:
        back = again(payload)
    except DecodeError as err:
        raise AssertionError(f"{type(record).__name__} does not decode from its own encoding: {err}") from err
    fields = [f for f in vars(record) if f != "onnx" or record.onnx is not None]
    diff = [f for f in fields if not _same(getattr(record, f), getattr(back, f))]
    assert not diff, f"{type(record).__name__} changed in a round trip: {diff}"


def _item(payload: bytes, n_features: int | None = None, names: list[str] | None = None, key: str | None = None) -> None:
    item = decode_item(payload, n_features=n_features, feature_names=names, key=key)
    item.id.encode()  # (UTF-8: what Redis and Kafka keys are sent as)
    assert item.features.dtype == np.float32 and item.features.ndim == 1 and np.isfinite(item.features).all()
    _round_trip(item, decode_item, item.encode(binary=True))
    _round_trip(item, decode_item, item.encode())
    if not item.metadata:
        _round_trip(item, decode_item, item.encode(raw=True))


def _items(payload: bytes) -> None:
    parts = payload.split(BATCH_SEPARATOR)
    for n_features in (None, 3):
        batch = decode_items(parts, n_features=n_features, keys=[f"k{i}" for i in range(len(parts))])
        seen = sorted(batch.index + [pos for pos, _ in batch.errors])
        assert seen == list(range(len(parts))), "every payload is either an item or an error, once"
        assert batch.features.shape == (len(batch.ids), batch.features.shape[1]) and np.isfinite(batch.features).all()
        for item_id in batch.ids:
            item_id.encode()
        for _, err in batch.errors:
            assert isinstance(err, DecodeError) and not err.unexpected, err


def _label(payload: bytes) -> None:
    label = decode_label(payload, key="k")
    for text in (label.item_id, label.label_id, label.labeler_id, label.source):
        text.encode()
    _round_trip(label, decode_label, label.encode())


def _skip(payload: bytes) -> None:
    skip = decode_skip(payload)
    _round_trip(skip, decode_skip, skip.encode())


def _model_version(payload: bytes) -> None:
    mv = decode_model_version(payload)
    _round_trip(mv, decode_model_version, mv.encode())


def _queue_entry(payload: bytes) -> None:
    entry = decode_queue_entry(payload)
    entry.id.encode()
    _round_trip(entry, decode_queue_entry, entry.encode())


def _dead_letter(payload: bytes) -> None:
    dl = decode_dead_letter(payload)
    assert dl.key is None or isinstance(dl.key, bytes)
    dl.encode()


def _control(payload: bytes) -> None:
    obs = ControlObservation.decode(payload)
    _round_trip(obs, ControlObservation.decode, obs.encode())


DECODERS: dict[str, Callable[[bytes], None]] = {
    "item": _item,
    "item_n3": lambda p: _item(p, 3),
    "item_named": lambda p: _item(p, None, FEATURE_NAMES, "key"),
    "items": _items,
    "label": _label,
    "skip": _skip,
    "model_version": _model_version,
    "queue_entry": _queue_entry,
    "dead_letter": _dead_letter,
    "control": _control,
}
RECORDS = (Item, Label, Skip, ModelVersion, QueueEntry, DeadLetter, ControlObservation)


def check(name: str, payload: bytes) -> None:
    """Run decoder ``name`` on ``payload``; ``AssertionError`` (or the decoder's stray exception) if it is not total."""
    try:
        DECODERS[name](payload)
    except DecodeError as err:
        if getattr(err, "unexpected", False):
            raise AssertionError(f"{name}: the safety net caught what no check foresaw: {err}") from err
