"""The labeled dataset a campaign produced: one row per labeled or auto-accepted item (``activestream export``).

Folded from the labels topic (human and imported baseline labels), the autolabels topic (items
the scorer accepted without a human) and the items topic (each item's metadata, and features
an answer lacks). Rules, per item:

- each labeler's latest label counts (a label updated by the same labeler supersedes the
  earlier one); a label id met twice counts once;
- the final label is the majority of those labelers' answers, ties going to the latest; every
  answer is kept in ``all_labels``; a human or baseline label is final over an auto-label;
- among auto-labels, the latest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from activestream.schemas import DecodeError, Label, decode_item, decode_label
from activestream.schemas.wire_json import as_written
from activestream.tables import EXPORT_COLUMNS

if TYPE_CHECKING:
    from activestream.streams.bus import Bus, Message
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

AUTO = "auto"
FORMATS = (".parquet", ".csv", ".jsonl")


@dataclass
class ItemLabels:
    """What the topics say about one item: each labeler's latest label, the latest auto-label, and the seconds of
    every human label of it (a corrected answer's too: the time was spent)."""

    by_labeler: dict[str, Label] = field(default_factory=dict)
    auto: Label | None = None
    seconds: float = 0.0


def _answer(lab: Label) -> Any:
    return list(lab.labels) if lab.labels is not None else lab.label


def _vote(lab: Label) -> str:
    """What a labeler's answer votes for: a label set whatever the order its labels were given in."""
    if lab.labels is not None:
        return json.dumps(sorted({json.dumps(v) for v in lab.labels}))
    return json.dumps(lab.label)


def _auto_version(lab: Label) -> int | None:
    """An auto-label's model version: its field, else the scorer's labeler id ``auto:v{N}``."""
    if lab.model_version is not None:
        return lab.model_version
    tail = lab.labeler_id.rpartition(":v")[2]
    return int(tail) if tail.isdigit() else None


def fold(labels: Iterable[Label]) -> dict[str, ItemLabels]:
    """Every item's labels, in topic order (the labels topic, then the autolabels topic).

    Parameters
    ----------
    labels : decoded label records; ``source == "auto"`` marks an auto-label.

    Returns
    -------
    Item id -> :class:`ItemLabels`, in the order items were first met.
    """
    out: dict[str, ItemLabels] = {}
    seen: set[str] = set()
    for lab in labels:
        if lab.label_id in seen:  # a redelivery or a second import: counted once
            continue
        seen.add(lab.label_id)
        entry = out.setdefault(lab.item_id, ItemLabels())
        if lab.source == AUTO:
            if entry.auto is None or lab.ts >= entry.auto.ts:
                entry.auto = lab
        else:
            entry.seconds += lab.seconds
            earlier = entry.by_labeler.get(lab.labeler_id)
            if earlier is None or lab.ts >= earlier.ts:  # an update by the same labeler supersedes
                entry.by_labeler[lab.labeler_id] = lab
    return out


def row_of(item_id: str, entry: ItemLabels) -> dict[str, Any]:
    """One export row (without metadata and features) from an item's labels."""
    humans = sorted(entry.by_labeler.values(), key=lambda lab: lab.ts)
    if humans:
        votes = Counter(_vote(lab) for lab in humans)
        top = max(votes.values())
        final = next(lab for lab in reversed(humans) if votes[_vote(lab)] == top)  # ties: the latest
        return {
            "item_id": item_id, "label": _answer(final), "all_labels": [_answer(lab) for lab in humans], "majority_votes": top,
            "source": final.source, "labeler_ids": [lab.labeler_id for lab in humans],
            "seconds": float(entry.seconds), "label_ids": [lab.label_id for lab in humans],
            "labeled_at": final.ts, "times": [lab.ts for lab in humans], "model_version": final.model_version,
            "control": any(lab.control for lab in humans), "auto_confidence": None, "auto_threshold": None,
        }
    auto = entry.auto
    assert auto is not None
    return {
        "item_id": item_id, "label": _answer(auto), "all_labels": [_answer(auto)], "majority_votes": 1, "source": AUTO,
        "labeler_ids": [auto.labeler_id], "seconds": 0.0, "label_ids": [auto.label_id], "labeled_at": auto.ts, "times": [auto.ts],
        "model_version": _auto_version(auto), "control": False, "auto_confidence": auto.confidence, "auto_threshold": auto.threshold,
    }


def final_features(entry: ItemLabels) -> np.ndarray | None:
    """The features the final answer carried (a label's, else the auto-label's)."""
    for lab in sorted(entry.by_labeler.values(), key=lambda lab: -lab.ts):
        if lab.features is not None:
            return lab.features
    return entry.auto.features if entry.auto is not None else None


def decode_all(messages: Iterable[Message], counts: Counter[str]) -> Iterable[Label]:
    """Decode label records; one that cannot be decoded is counted and left out (the retrainer dead-letters it)."""
    for m in messages:
        try:
            yield decode_label(m.value, key=m.key.decode(errors="replace") if m.key is not None else None)
        except DecodeError as exc:
            counts["undecodable"] += 1
            log.warning("%s: offset %d left out: %s", m.topic, m.offset, exc)


def read_items(messages: Iterable[Message], wanted: set[str]) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """The metadata and features of the ``wanted`` items on the items topic (the first copy of each with metadata wins)."""
    out: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    for m in messages:
        key = m.key.decode(errors="replace") if m.key is not None else None
        if key is not None and (key not in wanted or (key in out and out[key][0])):
            continue
        try:
            item = decode_item(m.value, key=key)
        except DecodeError:
            continue  # (the scorer dead-lettered it)
        if item.id in wanted and (item.id not in out or (item.metadata and not out[item.id][0])):
            out[item.id] = (item.metadata, item.features)
    return out


def build_rows(bus: Bus, topics: Topics, *, with_features: bool, feature_names: Sequence[str] | None = None,
               timeout: float = 60.0, holdout_fraction: float = 0.0) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Read the three topics to their current end and build the export's rows.

    Parameters
    ----------
    bus, topics : where the campaign runs (in-process or Kafka).
    with_features : add each item's features as columns.
    feature_names : their names (``None``: ``feature_0``, ``feature_1``, ...).
    timeout : seconds to wait for each topic's end.
    holdout_fraction : the retrainer's (``ACTIVESTREAM_HOLDOUT_FRACTION``): the ``held_out`` column says which items it keeps
        out of training for its no-regression check (a model of your own trained on them, then ``publish-model``, is
        checked on labels it saw, and the retrainer's later versions must beat that inflated score).

    Returns
    -------
    ``(rows, counts)``: one dict per labeled or auto-accepted item; counts of rows by source
    and of records left out (``undecodable``; ``refused``: labels the retrainer dead-lettered, which it
    never trained on, e.g. a class outside the declared ones).
    """
    from activestream.retrainer.logs import dead_lettered_labels
    from activestream.retrainer.training_set import in_holdout

    counts: Counter[str] = Counter()
    refused = dead_lettered_labels(bus, topics, timeout)  # (digests of the label records the retrainer refused)
    read = _read(bus, topics.labels, timeout)
    labels = [m for m in read if not _refused(m, refused)] if refused else read
    counts["refused"] = len(read) - len(labels)
    per_item = fold([*decode_all(labels, counts), *decode_all(_read(bus, topics.auto_labels, timeout), counts)])
    items = read_items(_read(bus, topics.items, timeout), set(per_item))
    rows = []
    for item_id, entry in per_item.items():
        row = row_of(item_id, entry)
        row["held_out"] = in_holdout(item_id, holdout_fraction)
        counts[row["source"]] += 1
        metadata, item_features = items.get(item_id, ({}, None))
        for key, value in metadata.items():
            row[key if key not in EXPORT_COLUMNS else f"metadata.{key}"] = value  # (a key of the export's own: metadata.<key>)
        if with_features:
            vec = final_features(entry)
            vec = vec if vec is not None else item_features
            if vec is not None:
                names = feature_names if feature_names is not None and len(feature_names) == len(vec) else [f"feature_{j}" for j in range(len(vec))]
                row.update(zip(names, as_written(vec), strict=True))
        rows.append(row)
    return rows, counts


def _refused(m: Message, refused: set[bytes]) -> bool:
    """Whether the retrainer dead-lettered label record ``m`` (``refused``: the dead letters' payload digests): its bytes as
    read, or (a dead letter of an earlier version, which wrote the label encoded again) as re-encoded."""
    if hashlib.sha256(m.value).digest() in refused:
        return True
    try:
        again = decode_label(m.value, key=m.key.decode(errors="replace") if m.key is not None else None).encode()
    except DecodeError:
        return False
    return hashlib.sha256(again).digest() in refused


def _read(bus: Bus, topic: str, timeout: float) -> list[Message]:
    reader = bus.consumer([topic], None)  # group-less, from the beginning
    try:
        return reader.read_to_end(timeout)
    finally:
        reader.close()


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """Write the rows as Parquet (list columns as lists), CSV (list columns as JSON text) or JSONL, by ``out``'s suffix.

    Raises
    ------
    ValueError
        For another suffix.
    """
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--out {out}: unsupported format {suffix or '(none)'}; use {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with out.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        return
    import pyarrow as pa

    columns = list(dict.fromkeys(k for row in rows for k in row)) or list(EXPORT_COLUMNS)
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        flat = [{c: json.dumps(row[c]) if isinstance(row.get(c), list | dict) else row.get(c) for c in columns} for row in rows]
        schema = _schema(flat, columns)
        pacsv.write_csv(pa.Table.from_pylist(flat, schema=schema), out)
        return
    import pyarrow.parquet as pq

    full = [{c: row.get(c) for c in columns} for row in rows]
    schema = _schema(full, columns)  # (first: it turns a mixed-type column's values into text)
    pq.write_table(pa.Table.from_pylist(full, schema=schema), out)


def _schema(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """An Arrow schema for the rows; a column whose values mix types (metadata) goes as JSON-ish text, and a list column whose
    elements do (the answers ``1`` and ``"barolo"``) stays a list, of text."""
    import pyarrow as pa

    fields = []
    for c in columns:
        values = [row.get(c) for row in rows if row.get(c) is not None]
        try:
            typ = pa.array(values).type if values else pa.null()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            typ = pa.string()
            if all(isinstance(v, list) for v in values):
                typ = pa.list_(pa.string())
                for row in rows:
                    if isinstance(row.get(c), list):
                        row[c] = [x if isinstance(x, str) else json.dumps(x) for x in row[c]]
                fields.append(pa.field(c, typ))
                continue
            for row in rows:
                if row.get(c) is not None and not isinstance(row[c], str):
                    row[c] = json.dumps(row[c])
        fields.append(pa.field(c, typ))
    return pa.schema(fields)
