"""The peers' own active-learning query strategies, run under our simulator's protocol.

Everything but the choice of each batch is taken from ``activestream.simulation``, so a
peer's learning curve is comparable point by point with ours:

- the train/test split: :func:`activestream.simulation.campaign.split` (the test split is never offered);
- the seed labels: the top ``init`` pool items of our cold-start order,
  ``scorer.strategies.random_scores([str(i) for i in train], seed, 0)``, highest first;
- the model: standardization + ``LogisticRegression(C=1.0)`` (our ``Trainer``), here
  ``make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))`` refit
  from scratch on every label after each batch;
- the metric: :func:`activestream.simulation.campaign.score` of index-coded predictions mapped with
  :func:`activestream.simulation.campaign.predict_idx`, and the full-data score of
  :func:`activestream.simulation.campaign.full_data_score`;
- until the labels hold two classes no model exists: like our scorer, every peer then takes
  the next items of the cold-start order, and the score is that of the majority label.

Each batch is chosen by the peer's own query API, on the unlabeled pool only:

- modAL (``modAL-python``): ``ActiveLearner(estimator, query_strategy)`` with
  ``margin_sampling``, ``uncertainty_sampling`` (least confidence) or ``entropy_sampling``;
  ``learner.query(X_unlabeled, n_instances=batch)`` then ``learner.teach(X_new, y_new)``.
- scikit-activeml: ``Falcun``, ``Clue`` and ``TypiClust`` from ``skactiveml.pool``,
  ``qs.query(X_pool, y_pool, ..., batch_size=batch)`` where ``y_pool`` holds
  ``MISSING_LABEL`` (NaN) for unlabeled items (their default candidates), with the model
  wrapped in ``skactiveml.classifier.SklearnClassifier(..., classes=range(n_classes))``.
  ``TypiClust`` is model-free (it clusters ``X``); ``Clue`` clusters ``X`` weighted by
  uncertainty; ``Falcun`` works on the predicted probabilities.

Features: by default every peer and the model see the pool standardized once
(``StandardScaler`` fit on the unlabeled + labeled training pool, no labels used; the test
split is transformed with it). The pipeline re-standardizes on the labeled rows, so the
model and its predictions are the same as on raw features; only the distance-based peers
(Clue's and TypiClust's k-means, TypiClust's k-NN) change, which on raw features would be
dominated by the features with the largest units. ``features="raw"`` turns that off.

Check of the harness: ``control_random`` (our random order, re-salted per round as our
scorer does) labels exactly the items our simulator's ``random`` campaign labels; on the
three multi-class suites at their budgets, 3 seeds, its per-seed curves equal the
simulator's at 62-100% of the points and differ by at most 0.0044 (one or two test items:
our retrainer warm-starts with ``max_iter=200`` and refits from scratch every 10th
version), and its seed-averaged labels to 95% / 99% are the simulator's.

Example
-------
>>> from benchmarks.suites import breast_cancer
>>> curve = run_peer(breast_cancer(), "modal_margin", seed=0, budget=40)
>>> [n for n, _ in curve]
[20, 30, 40]
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from activestream.scorer.strategies import random_scores
from activestream.simulation.campaign import full_data_score, predict_idx, score, split
from activestream.simulation.curves import Curve
from activestream.simulation.datasets import Dataset

MODAL = {
    "modal_margin": "margin_sampling",
    "modal_least_confidence": "uncertainty_sampling",
    "modal_entropy": "entropy_sampling",
}
# modAL's own multi-label strategies (modAL.multilabel), on one-vs-rest logistic regressions:
# the same independent sigmoid heads as our Trainer's multi-label model. Its max_loss and
# mean_max_loss are left out: under modAL 0.4.2.1 they read `classes_` from the ActiveLearner,
# which has none (AttributeError through modAL's own query API).
MODAL_MULTILABEL = {
    "modal_ml_min_confidence": "min_confidence",
    "modal_ml_avg_confidence": "avg_confidence",
    "modal_ml_max_score": "max_score",
    "modal_ml_avg_score": "avg_score",
}
SKACTIVEML = {
    "skactiveml_falcun": "Falcun",
    "skactiveml_clue": "Clue",
    "skactiveml_typiclust": "TypiClust",
}
PEERS: tuple[str, ...] = (*MODAL, *SKACTIVEML)
MULTILABEL_PEERS: tuple[str, ...] = tuple(MODAL_MULTILABEL)
CONTROL = "control_random"
"""Not a peer: our own random order (``random_scores`` re-salted each round) in this harness,
to check that the harness reproduces the simulator's random curve."""
NAMES: tuple[str, ...] = (*PEERS, *MULTILABEL_PEERS, CONTROL)


