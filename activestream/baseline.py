"""Labeled rows of a baseline file (CSV, CSV.gz, Parquet, JSONL) for ``activestream import-labels``.

Each row gives an item id, its label (one column) or label set (several 0/1 columns, a shared
prefix, or a list column, as ``simulate`` takes them), its features (the other numeric
columns, by name) and its metadata (the other columns). A row that cannot be used is reported
as ``FILE: row N: reason`` and skipped; the others still go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from activestream.producer import JSONL_SUFFIXES
from activestream.schemas import Item, Label, coerce_label_value, label_kinds, not_a_class
from activestream.tables import (
    TABLE_SUFFIXES,
    DatasetError,
    campaign_order,
    check_unique_columns,
    columns_named,
    export_bookkeeping,
    is_numeric,
    json_value,
    label_set,
    label_sets,
    mostly_numbers,
    number,
    read_table,
    require_columns,
    tag_columns,
    width_mismatch,
)
from activestream.tables import (
    label_columns as label_columns_of,
)

if TYPE_CHECKING:
    from activestream.rankedqueue import RankedQueue
    from activestream.streams.bus import Bus
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

LabelValue = str | int
BASELINE_SOURCE = "baseline"  # the labels' source, and the default labeler id
BATCH = 500  # rows per round trip to Redis and flush of the bus


@dataclass(frozen=True)
class BaselineRow:
    """One usable row.

    Parameters
    ----------
    row : 1-based row number in the file (JSONL: its line).
    item_id : the item.
    label : its class (multi-class), else ``None``.
    labels : its label set (multi-label), else ``None``.
    features : (n_features,) float32, in the order of the file's ``feature_names``.
    metadata : the row's other columns (JSON values).
    """

    row: int
    item_id: str
    label: LabelValue | None
    labels: tuple[LabelValue, ...] | None
    features: np.ndarray
    metadata: dict[str, Any]


@dataclass(frozen=True)
class BaselineFile:
    """A baseline file's layout and rows (read lazily, once)."""

    path: Path
    feature_names: tuple[str, ...]
    label_columns: tuple[str, ...]
    multilabel: bool
    rows: Iterator[BaselineRow]


def label_id_for(item_id: str, label: LabelValue | None, labels: Sequence[LabelValue] | None) -> str:
    """The deterministic label id of an imported label: the same row imported twice is the same label.

    >>> label_id_for("a", 1, None) == label_id_for("a", 1, None) != label_id_for("a", 2, None)
    True
    """
    answer: Any = sorted(labels, key=str) if labels is not None else label
    digest = hashlib.sha256(json.dumps([item_id, answer], sort_keys=True).encode()).hexdigest()
    return f"import:{digest[:32]}"


