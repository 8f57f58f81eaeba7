"""Training, ONNX export and the scorer's model loader agree with a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import LinearHeads, NotEnoughClasses, Trainer
from activestream.scorer.model import OnnxClassifier


def test_multiclass_export_matches_reference() -> None:
    d = load_digits()
    heads = Trainer().fit(d.data[:300], list(d.target[:300]))
    assert heads.classes == tuple(range(10)) and heads.W.shape == (1, 64, 10)
    model = OnnxClassifier(to_onnx(heads), output_kind="probabilities")
    assert model.n_features == 64
    p = model.predict_proba_many(d.data[300:400].astype(np.float32))
    np.testing.assert_allclose(p, heads.predict_proba(d.data[300:400]), atol=1e-4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p.argmax(axis=1) == d.target[300:400]).mean() > 0.85


def test_binary_heads_have_two_columns() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    heads = Trainer().fit(X[:200], [["benign", "malignant"][v] for v in y[:200]])
    assert heads.classes == ("benign", "malignant")
    p = OnnxClassifier(to_onnx(heads)).predict_proba_many(X[200:260].astype(np.float32))
    assert p.shape == (60, 2)
    np.testing.assert_allclose(p, heads.predict_proba(X[200:260]), atol=1e-4)


def test_single_class_is_not_enough() -> None:
    with pytest.raises(NotEnoughClasses, match="single class"):
        Trainer().fit(np.random.default_rng(0).normal(size=(5, 3)), [1, 1, 1, 1, 1])


def test_warm_start_then_full_refit() -> None:
    d = load_digits()
    t = Trainer(full_refit_every=3, max_iter=20)
    for n in (100, 150, 200, 250):
        t.fit(d.data[:n], list(d.target[:n]))
    assert t.n_fits == 4  # fits 0 and 3 were full refits, 1-2 warm-started


def test_multilabel_sigmoid_heads_and_constant_heads() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = [tuple(name for name, on in (("a", x[0] > 0), ("b", x[1] > 0), ("never", False)) if on) for x in X]
    y[0] = (*y[0], "rare")  # seen once: the only positive -> a constant head
    heads = Trainer(task="multilabel").fit(X, y)
    assert heads.classes == ("a", "b", "rare")
    p = OnnxClassifier(to_onnx(heads), output_kind="sigmoid").predict_proba_many(X.astype(np.float32))
    assert p.shape == (200, 3)
    np.testing.assert_allclose(p, heads.predict_proba(X), atol=1e-4)
    truth = np.array([[x[0] > 0, x[1] > 0] for x in X])
    assert ((p[:, :2] > 0.5) == truth).mean() > 0.9


def test_ensemble_graph_outputs_members() -> None:
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 4, 2))
    heads = LinearHeads(np.zeros(4), np.ones(4), W, np.zeros((3, 2)), (0, 1))
    m = OnnxClassifier(to_onnx(heads))
    X = rng.normal(size=(7, 4)).astype(np.float32)
    members, mean = m.run(X, ["member_probabilities", "probabilities"])
    assert members.shape == (7, 3, 2)
    np.testing.assert_allclose(mean, members.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(members.transpose(1, 0, 2), heads.member_probas(X), atol=1e-5)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
@pytest.mark.parametrize(("n_members", "n_outputs"), [(1, 1), (1, 2), (1, 300), (3, 1), (5, 10), (3, 300)])
def test_graph_size_grows_with_the_weights_not_the_square_of_the_outputs(task: str, n_members: int, n_outputs: int) -> None:
    # Models are published inline on Kafka (librdkafka refuses messages over 1 MB by default): a
    # (m * k, k) matrix averaging the members made a 300-class graph many times the size of its weights.
    rng = np.random.default_rng(n_members * n_outputs)
    d = 16
    W = rng.normal(size=(n_members, d, n_outputs)) * 3
    heads = LinearHeads(rng.normal(size=d), rng.uniform(0.5, 2.0, size=d), W, rng.normal(size=(n_members, n_outputs)),
                        tuple(range(n_outputs)), task)
    blob = to_onnx(heads)
    assert len(blob) <= 4 * (W.size + n_members * n_outputs + 2 * d) + (1 << 16) + 4096
    m = OnnxClassifier(blob, output_kind="sigmoid" if task == "multilabel" else "probabilities")
    for n in (0, 1, 33):
        X = rng.normal(size=(n, d)).astype(np.float32) * 4
        members, mean = m.run(X, ["member_probabilities", "probabilities"])
        assert members.shape == (n, n_members, n_outputs) and mean.shape == (n, n_outputs) and mean.dtype == np.float32
        np.testing.assert_allclose(mean, members.mean(axis=1), atol=1e-6)
        np.testing.assert_allclose(mean, heads.predict_proba(X), atol=1e-5)


def test_loads_any_skl2onnx_classifier() -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    d = load_digits()
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(d.data[:500], d.target[:500])
    onx = skl2onnx.convert_sklearn(rf, initial_types=[("X", FloatTensorType([None, 64]))])
    model = OnnxClassifier(onx.SerializeToString())  # ZipMap output by default
    p = model.predict_proba_many(d.data[500:520].astype(np.float32))
    np.testing.assert_allclose(p, rf.predict_proba(d.data[500:520]), atol=1e-5)


def test_logits_output_is_softmaxed() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["logits"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
    )
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    p = OnnxClassifier(blob).predict_proba_many(np.array([[0.0, 0.0, np.log(2)]], dtype=np.float32))
    np.testing.assert_allclose(p, [[0.25, 0.25, 0.5]], atol=1e-6)


def test_bootstrap_ensemble_members_disagree_and_export() -> None:
    d = load_digits()
    heads = Trainer(n_members=4, seed=1).fit(d.data[:150], list(d.target[:150]))
    assert heads.W.shape == (4, 64, 10) and heads.classes == tuple(range(10))
    m = OnnxClassifier(to_onnx(heads))
    members = m.run(d.data[300:340].astype(np.float32), ["member_probabilities"])[0]
    assert members.shape == (40, 4, 10)
    assert np.abs(members[:, 0] - members[:, 1]).max() > 1e-3  # bootstrap heads differ
    np.testing.assert_allclose(m.predict_proba_many(d.data[300:340].astype(np.float32)), members.mean(axis=1), atol=1e-5)


def test_multilabel_ensemble_aligns_label_sets() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = [("a",) if x[0] > 0 else ("b",) for x in X]
    y[0] = ("a", "rare")
    heads = Trainer(task="multilabel", n_members=3, seed=0).fit(X, y)
    assert heads.W.shape == (3, 4, 3) and heads.classes == ("a", "b", "rare")