@dataclass
class PeerRun:
    """One peer's campaign on one seed.

    Parameters
    ----------
    peer, seed : what ran.
    curve : (labels spent, score on the test split) after the seed labels and after each batch.
    full_data_score : the model trained on the whole training pool, scored on the test split.
    seconds : wall time of the campaign (queries, fits, evaluations; not the full-data fit).
    query_seconds : the part of ``seconds`` spent inside the peer's query calls.
    """

    peer: str
    seed: int
    curve: Curve
    full_data_score: float
    seconds: float
    query_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def make_model(task: str = "multiclass") -> Pipeline:
    """The model of our ``Trainer`` as a scikit-learn pipeline: standardize, then multinomial LR
    (``task="multilabel"``: one binary LR per label)."""
    if task == "multilabel":
        from sklearn.multiclass import OneVsRestClassifier

        return make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=1000)))
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def cold_start_order(train: np.ndarray, seed: int) -> np.ndarray:
    """Pool positions (into ``train``) in our cold-start order: ``random_scores`` over the ids, highest first."""
    scores = random_scores([str(i) for i in train], seed, 0)
    return np.argsort(-scores, kind="stable")


# --------------------------------------------------------------------------- adapters


class _Peer:
    """Holds the labeled set, refits the model, and asks the library for the next batch.

    ``teach`` is called with the pool positions labeled since the last call (the seed
    labels first); ``query`` only once a model exists.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> None:
        self.X, self.y, self.n_classes, self.seed = X, y, n_classes, seed
        self.labeled = np.zeros(len(X), dtype=bool)
        self.rounds = 0

    @property
    def has_model(self) -> bool:
        return len(np.unique(self.y[self.labeled])) >= 2

    def teach(self, new: np.ndarray) -> None:
        self.labeled[new] = True
        self.rounds += 1
        if self.has_model:
            self._fit(new)

    def _fit(self, new: np.ndarray) -> None:
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``X : (n, n_features) -> ((n, n_model_classes) probabilities, (n_model_classes,) class indices)``."""
        raise NotImplementedError

    def query(self, k: int) -> np.ndarray:
        """Pool positions of the next ``k`` items to label (unlabeled ones only)."""
        raise NotImplementedError


class _ModalPeer(_Peer):
    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int, strategy: str, task: str = "multiclass") -> None:
        import modAL.multilabel
        import modAL.uncertainty

        super().__init__(X, y, n_classes, seed)
        self.task = task
        self.strategy = getattr(modAL.multilabel if task == "multilabel" else modAL.uncertainty, strategy)
        self.learner: Any = None

    def _fit(self, new: np.ndarray) -> None:
        if self.learner is None:  # the first time two classes are labeled: every label so far
            from modAL.models import ActiveLearner

            idx = np.flatnonzero(self.labeled)
            self.learner = ActiveLearner(estimator=make_model(self.task), query_strategy=self.strategy, X_training=self.X[idx], y_training=self.y[idx])
        else:
            self.learner.teach(self.X[new], self.y[new])  # appends, then refits on every label

    def predict_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.task == "multilabel":  # one column per label, in label order
            return self.learner.predict_proba(X), np.arange(self.y.shape[1])
        return self.learner.predict_proba(X), self.learner.estimator.classes_

    def query(self, k: int) -> np.ndarray:
        pool = np.flatnonzero(~self.labeled)
        idx, _ = self.learner.query(self.X[pool], n_instances=k)
        return pool[np.asarray(idx, dtype=int)]


