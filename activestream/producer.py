"""``activestream produce FILE``: CSV / JSONL / Parquet rows -> the items topic."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activestream.schemas import DecodeError as SchemaError
from activestream.schemas import Item, b64_features, decode_item
from activestream.schemas.wire_json import feature_vector
from activestream.tables import (
    TABLE_SUFFIXES,
    DatasetError,
    bad_cell,
    campaign_order,
    columns_named,
    feature_columns,
    feature_matrix,
    json_value,
    names_shown,
    read_table,
    require_columns,
    width_mismatch,
)

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


# Column names that usually hold the answer: shown to labelers as metadata, they would label by it.
ANSWER_NAMES = frozenset({"label", "labels", "target", "class", "y", "answer", "category", "tag", "tags"})


def _table_rows(
    path: Path, id_column: str | None, exclude: Sequence[str], id_required: bool, on_error: Callable[[str], None] | None,
    on_feature_names: Callable[[list[str]], None] | None = None, n_features: int | None = None, known: Sequence[str] | None = None,
) -> Iterator[tuple[int, str | None, np.ndarray, dict[str, Any], str]]:
    table = read_table(path, text_columns=[id_column] if id_column else [])  # ids as text: "001" stays "001"
    exclude = list(columns_named(path, table.column_names, exclude, "--exclude"))  # (a prefix too: --exclude tag_)
    if id_required and id_column:
        require_columns(path, table.column_names, "--id-column", [id_column])
    names = feature_columns(path, table, {*exclude, *([id_column] if id_column else [])})
    if not names:
        raise DatasetError(f"{path}: no numeric feature column")
    if n_features is not None and len(names) != n_features:  # (every row would be dead-lettered: refuse the file at once)
        raise DatasetError(f"{path}: {width_mismatch(names, n_features, known)}")
    order = campaign_order(names, known)
    if order is not None:  # (the campaign's columns in another order: each row's vector is put in the campaign's)
        log.info("%s: feature columns put in the campaign's order (%s)", path, names_shown(known or []))
        names = [names[j] for j in order]
    if on_feature_names is not None:
        on_feature_names(list(names))
    with np.errstate(over="ignore"):  # (a value past float32's range becomes inf: its row is reported below, with the cell)
        X = feature_matrix(table, names).astype(np.float32)
    finite = np.asarray(np.isfinite(X).all(axis=1))
    # The other columns (text: a ticket's body, a URL) go with each item as its metadata, which labelers see.
    meta = {c: table.column(c).to_pylist() for c in table.column_names if c not in names and c not in exclude and c != id_column}
    if meta:
        answer_like = [c for c in meta if c.strip().lower() in ANSWER_NAMES]
        log.warning("%s: column(s) %s go with each item as its metadata, which labelers see%s", path, ", ".join(map(repr, meta)),
                    f" ({', '.join(map(repr, answer_like))}: the answer? --exclude it)" if answer_like else " (--exclude one to send it nowhere)")
    ids = table.column(id_column).to_pylist() if id_column and id_column in table.column_names else None
    for i in range(len(X)):
        item_id = _id_text(ids[i]) if ids is not None else None
        if ids is not None and item_id is None:  # (a row, not a line: blank lines and quoted line breaks do not count)
            _report(f"{path}: row {i + 1}: no id in column {id_column!r}", on_error)
            continue
        if not finite[i]:  # (the scorer would dead-letter it: say so here, where the file is)
            about = f"item {item_id!r}: " if item_id is not None else ""
            _report(f"{path}: row {i + 1}: {about}{bad_cell(table, names, X[i], i)}", on_error)
            continue
        yield i, item_id, X[i], {c: json_value(v[i]) for c, v in meta.items() if v[i] is not None}, f"{path}: row {i + 1}"


def _jsonl_rows(
    path: Path, id_column: str | None, id_required: bool, on_error: Callable[[str], None] | None
) -> Iterator[tuple[int, str | None, Any, dict[str, Any], str]]:
    index = -1  # the row's place among the file's non-blank lines (its row-number id)
    # (the file's first item says whether its items carry ids: after one that does, a line without is refused, not
    # given a row-number id that another file's row may hold too: a misspelt "ID" key hid a producer's bug so)
    ids_given: bool | None = None
    with path.open("rb") as fh:  # decoded line by line: one bad byte costs its line, not the run
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            index += 1
            try:
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # (a BOM may open the file)
                except UnicodeDecodeError as exc:
                    raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start + 1} of the line") from None
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                item_id = None
                if ids_given is None:
                    ids_given = bool(id_column) and id_column in obj
                if id_column and (id_column in obj or id_required or ids_given):  # (no such field in any: row-number ids)
                    value = obj.get(id_column)
                    if isinstance(value, dict | list | bool):
                        raise ValueError(f"field {id_column!r}: expected a string or a number, got {type(value).__name__}")
                    item_id = _id_text(value)
                    if item_id is None:
                        raise ValueError(f"no id in field {id_column!r}" if id_column in obj else f"no field {id_column!r}" + (
                            "" if id_required else " (the file's first item has one: every item needs its id)"))
                features = obj.get("features")
                if features is None and "features_b64" in obj:  # (the items topic's other layout: base64 float32)
                    features = b64_features(str(item_id), obj["features_b64"])
            except SchemaError as exc:
                _report(f"{path}:{lineno}: field {exc.field!r}: {exc.reason}", on_error)
                continue
            except ValueError as exc:
                _report(f"{path}:{lineno}: {exc}", on_error)
                continue
            yield index, item_id, features, obj.get("metadata") or {}, f"{path}:{lineno}"


def read_items(
    path: str | Path, *, id_column: str | None = "id", id_required: bool = False, exclude: Sequence[str] = (),
    on_error: Callable[[str], None] | None = None, on_feature_names: Callable[[list[str]], None] | None = None,
    id_prefix: str | None = None, n_features: int | None = None, known: Sequence[str] | None = None, where: bool = False,
) -> Iterator[Any]:
    """Yield ``(id or None, features, metadata)`` per row of a CSV, CSV.gz, Parquet or JSONL file (``where``: and where
    the row is, ``"FILE:LINE"`` or ``"FILE: row N"``, for a later check to name).

    A table's feature column names (its header) go to ``on_feature_names`` once it is read, before its first row.

    ``exclude`` names columns that are not features (each must exist, or a typo would send a
    label as a feature); ``id_column`` may be absent (ids are then ``None``, or ``id_prefix`` and the
    row's 0-based place in the file: the same id for the same row however many rows before it are refused)
    unless ``id_required``. Ids are read as text (``001`` stays ``001``). A table's features are the columns
    ``simulate`` takes (:func:`activestream.tables.feature_columns`); ``n_features`` (the campaign's width)
    refuses a table with another number of them (naming the columns by the campaign's names, ``known``). A JSONL
    line that is not a JSON object, a row whose id is null or empty, and a table row with a missing or non-numeric
    feature cell is passed to ``on_error`` as
    ``"FILE:LINE: reason"`` (CSV and Parquet: ``"FILE: row N: item 'x': column 'c': reason"``) and skipped
    (without ``on_error``: ``ValueError``). The rest of a JSONL item is checked by the scorer's decoder (see
    :func:`checked_payload`).

    Raises
    ------
    DatasetError
        (a ``ValueError``) naming the file: another extension, a table that cannot be read or does not have
        ``n_features`` feature columns.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.name.lower().endswith(JSONL_SUFFIXES):
        if exclude:  # (harmless: nothing else in a JSONL item is a feature)
            log.warning("%s: --exclude ignored: a JSONL item's features are its 'features' field", p)
        rows = _jsonl_rows(p, id_column, id_required, on_error)
    elif p.name.lower().endswith(TABLE_SUFFIXES):
        rows = _table_rows(p, id_column, exclude, id_required, on_error, on_feature_names, n_features, known)
    else:  # (a .json array or an .npz is not CSV)
        raise DatasetError(f"{p}: unsupported file type; use {', '.join((*TABLE_SUFFIXES, *JSONL_SUFFIXES))}")
    return _with_ids(p, rows, id_prefix, id_column, where)


def _with_ids(path: Path, rows: Iterable[tuple[int, str | None, Any, dict[str, Any], str]], id_prefix: str | None, id_column: str | None,
              where: bool) -> Iterator[Any]:
    """``rows`` with row-number ids (``id_prefix`` and the row's place) where they have none: said once, as another
    file without ids reuses them (the campaign keeps the first item of an id)."""
    told = False
    for i, item_id, feats, md, at in rows:
        if item_id is None and id_prefix is not None:
            if not told:
                log.warning("%s: no %r column or field: the items' ids are their rows' places (%s0, %s1, ...); another file without ids "
                            "reuses them, and the campaign keeps the first item of an id: give each file its own --id-prefix, or ids",
                            path, id_column, id_prefix, id_prefix)
                told = True
            item_id = f"{id_prefix}{i}"
        yield (item_id, feats, md, at) if where else (item_id, feats, md)


def checked_payload(payload: bytes, item_id: str, n_features: int | None, feature_names: Sequence[str] | None) -> tuple[str | None, int | None]:
    """What the scorer's decoder would refuse in an items-topic ``payload`` (``"item 'x': field 'f': reason"``, ``None``: nothing),
    and the feature width rows are held to from then on (``n_features``, else this payload's when it is good)."""
    try:
        item = decode_item(payload, n_features=n_features, feature_names=feature_names, key=item_id)
    except SchemaError as exc:
        return str(exc), n_features
    return None, n_features if n_features is not None else int(item.features.size)


def encode_row(item_id: str, features: Any, metadata: dict[str, Any], *, raw: bool = False) -> bytes:
    """One items-topic payload; float vectors go binary (fast to decode), other shapes as given.

    ``raw=True`` writes float vectors without metadata in the raw layout
    (:data:`schemas.records.RAW_ITEM_MAGIC`), the fastest to decode: a table's rows, and a JSONL line's list of numbers.
    """
    if raw and not metadata and isinstance(features, list) and features:
        # Numbers the scorer's decoder takes (its own check): the raw layout; else as given, for that check to name the bad value.
        with contextlib.suppress(SchemaError):
            features = feature_vector(item_id, features, None)
    if isinstance(features, np.ndarray):
        return Item(item_id, features, metadata).encode(binary=True, raw=raw and not metadata)
    return json.dumps({"schema": "item.v1", "id": item_id, "features": features, "metadata": metadata}).encode()

