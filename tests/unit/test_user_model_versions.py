"""A user's model version (publish-model) and the retrainer: it holds, says so, resumes when told (in-process bus)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from prometheus_client import CollectorRegistry

from activestream.commands.publish_model import ModelRefused, check_model, open_model, parse_classes
from activestream.retrainer.service import Retrainer
from activestream.schemas import Label, ModelVersion, decode_model_version
from activestream.scorer.versions import load_model_version
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import MODEL_KEY, Topics


def linear_onnx(W: np.ndarray, *, output: str = "probabilities", op: str = "Softmax", out_type: int = TensorProto.FLOAT) -> bytes:
    """``features (N, d) -> output (N, k)``: ``op(features @ W)`` (``Identity``: logits; ``Sqrt`` of negatives: NaN)."""
    d, k = W.shape
    nodes = [helper.make_node("MatMul", ["features", "W"], ["z"])]
    if op == "NaN":
        nodes += [helper.make_node("Neg", ["z"], ["nz"]), helper.make_node("Abs", ["nz"], ["a"]), helper.make_node("Neg", ["a"], ["na"]),
                  helper.make_node("Sqrt", ["na"], [output])]
    elif op == "Cast":
        nodes.append(helper.make_node("Cast", ["z"], [output], to=out_type))
    else:
        nodes.append(helper.make_node(op, ["z"], [output], **({"axis": 1} if op == "Softmax" else {})))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", d])],
                              [helper.make_tensor_value_info(output, out_type, ["N", k])], [numpy_helper.from_array(W.astype(np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString()  # type: ignore[no-any-return]


def labels(n: int, start: int = 0, seed: int = 0) -> list[Label]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return [Label(f"i{start + j}", f"l{start + j}", "ann", label=int(X[j, 0] > 0), features=X[j]) for j in range(n)]


def publish_user(bus: InMemoryBus, topics: Topics, version: int, W: np.ndarray) -> ModelVersion:
    data = linear_onnx(W)
    mv = ModelVersion(version=version, onnx=data, sha256=ModelVersion.digest(data), classes=(0, 1), source="user")
    bus.publish(topics.models, mv.encode(), key=MODEL_KEY)
    return mv


def feed(bus: InMemoryBus, topics: Topics, batch: list[Label]) -> None:
    for lab in batch:
        bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())


def versions(bus: InMemoryBus, topics: Topics) -> list[ModelVersion]:
    return [decode_model_version(m.value) for m in bus.messages(topics.models)]


def test_the_source_field_round_trips_and_old_records_read_as_the_retrainers() -> None:
    data = linear_onnx(np.eye(4, 2))
    mv = ModelVersion(version=3, onnx=data, sha256=ModelVersion.digest(data), classes=(0, 1), source="user")
    assert decode_model_version(mv.encode()).source == "user"
    old = mv.encode().replace(b',"source":"user"', b"")
    assert b"source" not in old and decode_model_version(old).source == "retrainer"


def test_the_retrainer_holds_for_a_user_version_until_resumed(caplog: pytest.LogCaptureFixture) -> None:
    bus, topics = InMemoryBus(), Topics("hold")
    registry = CollectorRegistry()
    rt = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0, registry=registry)
    feed(bus, topics, labels(30))
    rt.run(burst=True, timeout=0.0)
    assert rt.version >= 1 and rt.holding is None
    own = rt.version

    publish_user(bus, topics, 50, np.eye(4, 2))  # numbered far above: the retrainer follows it
    feed(bus, topics, labels(30, start=100, seed=1))
    with caplog.at_level("WARNING"):
        rt.run(burst=True, timeout=0.0)
    assert rt.holding == 50 and rt.version == 50
    assert "user model v50 is live: holding" in caplog.text
    assert registry.get_sample_value("activestream_retrainer_holding_user_version", {"namespace": "default"}) == 50
    assert registry.get_sample_value("activestream_retrainer_model_version", {"namespace": "default"}) == 50
    assert rt.retrain() is None and rt.last_error is None  # (holding is a state, in /healthz's holding_user_version: no error)
    assert len(rt.training) == 60  # labels are still read and kept
    assert max(v.version for v in versions(bus, topics) if v.source == "retrainer") == own  # nothing over v50

    restarted = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0)
    restarted.rebuild(5.0)
    restarted.run(burst=True, timeout=0.0)
    assert restarted.holding == 50 and [v.version for v in versions(bus, topics)][-1] == 50  # a restart still holds

    resumed = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0, resume=True)
    resumed.rebuild(5.0)
    assert resumed.holding is None
    resumed.run(burst=True, timeout=0.0)
    newest = versions(bus, topics)[-1]
    assert newest.version == 51 and newest.source == "retrainer" and newest.n_labels == 60  # above the user's, never below


def test_a_user_version_published_while_resumed_holds_again() -> None:
    bus, topics = InMemoryBus(), Topics("again")
    publish_user(bus, topics, 5, np.eye(4, 2))
    rt = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0, resume=True)
    feed(bus, topics, labels(30))
    rt.run(burst=True, timeout=0.0)
    assert rt.version == 6 and rt.holding is None
    publish_user(bus, topics, 7, np.eye(4, 2))
    feed(bus, topics, labels(30, start=100, seed=1))
    rt.run(burst=True, timeout=0.0)
    assert rt.holding == 7 and versions(bus, topics)[-1].version == 7


def test_the_scorer_reads_a_user_models_logits_through_a_softmax() -> None:
    W = np.array([[3.0, -3.0], [0, 0], [0, 0], [0, 0]], dtype=np.float32)
    data = linear_onnx(W, op="Identity")  # logits out
    mv = ModelVersion(version=2, onnx=data, sha256=ModelVersion.digest(data), classes=(0, 1), source="user")
    p = load_model_version(mv).predict_proba_many(np.array([[1, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(p, [[1 / (1 + np.exp(-6)), 1 - 1 / (1 + np.exp(-6))]], rtol=1e-5)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    return path


def test_publish_model_checks_name_the_file_and_the_field(tmp_path: Path) -> None:
    sample = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    ids = [f"i{j}" for j in range(20)]

    with pytest.raises(ModelRefused, match=r"^.*missing\.onnx: no such file$"):
        open_model(tmp_path / "missing.onnx", "multiclass")
    with pytest.raises(ModelRefused, match="not an ONNX model onnxruntime can open"):
        open_model(write(tmp_path, b"not onnx"), "multiclass")
    with pytest.raises(ModelRefused, match="field 'outputs': no probability output among"):
        open_model(write(tmp_path, linear_onnx(np.eye(4, 2), output="label", op="Cast", out_type=TensorProto.INT64)), "multiclass")

    path = write(tmp_path, linear_onnx(np.eye(10, 2)))
    _, wide = open_model(path, "multiclass")
    with pytest.raises(ModelRefused, match=r"field 'inputs': the model takes 10 features; namespace 'ns' holds 4 \(activestream queue info"):
        check_model(path, wide, classes=(0, 1), task="multiclass", width=4, namespace="ns", sample_ids=ids, sample=sample)

    path = write(tmp_path, linear_onnx(np.eye(4, 3)))
    _, three = open_model(path, "multiclass")
    with pytest.raises(ModelRefused, match=r"the probability output has 3 columns; --classes gives 2 classes \(0, 1\)$"):
        check_model(path, three, classes=(0, 1), task="multiclass", width=4, namespace="ns", sample_ids=ids, sample=sample)
    with pytest.raises(ModelRefused, match=r"3 columns; the live model v4 gives 2 classes \(0, 1\): give the model's own with --classes"):
        check_model(path, three, classes=(0, 1), task="multiclass", width=4, namespace="ns", sample_ids=ids, sample=sample,
                    classes_from="the live model v4")

    path = write(tmp_path, linear_onnx(np.eye(4, 2), op="NaN"))
    _, nan = open_model(path, "multiclass")
    with pytest.raises(ModelRefused, match=r"field 'outputs': NaN or infinity for \d+ of 20 rows of namespace 'ns', first item 'i"):
        check_model(path, nan, classes=(0, 1), task="multiclass", width=4, namespace="ns", sample_ids=ids, sample=sample)

    path = write(tmp_path, linear_onnx(np.eye(4, 2), op="Identity"))  # logits are fine
    _, logits = open_model(path, "multiclass")
    assert check_model(path, logits, classes=(0, 1), task="multiclass", width=4, namespace="ns", sample_ids=ids, sample=sample) == 4


def test_classes_follow_the_campaigns_label_kind() -> None:
    data = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString()
    newest = ModelVersion(version=1, onnx=data, sha256=ModelVersion.digest(data), classes=(0, 1, 2))
    assert parse_classes(None, newest, None) == (0, 1, 2)
    assert parse_classes(["2", "0", "1"], newest, None) == (2, 0, 1)
    assert parse_classes(["cat", "dog"], None, "strings") == ("cat", "dog")
    with pytest.raises(ModelRefused, match="--classes cat dog: this campaign's labels are integers"):
        parse_classes(["cat", "dog"], None, "integers")
    with pytest.raises(ModelRefused, match="--classes: no model version is published yet"):
        parse_classes(None, None, None)


def test_a_user_version_that_took_the_retrainers_number_at_the_same_moment_still_holds_it() -> None:
    from activestream.commands.publish_model import newest_other

    bus, topics = InMemoryBus(), Topics("clash")
    rt = Retrainer(bus, topics, task="multiclass", retrain_every=10, holdout_fraction=0.0)
    feed(bus, topics, labels(30))
    rt.run(burst=True, timeout=0.0)
    assert rt.version == 1
    user = publish_user(bus, topics, 1, np.eye(4, 2))  # both read v0 as the newest and took v1
    rt.watch_models()
    assert rt.holding == 1
    # publish-model sees the other v1 and publishes again above it.
    msgs = bus.messages(topics.models)
    other = newest_other(msgs, 1, user.sha256, user.created_at)
    assert other is not None and other.source == "retrainer" and other.version == 1
    assert newest_other([m for m in msgs if decode_model_version(m.value).source == "user"], 1, user.sha256, user.created_at) is None


def test_the_classes_of_a_published_model_follow_its_own_output_order() -> None:
    # (a model of scikit-learn orders its classes sorted; given in the campaign's declared order, barolo grignolino
    # barbera, each probability column was read as another class: the model went live and nothing caught it)
    from skl2onnx import to_onnx as sk_to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    from activestream.commands.publish_model import ModelRefused, in_model_order, onnx_class_labels

    X, y = load_wine(return_X_y=True)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    fitted = LogisticRegression(max_iter=2000).fit(X.astype(np.float32), names)
    blob = sk_to_onnx(fitted, X[:1].astype(np.float32), options={id(fitted): {"zipmap": False}}).SerializeToString()
    assert onnx_class_labels(blob) == ("barbera", "barolo", "grignolino")
    with pytest.raises(ModelRefused, match=r"--classes barolo grignolino barbera: the model's output columns are barbera, barolo, grignolino"):
        in_model_order(("barolo", "grignolino", "barbera"), onnx_class_labels(blob), given=True)
    assert in_model_order(("barolo", "grignolino", "barbera"), onnx_class_labels(blob), given=False) == ("barbera", "barolo", "grignolino")
    assert in_model_order(("barbera", "barolo", "grignolino"), onnx_class_labels(blob), given=True) == ("barbera", "barolo", "grignolino")
    # integer classes; a model trained on codes of the campaign's classes is not compared; a model naming none
    coded = LogisticRegression(max_iter=2000).fit(X.astype(np.float32), y)
    codes = onnx_class_labels(sk_to_onnx(coded, X[:1].astype(np.float32), options={id(coded): {"zipmap": False}}).SerializeToString())
    assert codes == (0, 1, 2) and in_model_order(("barolo", "grignolino", "barbera"), codes, given=True) == ("barolo", "grignolino", "barbera")
    assert in_model_order((2, 0, 1), codes, given=False) == (0, 1, 2)
    from activestream.retrainer.export import to_onnx
    from activestream.retrainer.trainer import Trainer

    assert onnx_class_labels(to_onnx(Trainer().fit(X[:40, :4], list(np.arange(40) % 2)))) is None  # (the retrainer's own)
