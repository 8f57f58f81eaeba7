"""A user's estimator (``--estimator``): loaded by name, fitted, exported with skl2onnx, read by the scorer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_digits

from activestream.retrainer.estimator import EstimatorError, EstimatorTrainer, estimator_to_onnx, load_factory, warm_startable
from activestream.scorer.model import OnnxClassifier

HGB = "sklearn.ensemble:HistGradientBoostingClassifier"
RF = "sklearn.ensemble:RandomForestClassifier"
MLP = "sklearn.neural_network:MLPClassifier"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # Histogram gradient boosting's OpenMP pool on a busy 2-core machine took 25 s a fit instead of 0.5 s.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


@pytest.mark.parametrize("spec", [HGB, RF, MLP])
def test_each_estimator_exports_the_probabilities_tensor_the_scorer_reads(spec: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    fitted = EstimatorTrainer(load_factory(spec)).fit(X[:300], list(y[:300]))
    model = OnnxClassifier(estimator_to_onnx(fitted), output_kind="probabilities")
    assert model.n_features == 64
    assert "probabilities" in model.output_names
    p = model.predict_proba_many(X[300:400])
    assert p.shape == (100, 10)  # a plain tensor, not a ZipMap of dicts
    np.testing.assert_allclose(p, fitted.predict_proba(X[300:400]), atol=1e-4)
    assert (p.argmax(axis=1) == y[300:400]).mean() > 0.75


def test_string_classes_map_to_the_output_columns(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    names = ["even", "odd"]
    fitted = EstimatorTrainer(load_factory(RF)).fit(X[:300], [names[v % 2] for v in y[:300]])
    assert fitted.classes == ("even", "odd")
    p = OnnxClassifier(estimator_to_onnx(fitted)).predict_proba_many(X[300:400])
    assert ((p[:, 1] > 0.5) == (y[300:400] % 2 == 1)).mean() > 0.8


def test_multilabel_goes_through_one_vs_rest_and_gives_one_column_per_label(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    sets = [tuple(n for n, on in (("odd", v % 2 == 1), ("small", v < 5), ("three", v == 3)) if on) for v in y[:300]]
    fitted = EstimatorTrainer(load_factory(HGB), task="multilabel").fit(X[:300], sets)
    assert fitted.classes == ("odd", "small", "three") and type(fitted.estimator).__name__ == "OneVsRestClassifier"
    p = OnnxClassifier(estimator_to_onnx(fitted), output_kind="sigmoid").predict_proba_many(X[300:400])
    assert p.shape == (100, 3)
    np.testing.assert_allclose(p, fitted.predict_proba(X[300:400]), atol=1e-4)
    assert ((p[:, 1] > 0.5) == (y[300:400] < 5)).mean() > 0.8


def test_warm_start_only_where_it_continues_the_last_fit(digits: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    # Ensembles read warm_start as "add members": with the same count they would not refit at all.
    assert not warm_startable(RandomForestClassifier()) and not warm_startable(HistGradientBoostingClassifier())
    assert warm_startable(MLPClassifier()) and warm_startable(LogisticRegression())
    X, y = digits
    mlp = EstimatorTrainer(load_factory(MLP), full_refit_every=10)
    first = mlp.fit(X[:200], list(y[:200])).estimator
    second = mlp.fit(X[:300], list(y[:300])).estimator
    assert second is first and first.warm_start  # continued from the last solution
    rf = EstimatorTrainer(load_factory(RF), full_refit_every=10)
    a = rf.fit(X[:200], list(y[:200])).estimator
    b = rf.fit(X[:300], list(y[:300])).estimator
    assert b is not a and not b.warm_start  # refitted: the new labels are in it
    assert b.n_features_in_ == 64 and sum(t.tree_.n_node_samples[0] for t in b.estimators_) > sum(t.tree_.n_node_samples[0] for t in a.estimators_)


@pytest.mark.parametrize(("spec", "reason"), [
    ("RandomForest", "expected module:callable (e.g. sklearn.ensemble:RandomForestClassifier) or a scikit-learn classifier's name"),
    ("sklearn.nope:Thing", "cannot import 'sklearn.nope'"),
    ("sklearn.ensemble:NoSuchForest", "'sklearn.ensemble' has no 'NoSuchForest'"),
    ("sklearn.ensemble:__doc__", "is not callable"),
    ("sklearn.preprocessing:StandardScaler", "has no predict_proba"),
])
def test_a_bad_estimator_spec_is_one_line_naming_it(spec: str, reason: str) -> None:
    with pytest.raises(EstimatorError, match="estimator") as err:
        load_factory(spec)
    assert reason in str(err.value) and spec in str(err.value) and "\n" not in str(err.value)


def test_a_scikit_learn_classifier_by_its_name_alone() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    assert load_factory("HistGradientBoostingClassifier") is HistGradientBoostingClassifier


def test_an_estimator_without_a_converter_says_what_to_install(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    fitted = EstimatorTrainer(load_factory("sklearn.dummy:DummyClassifier")).fit(X[:100], list(y[:100]))
    with pytest.raises(EstimatorError, match="cannot export DummyClassifier to ONNX.*pip install onnxmltools"):
        estimator_to_onnx(fitted)


def test_lightgbm_without_onnxmltools_names_it() -> None:
    pytest.importorskip("sklearn")
    try:
        import onnxmltools  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("onnxmltools is installed: the converter is found")
    from activestream.retrainer.estimator import FittedEstimator

    # Only the class's module and name matter to the lookup (lightgbm itself is not installed here).
    fake = type("LGBMClassifier", (), {"__module__": "lightgbm.sklearn"})()
    with pytest.raises(EstimatorError, match=r"cannot export LGBMClassifier to ONNX without onnxmltools: pip install onnxmltools"):
        estimator_to_onnx(FittedEstimator(fake, (0, 1), "multiclass", 3))