class _SkactivemlPeer(_Peer):
    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int, strategy: str, query_seed_offset: int = 0) -> None:
        import skactiveml.pool
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.utils import MISSING_LABEL

        super().__init__(X, y, n_classes, seed)
        self.name = strategy
        cls = getattr(skactiveml.pool, strategy)
        qseed = seed + query_seed_offset  # the strategy's own draws (Falcun samples, Clue and TypiClust cluster)
        if strategy == "Clue":  # its KMeans gets no seed from the strategy: give it one
            self.qs = cls(random_state=qseed, cluster_algo_dict={"random_state": qseed}, missing_label=MISSING_LABEL)
        else:  # TypiClust passes its random_state on to KMeans itself
            self.qs = cls(random_state=qseed, missing_label=MISSING_LABEL)
        self.clf = SklearnClassifier(make_model(), classes=np.arange(n_classes), missing_label=MISSING_LABEL, random_state=seed)
        self.y_query = np.full(len(X), MISSING_LABEL, dtype=float)

    def teach(self, new: np.ndarray) -> None:
        self.y_query[new] = self.y[new]
        super().teach(new)

    def _fit(self, new: np.ndarray) -> None:
        self.clf.fit(self.X, self.y_query)  # the wrapper keeps the labeled rows only
        if not self.clf.is_fitted_:  # the wrapper swallows fit errors and falls back to class priors
            raise RuntimeError(f"skactiveml could not fit the model on {int(self.labeled.sum())} labels")

    def predict_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.clf.predict_proba(X), self.clf.classes_

    def query(self, k: int) -> np.ndarray:
        if self.name == "Falcun":
            out = self.qs.query(self.X, self.y_query, clf=self.clf, fit_clf=False, batch_size=k)
        elif self.name == "Clue":
            out = self.qs.query(self.X, self.y_query, estimator=self.clf, fit_estimator=False, batch_size=k)
        else:  # TypiClust: no model
            out = self.qs.query(self.X, self.y_query, batch_size=k)
        return np.asarray(out, dtype=int)


class _RandomControl(_Peer):
    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int, ids: list[str], task: str = "multiclass") -> None:
        super().__init__(X, y, n_classes, seed)
        self.ids = ids
        self.task = task
        self.model: Pipeline | None = None

    def _fit(self, new: np.ndarray) -> None:
        idx = np.flatnonzero(self.labeled)
        self.model = make_model(self.task).fit(self.X[idx], self.y[idx])

    def predict_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.model is not None
        if self.task == "multilabel":
            return self.model.predict_proba(X), np.arange(self.y.shape[1])
        return self.model.predict_proba(X), self.model.classes_

    def query(self, k: int) -> np.ndarray:
        pool = np.flatnonzero(~self.labeled)
        s = random_scores([self.ids[i] for i in pool], self.seed, self.rounds)
        return pool[np.argsort(-s, kind="stable")[:k]]


def _make_peer(
    name: str, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int, ids: list[str], task: str = "multiclass", query_seed_offset: int = 0
) -> _Peer:
    if (name in MULTILABEL_PEERS) != (task == "multilabel") and name != CONTROL:
        raise ValueError(f"peer {name!r} does not apply to {task} datasets")
    if name in MODAL:
        return _ModalPeer(X, y, n_classes, seed, MODAL[name])
    if name in MODAL_MULTILABEL:
        return _ModalPeer(X, y, n_classes, seed, MODAL_MULTILABEL[name], task)
    if name in SKACTIVEML:
        return _SkactivemlPeer(X, y, n_classes, seed, SKACTIVEML[name], query_seed_offset)
    if name == CONTROL:
        return _RandomControl(X, y, n_classes, seed, ids, task)
    raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(NAMES)}")


# --------------------------------------------------------------------------- one campaign


def _features(ds: Dataset, train: np.ndarray, test: np.ndarray, features: str) -> tuple[np.ndarray, np.ndarray]:
    Xp = ds.X[train].astype(np.float64)
    Xt = ds.X[test].astype(np.float64)
    if features == "raw":
        return Xp, Xt
    if features != "standardized":
        raise ValueError(f"features: {features!r}; choose 'standardized' or 'raw'")
    sc = StandardScaler().fit(Xp)
    return sc.transform(Xp), sc.transform(Xt)


