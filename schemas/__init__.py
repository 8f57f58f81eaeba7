"""Versioned message contracts for every topic (JSON Schema files + typed records)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from activestream.schemas.records import (
    DEAD_LETTER_SCHEMA,
    ITEM_SCHEMA,
    LABEL_SCHEMA,
    MAX_DEAD_LETTER_PAYLOAD,
    MODEL_VERSION_SCHEMA,
    QUEUE_ENTRY_SCHEMA,
    RAW_ITEM_MAGIC,
    SKIP_SCHEMA,
    DeadLetter,
    DecodeError,
    Item,
    Label,
    ModelVersion,
    QueueEntry,
    Skip,
    b64_features,
    coerce_label_value,
    decode_dead_letter,
    decode_item,
    decode_items,
    decode_label,
    decode_model_version,
    decode_queue_entry,
    decode_skip,
    int_label,
    label_kinds,
)

SCHEMA_NAMES = (ITEM_SCHEMA, QUEUE_ENTRY_SCHEMA, LABEL_SCHEMA, MODEL_VERSION_SCHEMA, DEAD_LETTER_SCHEMA, SKIP_SCHEMA)


def json_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema document for ``name`` (e.g. ``"item.v1"``)."""
    text = resources.files(__name__).joinpath("json", f"{name}.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


__all__ = [
    "MAX_DEAD_LETTER_PAYLOAD",
    "RAW_ITEM_MAGIC",
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
    "b64_features",
    "coerce_label_value",
    "decode_items",
    "decode_skip",
    "int_label",
    "json_schema",
    "label_kinds",
]
