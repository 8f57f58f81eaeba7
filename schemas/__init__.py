"""Versioned message contracts for every topic (JSON Schema files + typed records)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from schemas.records import (
    DEAD_LETTER_SCHEMA,
    ITEM_SCHEMA,
    LABEL_SCHEMA,
    MODEL_VERSION_SCHEMA,
    QUEUE_ENTRY_SCHEMA,
    SKIP_SCHEMA,
    DeadLetter,
    DecodeError,
    Item,
    Label,
    ModelVersion,
    QueueEntry,
    Skip,
    decode_dead_letter,
    decode_item,
    decode_label,
    decode_model_version,
    decode_queue_entry,
    decode_skip,
)

SCHEMA_NAMES = (ITEM_SCHEMA, QUEUE_ENTRY_SCHEMA, LABEL_SCHEMA, MODEL_VERSION_SCHEMA, DEAD_LETTER_SCHEMA, SKIP_SCHEMA)


def json_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema document for ``name`` (e.g. ``"item.v1"``)."""
    text = resources.files("schemas").joinpath("json", f"{name}.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


__all__ = [
    "SCHEMA_NAMES",
    "DeadLetter",
    "DecodeError",
    "Item",
    "Label",
    "ModelVersion",
    "QueueEntry",
    "Skip",
    "decode_dead_letter",
    "decode_item",
    "decode_label",
    "decode_model_version",
    "decode_queue_entry",
    "decode_skip",
    "json_schema",
]
