"""The model version record (``model_version.v1``): a trained model published to the scorers."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from activestream.schemas.codec import dump_object, load_object
from activestream.schemas.errors import DecodeError
from activestream.schemas.fields import LabelValue

MODEL_VERSION_SCHEMA = "model_version.v1"


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
    if not all(isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool)) for c in classes):
        raise DecodeError(vid, "classes", "expected strings or integers")
    task = obj.get("task", "multiclass")
    if task not in ("multiclass", "multilabel"):
        raise DecodeError(vid, "task", f"unknown task {str(task)[:50]!r}")
    metrics = obj.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(_is_number(v) for v in metrics.values()):
        raise DecodeError(vid, "metrics", "expected an object of finite numbers")
    uri = obj.get("artifact_uri")
    if uri is not None and not isinstance(uri, str):
        raise DecodeError(vid, "artifact_uri", "expected a string")
    n_labels = obj.get("n_labels", 0)
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 0:
        raise DecodeError(vid, "n_labels", "expected an integer >= 0")
    digest = obj.get("label_ids_digest", "")
    if not isinstance(digest, str):
        raise DecodeError(vid, "label_ids_digest", "expected a string")
    created_at = obj.get("created_at", 0.0)
    if not _is_number(created_at):
        raise DecodeError(vid, "created_at", "expected a finite number")
    return ModelVersion(
        version=version,
        onnx=onnx,
        sha256=sha,
        classes=tuple(classes),
        task=task,
        metrics={str(k): float(v) for k, v in metrics.items()},
        artifact_uri=uri,
        n_labels=n_labels,
        label_ids_digest=digest,
        created_at=float(created_at),
    )


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
