"""Your estimator: any scikit-learn-compatible classifier, named ``module:callable``, fitted and exported with skl2onnx.

The default retrainer fits standardized logistic regressions (:mod:`activestream.retrainer.trainer`)
and exports them by hand; ``--estimator`` (``ACTIVESTREAM_ESTIMATOR``) swaps in a factory of any
classifier with ``fit`` and ``predict_proba``. It is exported with skl2onnx (scikit-learn's
classifiers), and through onnxmltools for LightGBM and XGBoost, into a graph whose
``probabilities`` output is a plain ``(N, n_outputs)`` float tensor (``zipmap=False``), the output
the scorer reads.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from activestream.retrainer.trainer import LabelValue, NotEnoughClasses, Trainer, sort_classes

log = logging.getLogger(__name__)

EstimatorFactory = Callable[[], Any]
INPUT = "features"
PROBABILITIES = "probabilities"
OPSETS = {"": 18, "ai.onnx.ml": 3}


class EstimatorError(ValueError):
    """An estimator spec that cannot be loaded, or a fitted estimator that cannot be exported (one line, says what to do)."""


def load_factory(spec: str) -> EstimatorFactory:
    """The factory ``spec`` names (``"sklearn.ensemble:RandomForestClassifier"``, ``"mypkg.models:make"``),
    or a scikit-learn classifier by its class name alone (``"RandomForestClassifier"``).

    Raises
    ------
    EstimatorError
        Naming the spec and the reason: not ``module:callable``, module or attribute missing, not
        callable, or what it returns has no ``fit`` / ``predict_proba``.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep and spec.isidentifier():
        module_name, sep, attr = _sklearn_classifier(spec).partition(":")
    if not sep or not module_name or not attr:
        raise EstimatorError(f"estimator {spec!r}: expected module:callable (e.g. sklearn.ensemble:RandomForestClassifier) "
                             "or a scikit-learn classifier's name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EstimatorError(f"estimator {spec!r}: cannot import {module_name!r}: {exc}") from None
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise EstimatorError(f"estimator {spec!r}: {module_name!r} has no {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise EstimatorError(f"estimator {spec!r}: {attr!r} is not callable")
    est = factory()
    missing = [m for m in ("fit", "predict_proba") if not callable(getattr(est, m, None))]
    if missing:
        raise EstimatorError(f"estimator {spec!r}: what it returns ({type(est).__name__}) has no {' or '.join(missing)}: "
                             "give a scikit-learn-compatible classifier")
    return factory  # type: ignore[return-value]


def _sklearn_classifier(name: str) -> str:
    """``module:Name`` of scikit-learn's classifier called ``name`` (``""``: none is)."""
    from sklearn.utils.discovery import all_estimators

    for found, cls in all_estimators(type_filter="classifier"):
        if found == name:
            return f"{cls.__module__}:{name}"
    return ""


def warm_startable(est: Any) -> bool:
    """Whether ``warm_start=True`` continues from the last solution (an MLP, a linear model).

    Ensembles (random forests, gradient boosting) read ``warm_start`` as "add members": with the
    same member count they would keep the old model unchanged, so they are refitted instead.
    """
    get_params = getattr(est, "get_params", None)
    params = get_params() if callable(get_params) else {}
    if "warm_start" not in params or "n_estimators" in params:
        return False
    return not type(est).__module__.startswith("sklearn.ensemble")


@dataclass(frozen=True)
class FittedEstimator:
    """A fitted user estimator and what exporting and checking it needs.

    Parameters
    ----------
    estimator : the fitted classifier (on index-coded classes, or a 0/1 label matrix).
    classes : (n_outputs,) class labels (multi-class) or label names (multi-label).
    task : ``"multiclass"`` or ``"multilabel"``.
    n_features : the input width.
    """

    estimator: Any
    classes: tuple[LabelValue, ...]
    task: str
    n_features: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``X : (n, n_features) -> (n, n_outputs)`` probabilities (positive-class ones for multi-label)."""
        p = self.estimator.predict_proba(np.asarray(X, dtype=np.float32))
        if isinstance(p, list):  # native multi-output: one (n, 2) array per label
            return np.stack([col[:, -1] for col in p], axis=1)
        return np.asarray(p, dtype=np.float64)


class EstimatorTrainer:
    """Fits the user's estimator on the current training set; warm-starts where that continues the last fit.

    Parameters
    ----------
    factory : returns a fresh, unfitted classifier.
    task : ``"multiclass"`` or ``"multilabel"``; multi-label fits a one-vs-rest wrapper (one binary
        estimator per label), whose ONNX graph gives the ``(N, n_labels)`` probabilities the scorer
        reads (skl2onnx exports a random forest's own multi-output support as ``(n_labels, N, 2)``).
    full_refit_every : every N-th fit starts from a fresh estimator.
    """

    def __init__(self, factory: EstimatorFactory, *, task: str = "multiclass", full_refit_every: int = 10) -> None:
        self.factory = factory
        self.task = task
        self.full_refit_every = full_refit_every
        self.n_fits = 0
        self._est: Any = None
        self._classes: tuple[LabelValue, ...] = ()

    def _fresh(self) -> Any:
        est = self.factory()
        if self.task == "multilabel":
            from sklearn.multiclass import OneVsRestClassifier

            return OneVsRestClassifier(est)
        if warm_startable(est):
            est.set_params(warm_start=True)
        return est

    def fit(self, X: np.ndarray, y: Sequence[Any]) -> FittedEstimator:
        """Fit on ``X : (n, n_features)`` with labels ``y`` (classes, or label sets).

        Raises
        ------
        NotEnoughClasses
            For labels holding a single class (multi-class), or no positive label (multi-label).
        """
        X = np.asarray(X, dtype=np.float32)
        if self.task == "multilabel":
            classes = sort_classes([v for row in y for v in row])
            if not classes:
                raise NotEnoughClasses("no positive label in any label set yet")
            rows = [{v.item() if isinstance(v, np.generic) else v for v in row} for row in y]
            target = np.array([[c in row for c in classes] for row in rows], dtype=np.int64)
        else:
            classes = sort_classes(y)
            if len(classes) < 2:
                raise NotEnoughClasses(f"labels hold a single class ({classes[0]!r}) so far" if classes else "no labels yet")
            index = {c: i for i, c in enumerate(classes)}
            target = np.array([index[v.item() if isinstance(v, np.generic) else v] for v in y])
        full = self.n_fits % max(1, self.full_refit_every) == 0
        warm = self._est is not None and not full and classes == self._classes and warm_startable(self._est)
        est = self._est if warm else self._fresh()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a capped iteration count: warm starts finish the job next time
            est.fit(X, target)
        self._est, self._classes = est, classes
        self.n_fits += 1
        return FittedEstimator(est, classes, self.task, int(X.shape[1]))


# --------------------------------------------------------------------------- ONNX


class _IntAttrs:
    """A skl2onnx container whose nodes get ``int`` for boolean list attributes.

    skl2onnx's tree converters pass Python booleans in ``nodes_missing_value_tracks_true``,
    which protobuf 7 refuses in an integer list ("Expected an int, got a boolean").
    """

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        return self._container.add_node(*args, **attrs)


def _int_attrs(converter: Callable[..., Any]) -> Callable[..., Any]:
    def convert(scope: Any, operator: Any, container: Any) -> Any:
        return converter(scope, operator, _IntAttrs(container))

    return convert


# Libraries whose classifiers onnxmltools converts: (module, class name) -> (onnxmltools module, converter, skl2onnx alias).
_ONNXMLTOOLS = {
    ("lightgbm", "LGBMClassifier"): ("onnxmltools.convert.lightgbm.operator_converters.LightGbm", "convert_lightgbm", "LightGbmLGBMClassifier"),
    ("xgboost", "XGBClassifier"): ("onnxmltools.convert.xgboost.operator_converters.XGBoost", "convert_xgboost", "XGBoostXGBClassifier"),
}


def _register_other_library(est: Any) -> None:
    """Register onnxmltools' converter for a LightGBM / XGBoost classifier (each one it wraps too)."""
    inner = getattr(est, "estimator", None)
    if inner is not None:
        _register_other_library(inner)
    library = type(est).__module__.split(".")[0]
    key = (library, type(est).__name__)
    if key not in _ONNXMLTOOLS:
        if library in {k[0] for k in _ONNXMLTOOLS}:
            raise EstimatorError(f"cannot export {type(est).__name__} to ONNX: activestream converts {library}'s "
                                 f"{', '.join(k[1] for k in _ONNXMLTOOLS if k[0] == library)} only")
        return
    module_name, func, alias = _ONNXMLTOOLS[key]
    try:
        converter = getattr(importlib.import_module(module_name), func)
    except ImportError:
        raise EstimatorError(f"cannot export {type(est).__name__} to ONNX without onnxmltools: pip install onnxmltools") from None
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(type(est), alias, calculate_linear_classifier_output_shapes, converter,
                                options={"nocl": [True, False], "zipmap": [True, False, "columns"]})


def estimator_to_onnx(fitted: FittedEstimator) -> bytes:
    """Serialize ``fitted`` as ONNX bytes: ``features : (N, n_features) float32 -> probabilities : (N, n_outputs)``.

    Raises
    ------
    EstimatorError
        When skl2onnx (or onnxmltools) has no converter for it, or the graph has no plain
        probability tensor; the message names the estimator and what to install.
    """
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier
    except ImportError:  # pragma: no cover - a declared dependency
        raise EstimatorError("exporting an --estimator needs skl2onnx: pip install skl2onnx") from None
    from sklearn.ensemble import HistGradientBoostingClassifier

    est = fitted.estimator
    _register_other_library(est)
    options: dict[int, dict[str, Any]] = {id(est): {"zipmap": False}}
    inner = getattr(est, "estimator", None)
    if inner is not None:  # a one-vs-rest wrapper
        options[id(inner)] = {"zipmap": False}
    try:
        onx = convert_sklearn(
            est, initial_types=[(INPUT, FloatTensorType([None, fitted.n_features]))], options=options, target_opset=OPSETS,
            custom_conversion_functions={HistGradientBoostingClassifier: _int_attrs(convert_sklearn_random_forest_classifier)},
        )
    except (RuntimeError, NotImplementedError, ValueError, TypeError, KeyError) as exc:  # skl2onnx's MissingShapeCalculator is a RuntimeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EstimatorError(f"cannot export {type(est).__name__} to ONNX: {first} (skl2onnx has converters for most scikit-learn classifiers; "
                             "LightGBM and XGBoost need onnxmltools: pip install onnxmltools)") from None
    outs = {o.name: o for o in onx.graph.output}
    if PROBABILITIES not in outs or outs[PROBABILITIES].type.tensor_type.elem_type != 1:  # 1: FLOAT
        raise EstimatorError(f"cannot export {type(est).__name__} to ONNX: no float '{PROBABILITIES}' tensor among its outputs {list(outs)}")
    return onx.SerializeToString()  # type: ignore[no-any-return]


def make_trainer(task: str, factory: EstimatorFactory | None, *, full_refit_every: int = 10, max_iter: int = 200,
                 n_members: int = 1, C: float = 1.0) -> Trainer | EstimatorTrainer:
    """The retrainer's trainer: the default logistic-regression heads, or the user's estimator.

    ``n_members`` (a committee) and ``C``/``max_iter`` concern the default heads only.
    """
    if factory is None:
        return Trainer(task=task, C=C, full_refit_every=full_refit_every, max_iter=max_iter, n_members=n_members)
    return EstimatorTrainer(factory, task=task, full_refit_every=full_refit_every)
