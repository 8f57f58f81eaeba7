"""The label record (``label.v1``): a human (or auto-accepted) answer for one item."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from activestream.schemas.codec import dump_object
from activestream.schemas.errors import DecodeError, show
from activestream.schemas.fields import LabelValue, about_item, finite_number, label_value, optional_text, required_text
from activestream.schemas.wire_b64 import b64_features
from activestream.schemas.wire_json import feature_vector

LABEL_SCHEMA = "label.v1"
#: Who gave a label: a labeler, a simulation's oracle, the auto-accept rule, an import (label.v1.schema.json's enum).
SOURCES = ("human", "simulated", "auto", "baseline")
#: Label sources that cost the campaign no labeling (an imported baseline, auto-accepted predictions): the budget counts the others.
FREE_SOURCES = ("baseline", "auto")


@dataclass(frozen=True)
class Label:
    """A human (or auto-accepted) label for one item.

    Parameters
    ----------
    item_id : the labeled item.
    label : the class for single-label items, else ``None``.
    labels : the label set for multi-label items, else ``None``.
    labeler_id : who labeled it.
    seconds : time the labeler spent.
    label_id : idempotence key: a second submit with the same id changes nothing.
    features : (n_features,) float32 vector, attached by the labeling service so the
        retrainer can rebuild its training set from the labels topic alone.
    source : ``human``, ``auto`` (auto-accepted by the scorer), ``baseline`` (imported), ``simulated``.
    control : the item was a uniform random pick (random-control slice, or a random-sample import).
    model_version : the model version that ranked (or auto-accepted) the item, when known.
    confidence, threshold : auto-labels: the model's probability of the label and the threshold it passed.
    audit : the item was auto-accepted and sent to a labeler blind (an audit): the labeling service sets it,
        never the labeler; the retrainer compares ``label`` with ``audited_label``, the auto-label's class.
    """

    item_id: str
    label_id: str
    labeler_id: str
    label: LabelValue | None = None
    labels: tuple[LabelValue, ...] | None = None
    seconds: float = 0.0
    features: np.ndarray | None = None
    source: str = "human"
    ts: float = dataclasses.field(default_factory=time.time)
    control: bool = False
    model_version: int | None = None
    confidence: float | None = None
    threshold: float | None = None
    audit: bool = False
    audited_label: LabelValue | None = None

    def encode(self) -> bytes:
        """JSON bytes; the features, if any, go as base64 float32 (``features_b64``)."""
        obj: dict[str, Any] = {
            "schema": LABEL_SCHEMA,
            "item_id": self.item_id,
            "label_id": self.label_id,
            "labeler_id": self.labeler_id,
            "seconds": float(self.seconds),
            "source": self.source,
            "ts": float(self.ts),
        }
        if self.labels is not None:
            obj["labels"] = list(self.labels)
        else:
            obj["label"] = self.label
        if self.control:
            obj["control"] = True
        if self.audit:
            obj["audit"] = True
            obj["audited_label"] = self.audited_label
        if self.model_version is not None:
            obj["model_version"] = int(self.model_version)
        for name in ("confidence", "threshold"):
            value = getattr(self, name)
            if value is not None:
                obj[name] = float(value)
        if self.features is not None:
            vec = np.asarray(self.features, dtype="<f4")
            obj["features_b64"] = base64.b64encode(vec.tobytes()).decode()
        return dump_object(obj)


def decode_label(payload: bytes | str, *, key: str | None = None) -> Label:
    """Decode and validate one label message.

    Raises
    ------
    DecodeError
        Naming the item, the field and the reason; the only exception raised, for any payload.
    """
    try:
        return _decode_label(payload, key)
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(key, exc) from exc


def _decode_label(payload: bytes | str, key: str | None) -> Label:
    obj, item_id = about_item(payload, key)
    label_id = required_text(obj, item_id, "label_id")
    labeler = required_text(obj, item_id, "labeler_id")
    label: LabelValue | None = None
    labels: tuple[LabelValue, ...] | None = None
    if "labels" in obj:
        raw = obj["labels"]
        if not isinstance(raw, list):
            raise DecodeError(item_id, "labels", "expected a list")
        labels = tuple(label_value(item_id, f"labels[{i}]", v) for i, v in enumerate(raw))
    elif "label" in obj:
        label = label_value(item_id, "label", obj["label"])
    else:
        raise DecodeError(item_id, "label", "missing (give 'label' or 'labels')")
    seconds = finite_number(obj, item_id, "seconds", 0.0, minimum=0.0)
    control = obj.get("control", False)
    if not isinstance(control, bool):
        raise DecodeError(item_id, "control", "expected true or false")
    audit = obj.get("audit", False)
    if not isinstance(audit, bool):
        raise DecodeError(item_id, "audit", "expected true or false")
    audited = label_value(item_id, "audited_label", obj["audited_label"]) if audit and obj.get("audited_label") is not None else None
    features = None
    if "features_b64" in obj:
        features = b64_features(item_id, obj["features_b64"])
        if not np.isfinite(features).all():
            raise DecodeError(item_id, "features_b64", "holds a non-finite number")
    elif "features" in obj:
        features = feature_vector(item_id, obj["features"], None)
    if features is not None and features.size == 0:
        raise DecodeError(item_id, "features", "empty")
    version = obj.get("model_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise DecodeError(item_id, "model_version", "expected an integer >= 0")
    shares = {}
    for name in ("confidence", "threshold"):
        v = obj.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0):
            raise DecodeError(item_id, name, "expected a number in [0, 1]")
        shares[name] = float(v) if v is not None else None
    return Label(
        item_id=item_id,
        label_id=label_id,
        labeler_id=labeler,
        label=label,
        labels=labels,
        seconds=seconds,
        features=features,
        source=_source(obj, item_id),
        ts=finite_number(obj, item_id, "ts", time.time()),
        control=control,
        model_version=version,
        confidence=shares["confidence"],
        threshold=shares["threshold"],
        audit=audit,
        audited_label=audited,
    )


def _source(obj: Mapping[str, Any], item_id: str | None) -> str:
    """The ``source`` field, one of :data:`SOURCES` (``human`` when absent)."""
    source = optional_text(obj, item_id, "source", None) or "human"
    if source not in SOURCES:
        raise DecodeError(item_id, "source", f"unknown source {show(source)}; expected one of {', '.join(SOURCES)}")
    return source