def _check_batch(chosen: np.ndarray, labeled: np.ndarray, k: int, peer: str) -> None:
    if len(chosen) != k or len(np.unique(chosen)) != k:
        raise RuntimeError(f"{peer}: asked for {k} distinct items, got {chosen.tolist()}")
    if labeled[chosen].any():
        raise RuntimeError(f"{peer}: queried already-labeled pool items {chosen[labeled[chosen]].tolist()}")


def run_peer_detailed(
    ds: Dataset,
    peer_name: str,
    seed: int,
    budget: int,
    batch: int = 10,
    init: int = 20,
    test_size: float = 0.3,
    metric: str = "accuracy",
    *,
    features: str = "standardized",
    query_seed_offset: int = 0,
) -> PeerRun:
    """Run one peer for one seed; see :func:`run_peer`. Also returns the full-data score and timings.

    ``query_seed_offset`` moves the seed of the scikit-activeml strategies' own random draws
    (not the split, seed labels or model): how much of a stochastic peer's score is its luck.
    """
    if budget < init or init < 1 or batch < 1:
        raise ValueError("need budget >= init >= 1 and batch >= 1")
    train, test = split(ds, seed, test_size)
    full = full_data_score(ds, train, test, metric)
    Xp, Xt = _features(ds, train, test, features)
    yp, yt = ds.y[train], ds.y[test]
    order = cold_start_order(train, seed)
    with warnings.catch_warnings():
        # modAL 0.4.2.1 passes check_X_y(force_all_finite=...), deprecated in scikit-learn 1.6.
        warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        q_seconds = 0.0
        peer = _make_peer(peer_name, Xp, yp, len(ds.classes), seed, [str(i) for i in train], ds.task, query_seed_offset)

        def evaluate() -> float:
            if not peer.has_model:  # what simulate() scores before any model exists
                vals, counts = np.unique(yp[peer.labeled], return_counts=True)
                return score(ds, metric, yt, np.full(len(yt), vals[counts.argmax()]))
            probas, cls = peer.predict_proba(Xt)
            return score(ds, metric, yt, predict_idx(ds, probas, [ds.classes[int(c)] for c in cls]))

        k = min(init, len(train))
        peer.teach(order[:k])
        spent = k
        curve: Curve = [(spent, evaluate())]
        fallback_rounds = 0
        while spent < budget and not peer.labeled.all():
            k = min(batch, budget - spent, int((~peer.labeled).sum()))
            if peer.has_model:
                tq = time.perf_counter()
                chosen = peer.query(k)
                q_seconds += time.perf_counter() - tq
            else:  # no model yet: our scorer's cold-start order
                chosen = np.array([i for i in order if not peer.labeled[i]][:k])
                fallback_rounds += 1
            _check_batch(chosen, peer.labeled, k, peer_name)
            peer.teach(chosen)
            spent += k
            curve.append((spent, evaluate()))
        seconds = time.perf_counter() - t0
    return PeerRun(peer_name, seed, curve, full, seconds, q_seconds, {"cold_start_fallback_rounds": fallback_rounds, "pool": len(train)})


def run_peer(
    ds: Dataset,
    peer_name: str,
    seed: int,
    budget: int,
    batch: int = 10,
    init: int = 20,
    test_size: float = 0.3,
    metric: str = "accuracy",
) -> list[tuple[int, float]]:
    """Learning curve of a peer's own query strategy under our simulator's protocol.

    Parameters
    ----------
    ds : a multi-class dataset.
    peer_name : one of :data:`PEERS` (or :data:`CONTROL`).
    seed : selects the train/test split, the seed labels and the peers' random states.
    budget : labels to spend, seed labels included.
    batch : labels per round; the model is refit on every label after each round.
    init : seed labels (our cold-start order).
    test_size : held-out share, never offered for labeling.
    metric : ``accuracy``, ``macro_f1`` or ``micro_f1``.

    Returns
    -------
    ``[(labels spent, score on the test split), ...]`` after the seed labels and after each batch.
    """
    return run_peer_detailed(ds, peer_name, seed, budget, batch, init, test_size, metric).curve
