"""Models only from the wire or a configured store: artifact_uri is read only under an allowed directory, safely."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import Trainer
from activestream.schemas import DecodeError, ModelVersion, decode_model_version
from activestream.scorer.versions import ArtifactStore, load_model_version


@pytest.fixture(scope="module")
def onnx() -> bytes:
    X = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    return to_onnx(Trainer().fit(X, list((X[:, 0] > 0).astype(int))))


def by_uri(uri: str, data: bytes) -> ModelVersion:
    return ModelVersion(version=3, onnx=None, sha256=ModelVersion.digest(data), classes=(0, 1), artifact_uri=uri)


def refused(mv: ModelVersion, store: ArtifactStore | None, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as info:
        load_model_version(mv, store)
    assert info.value.field == "artifact_uri"


def test_artifacts_are_refused_unless_a_store_is_configured(tmp_path: Path, onnx: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx)
    refused(by_uri(str(path), onnx), None, "reading model artifacts is off")
    refused(by_uri(f"file://{path}", onnx), ArtifactStore(), "reading model artifacts is off")


def test_an_artifact_under_the_store_loads(tmp_path: Path, onnx: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx)
    store = ArtifactStore.from_setting(str(tmp_path))
    for uri in (str(path), f"file://{path}"):
        assert load_model_version(by_uri(uri, onnx), store).n_features == 4
    with pytest.raises(DecodeError, match="sha256"):
        load_model_version(by_uri(str(path), onnx + b"x"), store)


def test_paths_outside_the_store_other_schemes_and_escapes_are_refused(tmp_path: Path, onnx: bytes) -> None:
    store_dir, outside = tmp_path / "store", tmp_path / "elsewhere"
    store_dir.mkdir()
    outside.mkdir()
    (outside / "m.onnx").write_bytes(onnx)
    (store_dir / "link.onnx").symlink_to(outside / "m.onnx")
    store = ArtifactStore.from_setting(str(store_dir))
    refused(by_uri(str(outside / "m.onnx"), onnx), store, "not under")
    refused(by_uri(str(store_dir / ".." / "elsewhere" / "m.onnx"), onnx), store, "not under")
    refused(by_uri(str(store_dir / "link.onnx"), onnx), store, "not under")  # a symlink out of the store
    refused(by_uri("m.onnx", onnx), store, "not under")  # relative: relative to what?
    refused(by_uri("/etc/passwd", onnx), store, "not under")
    refused(by_uri("http://example.com/m.onnx", onnx), store, "scheme 'http' is not allowed")
    refused(by_uri(f"file://otherhost{store_dir}/m.onnx", onnx), store, "not allowed")
    refused(by_uri(str(store_dir / "missing.onnx"), onnx), store, "cannot open")
    refused(by_uri(str(store_dir), onnx), store, "not a regular file")


def test_a_fifo_does_not_block_the_scorer(tmp_path: Path, onnx: bytes) -> None:
    """The issue's trigger: artifact_uri pointed at a FIFO blocked the scorer ~90 s."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def load() -> None:
        try:
            load_model_version(by_uri(str(fifo), onnx), ArtifactStore.from_setting(str(tmp_path)))
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result.append(exc)

    t0 = time.monotonic()
    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(5.0)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert time.monotonic() - t0 < 2.0
    assert isinstance(result[0], DecodeError) and "not a regular file" in str(result[0])


def test_an_artifact_over_the_size_limit_is_refused(tmp_path: Path, onnx: bytes) -> None:
    path = tmp_path / "big.onnx"
    path.write_bytes(b"\0" * (2 * 2**20 + 1))
    refused(by_uri(str(path), onnx), ArtifactStore.from_setting(str(tmp_path), max_mb=2), "over the 2097152-byte limit")


def record(**fields: object) -> bytes:
    blob = b"onnx bytes"
    obj: dict[str, object] = {"schema": "model_version.v1", "version": 2, "sha256": ModelVersion.digest(blob),
                              "onnx_b64": base64.b64encode(blob).decode(), "classes": [0, 1]}
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


@pytest.mark.parametrize(("fields", "field"), [
    ({"metrics": [1, 2]}, "metrics"),
    ({"metrics": {"holdout_accuracy": "high"}}, "metrics"),
    ({"metrics": {"x": None}}, "metrics"),
    ({"n_labels": "many"}, "n_labels"),
    ({"n_labels": -1}, "n_labels"),
    ({"n_labels": 1.5}, "n_labels"),
    ({"created_at": "yesterday"}, "created_at"),
    ({"created_at": [1]}, "created_at"),
    ({"label_ids_digest": 5}, "label_ids_digest"),
    ({"artifact_uri": 5, "onnx_b64": ...}, "artifact_uri"),
    ({"artifact_uri": ["/x"]}, "artifact_uri"),
    ({"classes": [[0], {"a": 1}]}, "classes"),
    ({"classes": [None, 1.5]}, "classes"),
    ({"task": ["multiclass"]}, "task"),
    ({"onnx_b64": 12}, "onnx_b64"),
])
def test_a_model_record_with_bad_field_types_is_a_decode_error(fields: dict[str, object], field: str) -> None:
    """The issue's trigger: bad field types in a model record raised uncaught errors (ValueError, TypeError)."""
    with pytest.raises(DecodeError) as info:
        decode_model_version(record(**fields))
    assert info.value.field == field or info.value.field.startswith((f"{field}.", f"{field}["))  # (the decoder may name the element)


def test_a_well_typed_model_record_decodes() -> None:
    mv = decode_model_version(record(metrics={"holdout_accuracy": 0.9, "n_control": 3}, n_labels=7, created_at=5, label_ids_digest="ab"))
    assert mv.metrics == {"holdout_accuracy": 0.9, "n_control": 3.0} and mv.n_labels == 7 and mv.created_at == 5.0
