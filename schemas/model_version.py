"""The model version record (``model_version.v1``): a trained model published to the scorers."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError, show
from activestream.schemas.fields import LabelValue, finite_number, integer, is_text, label_value, optional_text

MODEL_VERSION_SCHEMA = "model_version.v1"
#: Who published a version: the retrainer, or a user (``activestream publish-model``).
SOURCES = ("retrainer", "user")


@dataclass(frozen=True)
class ModelVersion:
    """A trained model published to the scorers.

    Parameters
    ----------
    version : monotonically increasing version number.
    onnx : the ONNX model bytes (or ``None`` when ``artifact_uri`` points to them).
    sha256 : hex digest of the ONNX bytes; scorers refuse a mismatch.
    classes : class labels in the order of the model's probability columns.
    task : ``"multiclass"`` or ``"multilabel"``.
    metrics : validation figures (held-out score, n_labels, ...).
    source : ``"retrainer"`` (trained by the retrainer) or ``"user"`` (published with
        ``activestream publish-model``: the retrainer holds its own versions until resumed).
    """

    version: int
    onnx: bytes | None
    sha256: str
    classes: tuple[LabelValue, ...]
    task: str = "multiclass"
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    artifact_uri: str | None = None
    n_labels: int = 0
    label_ids_digest: str = ""
    created_at: float = dataclasses.field(default_factory=time.time)
    source: str = "retrainer"

    @staticmethod
    def digest(onnx: bytes) -> str:
        """Hex sha256 of the ONNX bytes, as ``sha256`` carries it."""
        return hashlib.sha256(onnx).hexdigest()

    def encode(self) -> bytes:
        """JSON bytes; inline ONNX bytes go as base64 (``onnx_b64``)."""
        obj: dict[str, Any] = {
            "schema": MODEL_VERSION_SCHEMA,
            "version": self.version,
            "sha256": self.sha256,
            "classes": list(self.classes),
            "task": self.task,
            "metrics": self.metrics,
            "n_labels": self.n_labels,
            "label_ids_digest": self.label_ids_digest,
            "created_at": self.created_at,
            "source": self.source,
        }
        if self.onnx is not None:
            obj["onnx_b64"] = base64.b64encode(self.onnx).decode()
        if self.artifact_uri is not None:
            obj["artifact_uri"] = self.artifact_uri
        return dump_object(obj)


def decode_model_version(payload: bytes | str) -> ModelVersion:
    """Decode a model version, check every field's type and its sha256 when the bytes are inline.

    Raises
    ------
    DecodeError
        Naming the version (``"model v<version>"``), the field and the reason; the only
        exception raised, for any payload.
    """
    try:
        return _decode_model_version(payload)
    except DecodeError:
        raise
    except Exception as exc:  # the safety net (see decode_item)
        raise DecodeError.from_unexpected(None, exc) from exc


def _source(obj: dict[str, Any], vid: str) -> str:
    """Who published the version: ``retrainer`` (also for records written before the field) or ``user``."""
    source = obj.get("source", "retrainer")
    if source not in SOURCES:
        raise DecodeError(vid, "source", f"unknown source {show(source)}; expected one of {', '.join(SOURCES)}")
    return str(source)


def _decode_model_version(payload: bytes | str) -> ModelVersion:
    obj = load_object(payload)
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63:
        raise DecodeError(None, "version", f"expected a positive integer within 64 bits, got {show(version)}")
    vid = f"model v{version}"
    sha = obj.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise DecodeError(vid, "sha256", "expected 64 lowercase hex characters")
    onnx = None
    if "onnx_b64" in obj:
        if not isinstance(obj["onnx_b64"], str):
            raise DecodeError(vid, "onnx_b64", "expected a base64 string")
        try:
            onnx = base64.b64decode(obj["onnx_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError(vid, "onnx_b64", "not valid base64") from None
        if ModelVersion.digest(onnx) != sha:
            raise DecodeError(vid, "sha256", "does not match the ONNX bytes")
    elif not obj.get("artifact_uri"):
        raise DecodeError(vid, "onnx_b64", "missing (give 'onnx_b64' or 'artifact_uri')")
    artifact_uri = optional_text(obj, vid, "artifact_uri", None)
    classes = obj.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DecodeError(vid, "classes", "expected a non-empty list")
    for i, c in enumerate(classes):
        label_value(vid, f"classes[{i}]", c)
    task = obj.get("task", "multiclass")
    if task not in ("multiclass", "multilabel"):
        raise DecodeError(vid, "task", f"unknown task {show(task)}")
    source = _source(obj, vid)
    metrics = obj.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise DecodeError(vid, "metrics", "expected an object of numbers")
    figures = {}
    for name in metrics:
        if not is_text(name):
            raise DecodeError(vid, "metrics", "a name is not valid Unicode text (holds a lone surrogate)")
        try:
            figures[name] = finite_number(metrics, vid, name, None)
        except DecodeError as exc:
            raise DecodeError(vid, f"metrics.{name}", exc.reason) from None
    return ModelVersion(
        version=version,
        onnx=onnx,
        sha256=sha,
        classes=tuple(classes),
        task=task,
        metrics=figures,
        artifact_uri=artifact_uri,
        n_labels=integer(obj, vid, "n_labels", 0, minimum=0),
        label_ids_digest=optional_text(obj, vid, "label_ids_digest", None) or "",
        created_at=finite_number(obj, vid, "created_at", 0.0),
        source=source,
    )


_SHA256 = re.compile("[0-9a-f]{64}")
