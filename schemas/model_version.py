"""The model version record (``model_version.v1``): a trained model published to the scorers."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import LabelValue

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
    """Decode a model version and check its sha256 when the bytes are inline."""
    obj = load_object(payload)
    version = obj.get("version")
    vid = f"model v{version}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DecodeError(vid, "version", "expected a positive integer")
    sha = obj.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DecodeError(vid, "sha256", "expected 64 hex characters")
    onnx = None
    if "onnx_b64" in obj:
        try:
            onnx = base64.b64decode(obj["onnx_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise DecodeError(vid, "onnx_b64", "not valid base64") from None
        if ModelVersion.digest(onnx) != sha:
            raise DecodeError(vid, "sha256", "does not match the ONNX bytes")
    elif not obj.get("artifact_uri"):
        raise DecodeError(vid, "onnx_b64", "missing (give 'onnx_b64' or 'artifact_uri')")
    classes = obj.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DecodeError(vid, "classes", "expected a non-empty list")
    task = obj.get("task", "multiclass")
    if task not in ("multiclass", "multilabel"):
        raise DecodeError(vid, "task", f"unknown task {task!r}")
    source = obj.get("source", "retrainer")  # (records written before the field: the retrainer's)
    if source not in SOURCES:
        raise DecodeError(vid, "source", f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return ModelVersion(
        version=version,
        onnx=onnx,
        sha256=sha,
        classes=tuple(classes),
        task=task,
        metrics=dict(obj.get("metrics") or {}),
        artifact_uri=obj.get("artifact_uri"),
        n_labels=int(obj.get("n_labels", 0)),
        label_ids_digest=str(obj.get("label_ids_digest", "")),
        created_at=float(obj.get("created_at", 0.0)),
        source=source,
    )
