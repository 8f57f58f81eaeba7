"""Versioned message contracts for every topic (JSON Schema files + typed records).

Each record mirrors a JSON Schema file in ``schemas/json/`` (the contract users read) and
has a module of its own (``item``, ``queue_entry``, ``label``, ``skip``, ``model_version``,
``dead_letter``); the item's wire formats are in ``wire_json``, ``wire_b64`` and
``wire_raw``, the batch decoder in ``batch``. ``decode_*`` validates by hand rather than
with ``jsonschema`` because it runs once per streamed message and must name the item, the
field and the reason (:class:`DecodeError`) when it rejects one.

Every ``decode_*`` is total: for any bytes it returns a record or raises
:class:`DecodeError`, never another exception (a safety net turns an error no check
foresaw into one, flagged ``unexpected``); ``tests/unit/test_decoders_total.py`` and the
fuzzer ``tests/fuzz/fuzz_decoders.py`` hold them to it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from activestream.schemas.batch import ItemBatch, decode_items
from activestream.schemas.codec import load_object
from activestream.schemas.dead_letter import DEAD_LETTER_SCHEMA, MAX_DEAD_LETTER_PAYLOAD, DeadLetter, decode_dead_letter
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import (
    MAX_ID_CHARS,
    coerce_label_value,
    distinct_labels,
    finite_number,
    int_label,
    integer,
    is_text,
    label_kinds,
    not_a_class,
    parse_classes,
    read_id,
    required_text,
)
from activestream.schemas.item import ITEM_SCHEMA, Item, decode_item
from activestream.schemas.label import FREE_SOURCES, LABEL_SCHEMA, Label, decode_label
from activestream.schemas.model_version import MODEL_VERSION_SCHEMA, ModelVersion, decode_model_version
from activestream.schemas.queue_entry import QUEUE_ENTRY_SCHEMA, QueueEntry, decode_queue_entry
from activestream.schemas.skip import SKIP_SCHEMA, Skip, decode_skip
from activestream.schemas.wire_b64 import b64_features
from activestream.schemas.wire_json import NO_FEATURE_NAMES
from activestream.schemas.wire_raw import RAW_ITEM_MAGIC

SCHEMA_NAMES = (ITEM_SCHEMA, QUEUE_ENTRY_SCHEMA, LABEL_SCHEMA, MODEL_VERSION_SCHEMA, DEAD_LETTER_SCHEMA, SKIP_SCHEMA)


def json_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema document for ``name`` (e.g. ``"item.v1"``)."""
    text = resources.files(__name__).joinpath("json", f"{name}.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


__all__ = [
    "FREE_SOURCES",
    "MAX_DEAD_LETTER_PAYLOAD",
    "MAX_ID_CHARS",
    "NO_FEATURE_NAMES",
    "RAW_ITEM_MAGIC",
    "SCHEMA_NAMES",
    "DeadLetter",
    "DecodeError",
    "Item",
    "ItemBatch",
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
    "finite_number",
    "int_label",
    "integer",
    "is_text",
    "load_object",
    "read_id",
    "required_text",
    "json_schema",
    "label_kinds",
    "distinct_labels",
    "not_a_class",
    "parse_classes",
]