def class_value(v: Any) -> LabelValue | None:
    """A label cell as a class: ints stay ints, integral floats become ints, text stays text; ``None`` when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else str(v)
    text = str(v)
    return text if text.strip() else None


def read_baseline(
    path: str | Path, *, id_column: str, label_columns: Sequence[str], exclude: Sequence[str] = (),
    feature_names: Sequence[str] | None = None, on_error: Callable[[str], None],
) -> BaselineFile:
    """Open a baseline file and check its columns; its rows are read as they are iterated.

    Parameters
    ----------
    path : CSV (plain or compressed), Parquet, or JSONL (one flat JSON object per line, or the
        items topic's layout: a ``features`` list and a ``metadata`` object, as ``produce`` reads).
    id_column : the item id column (must exist).
    label_columns : one column, several 0/1 columns, or a prefix shared by several (multi-label).
    exclude : columns that are neither features nor metadata.
    feature_names : the feature columns in the campaign's order (``ACTIVESTREAM_FEATURE_NAMES``);
        ``None``: every other numeric column, in file order.
    on_error : given ``"FILE: row N: reason"`` for each row skipped.

    Raises
    ------
    DatasetError
        One line naming the file and the column: no such file, another format, a column missing.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    name = p.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        columns, numeric, meta_only, records = _jsonl_records(p, id_column, on_error, feature_names)
    elif name.endswith(TABLE_SUFFIXES):
        table = read_table(p, text_columns=[id_column])
        columns = list(table.column_names)
        rows_ = table.to_pylist()
        # A text column whose cells are mostly numbers is a feature with a few bad cells (each row's problem), not metadata.
        numeric = {c for c in columns if is_numeric(table.column(c).type) or mostly_numbers(r.get(c) for r in rows_)}
        records = list(enumerate(rows_, start=1))
        meta_only = set()
    else:
        raise DatasetError(f"{p}: unsupported file type; use {', '.join((*TABLE_SUFFIXES, *JSONL_SUFFIXES))}")
    require_columns(p, columns, "--id-column", [id_column])
    exclude = list(columns_named(p, columns, exclude, "--exclude"))  # (a prefix too: --exclude tag_)
    classes = label_columns_of(p, columns, label_columns)  # (column -> class name: a prefix's columns less the prefix)
    chosen = list(classes)
    skip = {id_column, *chosen, *exclude, *export_bookkeeping(p, columns, {id_column, *chosen})}
    if feature_names is not None:
        require_columns(p, columns, "feature (ACTIVESTREAM_FEATURE_NAMES)", feature_names)
        features = list(feature_names)
    else:
        features = [c for c in columns if c in numeric and c not in skip and c not in meta_only]
    if not features:
        raise DatasetError(f"{p}: no numeric feature column besides the id and label column(s)")
    meta_cols = [c for c in columns if c not in skip and c not in features]
    # Several 0/1 columns, or one list column (a list in any row: the label set itself), make a multi-label file.
    # (simulate's rule: every label cell a set, or none; a mix is refused)
    multilabel = tag_columns(classes) or label_sets(p, chosen[0], [rec.get(chosen[0]) for _, rec in records]) is not None
    rows = _rows(p, iter(records), id_column, classes, features, meta_cols, on_error)
    return BaselineFile(p, tuple(features), tuple(chosen), multilabel, rows)


def _flat_item(obj: dict[str, Any], feature_names: Sequence[str] | None, meta_only: set[str], from_list: set[str]) -> dict[str, Any]:
    """An object in the items topic's JSON layout (``features`` a list, ``metadata`` an object) as a flat row.

    The list's values are named by ``feature_names`` when they are as many, else ``feature_0``,
    ``feature_1``, ...; a named-field record (``{"alcohol": 13.2, ...}``) names its own. Those names are added to
    ``from_list`` (features, whatever their cells hold), the metadata's keys to ``meta_only`` (never features).
    """
    features, metadata = obj.get("features"), obj.get("metadata")
    if isinstance(features, dict):  # (the named-field records produce sends: each name a column)
        named = {str(k): v for k, v in features.items()}
    elif isinstance(features, list):
        names = feature_names if feature_names is not None and len(feature_names) == len(features) else [f"feature_{j}" for j in range(len(features))]
        named = dict(zip(names, features, strict=True))
    else:
        return obj
    from_list.update(named)
    flat = {k: v for k, v in obj.items() if k not in ("features", "metadata", "schema")}
    flat.update(named)
    if isinstance(metadata, dict):
        meta_only.update(metadata)
        flat.update({k: v for k, v in metadata.items() if k not in flat})
    return flat


def _jsonl_records(
    p: Path, id_column: str, on_error: Callable[[str], None], feature_names: Sequence[str] | None
) -> tuple[list[str], set[str], set[str], list[tuple[int, dict[str, Any]]]]:
    """A JSONL file's objects (a bad line is reported and skipped): its columns in order of first use, the numeric ones,
    the metadata-only ones (items-layout ``metadata``), the rows.

    In the items layout every value of the ``features`` list is a feature (a bad one is its row's problem), and
    the list's length is the file's most common one: a row with another is reported and skipped.
    """
    objs: list[tuple[int, dict[str, Any]]] = []
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                on_error(f"{p}: row {lineno}: not a JSON object ({exc})")
                continue
            if not isinstance(obj, dict):
                on_error(f"{p}: row {lineno}: expected a JSON object, got {type(obj).__name__}")
                continue
            objs.append((lineno, obj))
    widths = Counter(len(o["features"]) for _, o in objs if isinstance(o.get("features"), list))
    width = widths.most_common(1)[0][0] if widths else None
    good: list[tuple[int, dict[str, Any]]] = []
    meta_only: set[str] = set()
    from_list: set[str] = set()
    for lineno, obj in objs:
        features = obj.get("features")
        if isinstance(features, list) and len(features) != width:
            about = f"item {str(obj[id_column])!r}: " if isinstance(obj.get(id_column), str | int) else ""
            on_error(f"{p}: row {lineno}: {about}field 'features': {len(features)} values, where the file's other rows have {width}")
            continue
        good.append((lineno, _flat_item(obj, feature_names, meta_only, from_list)))
    columns = list(dict.fromkeys(k for _, obj in good for k in obj))
    check_unique_columns(p, columns)
    numeric = from_list | {c for c in columns if c not in meta_only and mostly_numbers(obj.get(c) for _, obj in good)}
    return columns, numeric, meta_only, good


def _rows(
    p: Path, records: Iterator[tuple[int, dict[str, Any]]], id_column: str, chosen: dict[str, str], features: Sequence[str],
    meta_cols: Sequence[str], on_error: Callable[[str], None],
) -> Iterator[BaselineRow]:
    for row_no, rec in records:
        try:
            yield _row(row_no, rec, id_column, chosen, features, meta_cols)
        except ValueError as exc:
            on_error(f"{p}: row {row_no}: {exc}")


def _row(row_no: int, rec: dict[str, Any], id_column: str, chosen: dict[str, str], features: Sequence[str],
         meta_cols: Sequence[str]) -> BaselineRow:
    """One row, or ``ValueError`` naming the item (when it has an id) and the column (``chosen``: label column -> class name)."""
    raw_id = rec.get(id_column)
    item_id = None if raw_id is None or isinstance(raw_id, dict | list | bool) else str(raw_id)
    if not item_id or not item_id.strip():
        raise ValueError(f"column {id_column!r}: no item id")
    where = f"item {item_id!r}: column"
    first = next(iter(chosen))
    label: LabelValue | None = None
    labels: tuple[LabelValue, ...] | None = None
    if tag_columns(chosen):  # 0/1 tag columns: the label set is the names of the ones set
        picked = []
        for c in chosen:
            v = rec.get(c)
            flag = number(v)  # (text too: a column with one bad cell reads as text, and its "0" and "1.0" are still flags)
            if flag not in (0.0, 1.0):
                raise ValueError(f"{where} {c!r}: a multi-label column must hold 0 or 1, got {v!r}")
            if flag == 1.0:
                picked.append(chosen[c])
        labels = tuple(picked)
    elif (cell := label_set(rec.get(first))) is not None:  # a list column (or JSON lists, as export writes CSV): the label set itself
        values = [class_value(v) for v in cell]
        if any(v is None for v in values):
            raise ValueError(f"{where} {first!r}: a missing value inside the label list")
        labels = tuple(dict.fromkeys(v for v in values if v is not None))  # (a tag given twice is one tag)
    else:
        label = class_value(rec.get(first))
        if label is None:
            raise ValueError(f"{where} {first!r}: no label")
    vec = np.empty(len(features), dtype=np.float32)
    for j, c in enumerate(features):
        v = rec.get(c)
        value = number(v)
        if value is None or not math.isfinite(value):
            raise ValueError(f"{where} {c!r}: feature is not a finite number ({v!r})")
        vec[j] = value
    metadata = {c: json_value(rec[c]) for c in meta_cols if rec.get(c) is not None}
    return BaselineRow(row_no, item_id, label, labels, vec, metadata)


def check_campaign(queue: RankedQueue, feature_names: tuple[str, ...], *, multilabel: bool, path: str) -> list[int] | None:
    """Refuse a file whose shape the campaign cannot take: another feature width, or the other kind of answer.

    Returns
    -------
    Where each of the campaign's recorded features is among the file's ``feature_names`` when they are the same names
    in another order (:func:`in_order` puts the rows in the campaign's order), else ``None``.

    Raises
    ------
    DatasetError
        Naming the file and what differs.
    """
    from activestream.rankedqueue.keys import ANSWER_FIELDS, META_N_FEATURES

    held = queue.get_meta(META_N_FEATURES)
    if held is not None and int(held) != len(feature_names):
        raise DatasetError(f"{path}: {width_mismatch(feature_names, int(held), queue.feature_names())}")
    field = ANSWER_FIELDS["multilabel" if multilabel else "multiclass"]
    agreed = queue.agree_meta("label_field", field)
    if agreed != field:
        raise DatasetError(f"{path}: this campaign's answers come as {agreed!r}, the file gives {field!r}")
    recorded = queue.record_feature_names(feature_names, first_wins=True)  # (for export --with-features and the labeling page)
    return campaign_order(feature_names, recorded)


def in_order(rows: Iterable[BaselineRow], order: list[int] | None) -> Iterator[BaselineRow]:
    """``rows`` with their features put in the campaign's ``order`` (:func:`check_campaign`; ``None``: as they are)."""
    for r in rows:
        yield r if order is None else dataclasses.replace(r, features=r.features[order])


def import_rows(rows: Iterable[BaselineRow], bus: Bus, topics: Topics, queue: RankedQueue, *, labeler_id: str = BASELINE_SOURCE,
                control: bool = False, batch: int = BATCH, path: str = "", on_error: Callable[[str], None] | None = None,
                classes: Sequence[LabelValue] | None = None) -> dict[str, int]:
    """Import labeled rows into a campaign (``activestream import-labels``).

    Each row's label goes to the labels topic (``source: baseline``, a label id derived from
    the item id and the answer, the row's features), its item leaves the queue whatever holds
    it, and an item the queue never met is produced to the items topic after its label.

    Parameters
    ----------
    rows : the file's usable rows.
    bus, topics, queue : the campaign.
    labeler_id : who the labels are from.
    control : the rows are a uniform random sample of the pool (control labels).
    batch : rows per round trip.
    path, on_error : a row whose label this campaign cannot take (a class of the other type:
        ``"cat"`` where labels are integers, one outside ``classes``) is given to ``on_error`` as
        ``"FILE: row N: reason"`` and skipped (without ``on_error``: ``ValueError``).
    classes : the campaign's declared classes (``ACTIVESTREAM_CLASSES``; ``None``: any label).

    Returns
    -------
    Counts: ``imported`` (labels sent), ``already`` (label ids the queue had: imported
    before), ``produced`` (new items).
    """
    counts = {"imported": 0, "produced": 0, "already": 0}
    chunk: list[BaselineRow] = []
    kind: list[str] = []  # the campaign's label type, once known
    for row in rows:
        try:
            row = _campaign_typed(row, queue, kind, classes)
        except ValueError as exc:
            if on_error is None:
                raise
            on_error(f"{path}: row {row.row}: {exc}")
            continue
        chunk.append(row)
        if len(chunk) >= batch:
            _import_batch(chunk, bus, topics, queue, labeler_id, control, counts)
            chunk = []
    if chunk:
        _import_batch(chunk, bus, topics, queue, labeler_id, control, counts)
    return counts


def _campaign_typed(row: BaselineRow, queue: RankedQueue, kind: list[str], classes: Sequence[LabelValue] | None) -> BaselineRow:
    """``row`` with its label(s) as the campaign's type (integers or strings; the first label fixes it), else ``ValueError``.

    ``3`` and ``"3"`` are the same class (as the labeling service takes them); ``"cat"`` in an
    integer campaign, or a label outside the declared ``classes``, would be dead-lettered by the
    retrainer, so it is refused here.
    """
    values = list(row.labels) if row.labels is not None else [row.label]
    column = "labels" if row.labels is not None else "label"
    kinds = label_kinds(values)  # type: ignore[arg-type]
    if len(kinds) > 1:
        raise ValueError(f"item {row.item_id!r}: {column}: mixes integers and strings ({values!r})")
    outside = not_a_class(values, classes) if classes is not None else None  # type: ignore[arg-type]
    if outside is not None:
        raise ValueError(f"item {row.item_id!r}: {column}: {outside}")
    if not kinds:
        return row
    if not kind:
        kind.append(queue.agree_meta("label_kind", next(iter(kinds))))
    if kinds == {kind[0]}:
        return row
    coerced = [coerce_label_value(v, kind[0]) for v in values]  # type: ignore[arg-type]
    if any(c is None for c in coerced):
        raise ValueError(f"item {row.item_id!r}: {column}: this campaign's labels are {kind[0]}; got {values!r}")
    done = tuple(c for c in coerced if c is not None)
    return dataclasses.replace(row, labels=done) if row.labels is not None else dataclasses.replace(row, label=done[0])


def _import_batch(rows: list[BaselineRow], bus: Bus, topics: Topics, queue: RankedQueue, labeler_id: str, control: bool,
                  counts: dict[str, int]) -> None:
    """Publish a batch's labels, take their items out of the queue, then produce the items the queue never met."""
    known = queue.known([r.item_id for r in rows])
    labels = [Label(item_id=r.item_id, label_id=label_id_for(r.item_id, r.label, r.labels), labeler_id=labeler_id, label=r.label,
                    labels=r.labels, features=r.features, source=BASELINE_SOURCE, control=control) for r in rows]
    fresh = [lab for lab in labels if not queue.is_label_id_known(lab.label_id)]  # (imported before: not sent again)
    counts["already"] += len(labels) - len(fresh)
    for lab in fresh:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
    bus.flush()
    # Marked labeled once the label is out and before any item is produced: a crash in between
    # re-sends the same label id (the retrainer counts it once), and a scorer never queues an
    # item the queue holds as labeled.
    for lab in fresh:
        queue.mark_labeled(lab.item_id, lab.label_id)
    counts["imported"] += len(fresh)
    new = [r for r, k in zip(rows, known, strict=True) if not k]
    for r in new:
        bus.publish(topics.items, Item(r.item_id, r.features, r.metadata).encode(binary=True), key=r.item_id.encode())
    bus.flush()
    counts["produced"] += len(new)
