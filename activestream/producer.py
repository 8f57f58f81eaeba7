"""``activestream produce FILE``: CSV / JSONL / Parquet rows -> the items topic."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activestream.schemas import DecodeError as SchemaError
from activestream.schemas import Item, b64_features
from activestream.tables import TABLE_SUFFIXES, DatasetError, feature_columns, feature_matrix, read_table, require_columns

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _report(problem: str, on_error: Callable[[str], None] | None) -> None:
    """A row that cannot go out: to ``on_error`` (which skips it), else ``ValueError``."""
    if on_error is None:
        raise ValueError(problem)
    on_error(problem)


def _id_text(value: object) -> str | None:
    """An id as text, ``None`` when it is missing (null, empty, a float NaN)."""
    text = None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text if text and text.strip() else None


def _table_rows(
    path: Path, id_column: str | None, exclude: Sequence[str], id_required: bool, on_error: Callable[[str], None] | None,
    on_feature_names: Callable[[list[str]], None] | None = None,
) -> Iterator[tuple[str | None, np.ndarray, dict[str, Any]]]:
    table = read_table(path, text_columns=[id_column] if id_column else [])  # ids as text: "001" stays "001"
    require_columns(path, table.column_names, "--exclude", exclude)
    if id_required and id_column:
        require_columns(path, table.column_names, "--id-column", [id_column])
    names = feature_columns(path, table, {*exclude, *([id_column] if id_column else [])})
    if not names:
        raise DatasetError(f"{path}: no numeric feature column")
    if on_feature_names is not None:
        on_feature_names(list(names))
    X = feature_matrix(table, names).astype(np.float32)
    ids = table.column(id_column).to_pylist() if id_column and id_column in table.column_names else None
    for i in range(len(X)):
        item_id = _id_text(ids[i]) if ids is not None else None
        if ids is not None and item_id is None:  # (a row, not a line: blank lines and quoted line breaks do not count)
            _report(f"{path}: row {i + 1}: no id in column {id_column!r}", on_error)
            continue
        yield item_id, X[i], {}


def _jsonl_rows(
    path: Path, id_column: str | None, id_required: bool, on_error: Callable[[str], None] | None
) -> Iterator[tuple[str | None, Any, dict[str, Any]]]:
    with path.open("rb") as fh:  # decoded line by line: one bad byte costs its line, not the run
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # (a BOM may open the file)
                except UnicodeDecodeError as exc:
                    raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start + 1} of the line") from None
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                item_id = None
                if id_column and (id_column in obj or id_required):  # (no such field at all: a row-number id)
                    value = obj.get(id_column)
                    if isinstance(value, dict | list | bool):
                        raise ValueError(f"field {id_column!r}: expected a string or a number, got {type(value).__name__}")
                    item_id = _id_text(value)
                    if item_id is None:
                        raise ValueError(f"no id in field {id_column!r}")
                features = obj.get("features")
                if features is None and "features_b64" in obj:  # (the items topic's other layout: base64 float32)
                    features = b64_features(str(item_id), obj["features_b64"])
            except SchemaError as exc:
                _report(f"{path}:{lineno}: field {exc.field!r}: {exc.reason}", on_error)
                continue
            except ValueError as exc:
                _report(f"{path}:{lineno}: {exc}", on_error)
                continue
            yield item_id, features, obj.get("metadata") or {}


def read_items(
    path: str | Path, *, id_column: str | None = "id", id_required: bool = False, exclude: Sequence[str] = (),
    on_error: Callable[[str], None] | None = None, on_feature_names: Callable[[list[str]], None] | None = None,
) -> Iterator[tuple[str | None, Any, dict[str, Any]]]:
    """Yield ``(id or None, features, metadata)`` per row of a CSV, CSV.gz, Parquet or JSONL file.

    A table's feature column names (its header) go to ``on_feature_names`` once it is read, before its first row.

    ``exclude`` names columns that are not features (each must exist, or a typo would send a
    label as a feature); ``id_column`` may be absent (ids are then ``None``) unless ``id_required``.
    Ids are read as text (``001`` stays ``001``). A table's features are the columns ``simulate``
    takes (:func:`activestream.tables.feature_columns`). A JSONL line that is not a JSON object,
    and a row whose id is null or empty, is passed to ``on_error`` as ``"FILE:LINE: reason"``
    (CSV and Parquet: ``"FILE: row N: reason"``) and skipped (without ``on_error``: ``ValueError``). What a row holds is checked by the
    scorer, which dead-letters a bad item with its id, field and reason.

    Raises
    ------
    DatasetError
        (a ``ValueError``) naming the file: another extension, or a table that cannot be read.
    """
    p = Path(path)
    if p.name.lower().endswith(JSONL_SUFFIXES):
        if exclude:  # (harmless: nothing else in a JSONL item is a feature)
            log.warning("%s: --exclude ignored: a JSONL item's features are its 'features' field", p)
        return _jsonl_rows(p, id_column, id_required, on_error)
    if not p.name.lower().endswith(TABLE_SUFFIXES):  # (a .json array or an .npz is not CSV)
        raise DatasetError(f"{p}: unsupported file type; use {', '.join((*TABLE_SUFFIXES, *JSONL_SUFFIXES))}")
    return _table_rows(p, id_column, exclude, id_required, on_error, on_feature_names)


def encode_row(item_id: str, features: Any, metadata: dict[str, Any], *, raw: bool = False) -> bytes:
    """One items-topic payload; float vectors go binary (fast to decode), other shapes as given.

    ``raw=True`` writes float vectors without metadata in the raw layout
    (:data:`schemas.records.RAW_ITEM_MAGIC`), the fastest to decode.
    """
    if isinstance(features, np.ndarray):
        return Item(item_id, features, metadata).encode(binary=True, raw=raw and not metadata)
    return json.dumps({"schema": "item.v1", "id": item_id, "features": features, "metadata": metadata}).encode()
