"""``activestream produce FILE``: CSV / JSONL / Parquet rows -> the items topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activestream.datasets import TABLE_SUFFIXES, DatasetError, feature_columns, feature_matrix, read_table, require_columns
from schemas import Item

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _table_rows(path: Path, id_column: str | None, exclude: Sequence[str], id_required: bool) -> Iterator[tuple[str | None, np.ndarray, dict[str, Any]]]:
    table = read_table(path)
    require_columns(path, table.column_names, "--exclude", exclude)
    if id_required and id_column:
        require_columns(path, table.column_names, "--id-column", [id_column])
    names = feature_columns(path, table, {*exclude, *([id_column] if id_column else [])})
    if not names:
        raise DatasetError(f"{path}: no numeric feature column")
    X = feature_matrix(table, names).astype(np.float32)
    ids = table.column(id_column).to_pylist() if id_column and id_column in table.column_names else None
    for i in range(len(X)):
        yield (str(ids[i]) if ids is not None else None), X[i], {}


def _jsonl_rows(path: Path, id_column: str | None, on_error: Callable[[str], None] | None) -> Iterator[tuple[str | None, Any, dict[str, Any]]]:
    with path.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except ValueError as exc:
                problem = f"{path}:{lineno}: {exc}"
                if on_error is None:
                    raise ValueError(problem) from None
                on_error(problem)
                continue
            yield (str(obj[id_column]) if id_column and id_column in obj else None), obj.get("features"), obj.get("metadata") or {}


def read_items(
    path: str | Path, *, id_column: str | None = "id", id_required: bool = False, exclude: Sequence[str] = (),
    on_error: Callable[[str], None] | None = None,
) -> Iterator[tuple[str | None, Any, dict[str, Any]]]:
    """Yield ``(id or None, features, metadata)`` per row of a CSV, CSV.gz, Parquet or JSONL file.

    ``exclude`` names columns that are not features (each must exist, or a typo would send a
    label as a feature); ``id_column`` may be absent (ids are then ``None``) unless ``id_required``.
    A table's features are the columns ``simulate`` takes (:func:`activestream.datasets.feature_columns`).
    A JSONL line that is not a JSON object is passed to ``on_error`` as ``"FILE:LINE: reason"``
    and skipped (without ``on_error``: ``ValueError``). What a row holds is checked by the
    scorer, which dead-letters a bad item with its id, field and reason.

    Raises
    ------
    DatasetError
        (a ``ValueError``) naming the file: another extension, or a table that cannot be read.
    """
    p = Path(path)
    if p.name.lower().endswith(JSONL_SUFFIXES):
        if exclude:
            raise DatasetError(f"{p}: --exclude names table columns; a JSONL item's features are its 'features' field")
        return _jsonl_rows(p, id_column, on_error)
    if not p.name.lower().endswith(TABLE_SUFFIXES):  # (a .json array or an .npz is not CSV)
        raise DatasetError(f"{p}: unsupported file type; use .csv, .csv.gz, .jsonl, .ndjson, .parquet or .pq")
    return _table_rows(p, id_column, exclude, id_required)


def encode_row(item_id: str, features: Any, metadata: dict[str, Any], *, raw: bool = False) -> bytes:
    """One items-topic payload; float vectors go binary (fast to decode), other shapes as given.

    ``raw=True`` writes float vectors without metadata in the raw layout
    (:data:`schemas.records.RAW_ITEM_MAGIC`), the fastest to decode.
    """
    if isinstance(features, np.ndarray):
        return Item(item_id, features, metadata).encode(binary=True, raw=raw and not metadata)
    return json.dumps({"schema": "item.v1", "id": item_id, "features": features, "metadata": metadata}).encode()
