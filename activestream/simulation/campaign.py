"""One simulated labeling campaign through the real scorer, queue, labeling service and retrainer.

Each (strategy, seed) campaign gets its own in-process bus and Redis namespace; the
labels are hidden behind a simulated labeler that leases the top of the queue,
answers from the ground truth, and submits through the labeling service. Scores are
always measured on a held-out test split that is never offered for labeling.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import KFold, train_test_split
from threadpoolctl import ThreadpoolController

from activestream.labeled_set import build_rows, write_rows
from activestream.labeling.bandit import read_state as read_bandit_state
from activestream.labeling.control_share import DEFAULT_ADAPTIVE, ControlShare, Explore
from activestream.labeling.factory import make_label_service
from activestream.labeling.service import Answer
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.rankedqueue.pool import PoolLimits
from activestream.retrainer.auto_accept_rule import calibrate_classes
from activestream.retrainer.estimator import EstimatorFactory, load_factory, make_trainer
from activestream.retrainer.service import Retrainer
from activestream.retrainer.stopping import StopRules
from activestream.retrainer.trainer import NotEnoughClasses
from activestream.schemas import Item, decode_label
from activestream.scorer.autoaccept import accepted, thresholds
from activestream.scorer.service import Scorer
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY, ENSEMBLE_MEMBERS, RANDOM, Strategy
from activestream.simulation.curves import Curve
from activestream.simulation.datasets import Dataset
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

METRICS = ("accuracy", "macro_f1", "micro_f1")


@dataclass(frozen=True)
class SimConfig:
    """How a simulated campaign runs.

    Parameters
    ----------
    budget : labels to spend per campaign (including the ``init`` seed labels).
    batch : labels per round (one retrain per round).
    init : first labels, taken before any model exists (cold start order).
    seeds : seeds; each has its own train/test split and seed labels.
    strategies : strategies to compare (``random`` is the control).
    metric : ``accuracy``, ``macro_f1`` or ``micro_f1``.
    test_size : share held out for scoring, never offered for labeling.
    target_fraction : the target is this share of the full-data score.
    seconds_per_label : labeling time, for the hours-saved figure.
    holdout_fraction : share of labels the retrainer keeps for its no-regression check.
    auto_accept_precision : precision the auto-accept threshold is calibrated to.
    workers : campaigns run in parallel processes (1 = in this process).
    explore : share of each leased batch drawn at random (the random-control slice; from the
        first model on, the seed labels are the queue's random order for every strategy).
    explore_adaptive : the control share follows the live estimates (:class:`ControlShare`, the services'
        ``ACTIVESTREAM_EXPLORE_ADAPTIVE``) instead of ``explore``; ``None``: the fixed ``explore``. It needs
        ``live_estimates`` (refused without: the share would stay at its high level).
    curriculum_labels : easy-to-hard schedule length in labels (``None``: off).
    cold_start : ``"random"`` or ``"representative"`` first labels (see ``LabelService``).
    export_dir : write each campaign's labeled dataset there (``{strategy}-seed{seed}.parquet``,
        as ``activestream export`` writes it); ``None``: not written.
    estimator : ``module:callable`` of the classifier the retrainer fits (``None``: its default),
        also for the full-data score and the auto-accept calibration: the model the campaign runs.
    stream : replay the training split as a stream in arrival order (file order), a slice before
        each round, instead of queueing all of it before the first label.
    pool_capacity : cap the queue's pool at this many pending items (``None``: no cap), with a
        random reservoir of a tenth of it (see :mod:`activestream.rankedqueue.pool`).
    live_estimates : compute the retrainer's live estimates (``est_*``) at every version, to set them
        beside the truth (costly: ~100 model fits a version); off, versions carry none.
    live_estimates_every : with ``live_estimates``, only at the versions whose labels reach the next multiple of this.
    """

    budget: int = 300
    batch: int = 10
    init: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = (DEFAULT_STRATEGY, RANDOM)
    metric: str = "accuracy"
    test_size: float = 0.3
    target_fraction: float = 0.95
    seconds_per_label: float = 30.0
    holdout_fraction: float = 0.0
    auto_accept_precision: float = 0.99
    workers: int = 1
    explore: float = DEFAULT_EXPLORE
    explore_adaptive: ControlShare | None = ControlShare() if DEFAULT_ADAPTIVE else None
    curriculum_labels: int | None = None
    cold_start: str = "random"
    export_dir: str | None = None
    estimator: str | None = None
    stream: bool = False
    pool_capacity: int | None = None
    live_estimates: bool = False
    live_estimates_every: int | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"--metric: unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        for s in self.strategies:
            Strategy(s)  # raises on an unknown name
        for flag, value in (("--init", self.init), ("--batch", self.batch)):
            if value < 1:
                raise ValueError(f"{flag} {value}: must be at least 1")
        if self.explore_adaptive is not None and not self.live_estimates:  # (without them the share would stay high)
            raise ValueError("--explore-adaptive steers by the live estimates: add --live-estimates")
        if self.budget < self.init:  # the seed labels alone would overspend the budget
            raise ValueError(f"--budget {self.budget} is below --init {self.init}")
        if self.estimator is not None:
            load_factory(self.estimator)  # raises EstimatorError (a ValueError) naming the spec
            committee = [s for s in self.strategies if Strategy(s).needs_members]
            if committee:
                raise ValueError(f"--strategy {committee[0]} scores a committee of heads; --estimator {self.estimator} is one model: "
                                 "choose another strategy or drop --estimator")


@dataclass
class CampaignResult:
    """What one (strategy, seed) campaign measured: its learning curve, the full-data score, auto-accept and stop-rule figures."""

    strategy: str
    seed: int
    curve: Curve
    full_data_score: float
    seconds: float
    auto_accept: dict[str, Any] = field(default_factory=dict)
    dead_letters: int = 0
    stop: dict[str, Any] = field(default_factory=dict)
    # Per model version that auto-accepted items at its re-rank: {"version", "n", "correct"} against the ground truth.
    auto_by_version: list[dict[str, int]] = field(default_factory=list)
    bandit: dict[str, float] = field(default_factory=dict)  # the strategy bandit's final state (albl only)
    # Per published version: its number, labels, control labels, test score and live estimates (est_*).
    versions: list[dict[str, float]] = field(default_factory=list)
    n_test: int = 0  # items in the test split


# --------------------------------------------------------------------------- scoring


def score(ds: Dataset, metric: str, y_true_idx: np.ndarray, pred_idx: np.ndarray) -> float:
    """Metric of index-coded predictions: (n,) class indices, or (n, n_labels) 0/1 for multi-label."""
    if metric == "accuracy":
        if np.ndim(y_true_idx) == 1:  # (what accuracy_score computes, without its ~1 ms of input checks at every version)
            return float(np.mean(np.asarray(y_true_idx) == np.asarray(pred_idx)))
        return float(accuracy_score(y_true_idx, pred_idx))
    if metric == "micro_f1" and np.ndim(y_true_idx) == 2 and np.shape(y_true_idx)[1] > 1:  # (f1_score's micro average of 0/1 label matrices, without its ~3 ms of checks)
        t, p = np.asarray(y_true_idx) != 0, np.asarray(pred_idx) != 0
        tp, wrong = int(np.count_nonzero(t & p)), int(np.count_nonzero(t != p))
        return 1.0 if 2 * tp + wrong == 0 else 2 * tp / (2 * tp + wrong)
    average = "macro" if metric == "macro_f1" else "micro"
    # A class (or label) neither in the test split nor predicted has no F1: it is left out of the
    # average (zero_division=nan) rather than counted as 0, which capped a perfect model's
    # macro-F1 at 2/3 when one of three classes was absent from the split.
    value = float(f1_score(y_true_idx, pred_idx, average=average, zero_division=np.nan))
    return 1.0 if np.isnan(value) else value  # (no positive anywhere, none predicted: nothing got wrong)


def predict_idx(ds: Dataset, probas: np.ndarray, model_classes: Sequence[object]) -> np.ndarray:
    """Map a model's probabilities over its own classes to the dataset's index coding."""
    index = {c: i for i, c in enumerate(ds.classes)}
    cols = np.array([index[c] for c in model_classes])
    if ds.task == "multilabel":
        out = np.zeros((len(probas), len(ds.classes)), dtype=np.int64)
        out[:, cols] = probas >= 0.5
        return out
    return cols[probas.argmax(axis=1)]  # type: ignore[no-any-return]


def full_data_score(ds: Dataset, train: np.ndarray, test: np.ndarray, metric: str, factory: EstimatorFactory | None = None) -> float:
    """The same model (the default heads, or ``factory``'s estimator) trained on every training label, scored on the test split."""
    heads = make_trainer(ds.task, factory, full_refit_every=1, max_iter=1000).fit(ds.X[train], ds.label_values(train))
    return score(ds, metric, ds.y[test], predict_idx(ds, heads.predict_proba(ds.X[test]), heads.classes))


# --------------------------------------------------------------------------- one campaign


def single_row_classes(ds: Dataset) -> list[object]:
    """The classes with a single row, which :func:`split` keeps out of the test split."""
    if ds.task != "multiclass":
        return []
    return [ds.classes[int(c)] for c in np.flatnonzero(np.bincount(ds.y) == 1)]


def split(ds: Dataset, seed: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Train (offered for labeling) / test (never offered) indices, stratified by class (multi-class).

    A class with a single row stays on the training side: held out, no model could learn it
    (and with two classes the full-data model would see one class only).
    """
    idx = np.arange(len(ds.X))
    if ds.task != "multiclass":
        train, test = train_test_split(idx, test_size=test_size, random_state=seed)
        return np.sort(train), np.sort(test)
    lone = np.bincount(ds.y)[ds.y] == 1
    train, test = train_test_split(idx[~lone], test_size=test_size, random_state=seed, stratify=ds.y[~lone])
    return np.sort(np.concatenate([train, idx[lone]])), np.sort(test)


def check_split(ds: Dataset, cfg: SimConfig) -> None:
    """Raise ``ValueError`` naming ``--test-size`` when a seed's :func:`split` cannot be made (checked before any campaign)."""
    for seed in cfg.seeds:
        try:
            split(ds, seed, cfg.test_size)
        except ValueError as exc:  # scikit-learn's reason: an empty side, or fewer rows than classes
            raise ValueError(f"--test-size {cfg.test_size:g} cannot split the {len(ds.X)} rows of {ds.name}: {exc}") from None


def run_campaign(
    ds: Dataset,
    strategy: str,
    seed: int,
    cfg: SimConfig,
    redis_client: redis.Redis,
    *,
    on_round: Callable[[], None] | None = None,
) -> CampaignResult:
    """Run one simulated labeling campaign through the real services.

    Parameters
    ----------
    ds : the labeled dataset; its labels are only revealed to the simulated labeler.
    strategy, seed : the strategy under test and the seed of its split, seed labels and draws.
    cfg : budget, batch, metric, ...
    redis_client : the Redis the campaign's queue lives in (its own namespace, cleared after).
    on_round : called after every labeled batch (a progress bar).

    Returns
    -------
    The learning curve on the held-out split, and the figures measured along the way.
    """
    # One BLAS/OpenMP thread for the campaign's fits: a campaign fits hundreds of small models (a few
    # hundred labels), where a second thread costs more than it gives (a breast-cancer fit of 90 rows:
    # 17-40 ms with two OpenBLAS threads on a loaded 2-core machine, 6-10 ms with one), campaigns run
    # in parallel processes, and for an estimator's OpenMP loops (histogram gradient boosting) a pool
    # per process on shared cores made each fit ten times slower.
    factory = None if cfg.estimator is None else load_factory(cfg.estimator)
    with _thread_pools(cfg.estimator).limit(limits=1):
        return _run_campaign(ds, strategy, seed, cfg, redis_client, factory, on_round)


@functools.cache
def _thread_pools(estimator: str | None) -> ThreadpoolController:
    """The thread pools of the libraries loaded once ``estimator``'s factory is: found once per process and estimator
    (a scan of the loaded libraries, ~14 ms: a tenth of a small campaign). A library first loaded later, inside a fit, would
    not be limited (scikit-learn's BLAS and OpenMP load with its modules, an estimator's with its factory)."""
    return ThreadpoolController()


def _export_labels(ds: Dataset, bus: InMemoryBus, topics: Topics, path: Path, holdout_fraction: float) -> None:
    """The embedded campaign's labeled dataset, as ``activestream export`` writes it, under the file's own item ids."""
    rows, _ = build_rows(bus, topics, with_features=False, timeout=0.0, holdout_fraction=holdout_fraction)
    if ds.ids is not None:  # (the campaign names items by row number)
        rows = [{**r, "item_id": ds.ids[int(r["item_id"])]} for r in rows]
    write_rows(rows, path)


def _run_campaign(ds: Dataset, strategy: str, seed: int, cfg: SimConfig, redis_client: redis.Redis, factory: EstimatorFactory | None,
                  on_round: Callable[[], None] | None) -> CampaignResult:
    t0 = time.perf_counter()
    train, test = split(ds, seed, cfg.test_size)
    full = full_data_score(ds, train, test, cfg.metric, factory)
    bus = InMemoryBus()
    topics = Topics()
    pool = PoolLimits.of(cfg.pool_capacity or 0, 0.1, 0.0)
    queue = RankedQueue(redis_client, QueueKeys(namespace=f"sim-{strategy}-{seed}-{id(bus)}"), pool=pool)
    queue.clear()
    # One onnxruntime thread for the re-ranks too (as for the fits): the live session re-ranks, where a
    # second, threaded session per version cost ~8% of a docstrings campaign and gave nothing on its pool.
    scorer = Scorer(bus, queue, topics, strategy=Strategy(strategy, seed), batch_size=2000, rerank_threads=1)
    strat = Strategy(strategy, seed)
    retrainer = Retrainer(bus, topics, task=ds.task, retrain_every=cfg.batch, holdout_fraction=cfg.holdout_fraction,
                          n_members=ENSEMBLE_MEMBERS if strat.needs_members else 1, stop_rules=StopRules(budget=cfg.budget),
                          estimator=factory, auto_accept_precision=cfg.auto_accept_precision, budget=cfg.budget,
                          estimates="inline" if cfg.live_estimates else "off", estimates_every=cfg.live_estimates_every)
    retrainer.campaign.log_stops = False  # (the summary reports each seed's first stop rule)
    explore: Explore = 0.0 if strategy == RANDOM else cfg.explore_adaptive or cfg.explore
    # The random baseline stays random from its first label.
    cold_start = "random" if strategy == RANDOM else cfg.cold_start
    labeling = make_label_service(Strategy(strategy, seed), queue, bus, topics, explore=explore, curriculum_labels=cfg.curriculum_labels,
                                  cold_start=cold_start)
    # As a stream: the training split in arrival order, one slice per round (the first before the seed labels).
    rounds = 1 + -(-(cfg.budget - cfg.init) // cfg.batch)
    slices = np.array_split(np.sort(train), rounds) if cfg.stream else [np.asarray(train)]
    fed = 0

    def feed() -> None:
        nonlocal fed
        if fed < len(slices):
            for i in slices[fed]:
                bus.publish(topics.items, Item(str(i), ds.X[i]).encode(raw=True), key=str(i).encode())  # (the layout fastest to write and read)
            fed += 1
            scorer.run(burst=True, timeout=0.0)

    try:
        feed()

        def evaluate() -> float:
            if scorer.model is None:  # no model yet: what a user would get is the majority label
                seen = np.array([ds.y[int(i)] for i in retrainer.training.items], dtype=object)
                if ds.task == "multilabel" or len(seen) == 0:
                    pred = np.zeros_like(ds.y[test]) if ds.task == "multilabel" else np.zeros(len(test), dtype=int)
                else:
                    vals, counts = np.unique(seen.astype(int), return_counts=True)
                    pred = np.full(len(test), vals[counts.argmax()])
                return score(ds, cfg.metric, ds.y[test], pred)
            probas = scorer.model.predict_proba_many(ds.X[test])
            return score(ds, cfg.metric, ds.y[test], predict_idx(ds, probas, scorer.classes))

        curve: Curve = []
        versions: list[dict[str, float]] = []
        spent = 0
        while spent < cfg.budget:
            k = cfg.init if spent == 0 else min(cfg.batch, cfg.budget - spent)
            leased = labeling.lease(k, "simulated-labeler")
            if not leased:
                break
            values: list[Any] = ds.label_values([int(entry.id) for entry in leased])
            multi = ds.task == "multilabel"
            answers = [Answer(e.id, label=None if multi else v, labels=v if multi else None, seconds=cfg.seconds_per_label)
                       for e, v in zip(leased, values, strict=True)]
            for outcome in labeling.submit_many(answers, labeler_id="simulated-labeler", source="simulated"):
                if isinstance(outcome, Exception):  # (as submit would raise it: the simulated labeler holds every lease)
                    raise outcome
            spent += len(leased)
            published = retrainer.n_published
            retrainer.run(burst=True, timeout=0.0)
            scorer.poll_models(0.0)
            feed()
            curve.append((spent, evaluate()))
            if retrainer.n_published > published:  # the live estimates of this version beside its test score
                mv = retrainer.published[-1]
                versions.append({"version": mv.version, "n_labels": mv.n_labels, "n_control": mv.metrics.get("n_control", 0.0),
                                 "test_score": curve[-1][1], **{k: v for k, v in mv.metrics.items() if k.startswith("est_")}})
            if on_round is not None:
                on_round()
        result = CampaignResult(strategy, seed, curve, full, time.perf_counter() - t0, dead_letters=scorer.dead_letters,
                                stop=retrainer.campaign.status.as_dict(), bandit=read_bandit_state(queue), versions=versions,
                                n_test=len(test))
        if ds.task == "multiclass" and scorer.model is not None:
            result.auto_accept = _auto_accept(ds, retrainer, scorer, queue, cfg, factory)
        result.auto_by_version = _auto_by_version(ds, bus, topics)
        if cfg.export_dir is not None:
            _export_labels(ds, bus, topics, Path(cfg.export_dir) / f"{strategy.replace('+', '_')}-seed{seed}.parquet", cfg.holdout_fraction)
        return result
    finally:
        # Give back the scorer's writer connection and the selector's model reader: a process
        # running many campaigns on one client would otherwise run out of pooled connections.
        with contextlib.suppress(Exception):
            scorer.close()
        labeling.close()
        queue.clear()


def _auto_accept(ds: Dataset, retrainer: Retrainer, scorer: Scorer, queue: RankedQueue, cfg: SimConfig,
                 factory: EstimatorFactory | None) -> dict[str, Any]:
    """Calibrate on out-of-fold predictions over the labeled set; apply to the unlabeled pool."""
    ids = sorted(retrainer.training.items, key=int)
    idx = np.array([int(i) for i in ids])
    X, yv = ds.X[idx], ds.label_values(idx)
    conf = np.zeros(len(idx))
    correct = np.zeros(len(idx), dtype=bool)
    predicted: list[object | None] = [None] * len(idx)
    covered = np.zeros(len(idx), dtype=bool)
    folds = KFold(min(5, len(idx)), shuffle=True, random_state=0).split(X) if len(idx) >= 2 else []  # a tiny budget: no calibration
    for tr, te in folds:
        try:
            heads = make_trainer("multiclass", factory, full_refit_every=1).fit(X[tr], [yv[j] for j in tr])
        except NotEnoughClasses:
            continue
        p = heads.predict_proba(X[te])
        conf[te] = p.max(axis=1)
        correct[te] = [heads.classes[a] == yv[j] for a, j in zip(p.argmax(axis=1), te, strict=True)]
        for a, j in zip(p.argmax(axis=1), te, strict=True):
            predicted[j] = heads.classes[a]
        covered[te] = True
    # The live rule (retrainer.auto_accept_rule): per-class thresholds where a class's labels reach the
    # 95% lower bound, the other classes pooled; applied as the scorer applies a version's thresholds.
    cal = calibrate_classes(conf[covered], correct[covered], [q for q, c in zip(predicted, covered, strict=True) if c],
                            target_precision=cfg.auto_accept_precision)
    t = thresholds(cal.metrics(), scorer.classes)
    offline = {"threshold": cal.pooled.threshold, "class_thresholds": {str(c): v for c, v in cal.thresholds().items()}}
    # What the deployed system would do: the retrainer's threshold, from random-control labels only
    # (the same rule: the precision's 95% lower bound must reach the target; else how many more labels it needs).
    live = retrainer.campaign.auto_accept_calibration()
    deployed = {"threshold": live.threshold, "n_control": live.n_labels, "labels_needed": live.more_labels_needed,
                "class_thresholds": {str(c): v for c, v in retrainer.campaign.class_calibration().thresholds().items()}}
    pool_ids, Xp = [], []
    for chunk_ids, chunk_X in queue.iter_pending():
        pool_ids += chunk_ids
        Xp.append(chunk_X)
    if not pool_ids or scorer.model is None:  # nothing left unlabeled: no share to speak of
        return {**offline, "share": None, "realized_precision": None, "n_unlabeled": 0,
                "deployed": {**deployed, "share": None, "realized_precision": None}}
    probas = scorer.model.predict_proba_many(np.vstack(Xp))
    pred = predict_idx(ds, probas, scorer.classes)
    truth = ds.y[np.array([int(i) for i in pool_ids])]

    def applied(threshold: float | np.ndarray | None) -> tuple[float, float | None]:
        mask = accepted(probas, threshold)
        return float(mask.mean()), float((pred[mask] == truth[mask]).mean()) if mask.any() else None

    share, realized = applied(t)
    d_share, d_realized = applied(scorer.router.auto_threshold)  # (the live version's, as the scorer applies them)
    return {**offline, "share": share, "realized_precision": realized, "n_unlabeled": len(pool_ids),
            "deployed": {**deployed, "share": d_share, "realized_precision": d_realized}}



def _auto_by_version(ds: Dataset, bus: InMemoryBus, topics: Topics) -> list[dict[str, int]]:
    """The auto-labels each model version published (at its re-ranks), checked against the ground truth."""
    by: dict[int, list[int]] = {}
    for m in bus.messages(topics.auto_labels):
        lab = decode_label(m.value)
        truth = ds.label_values([int(lab.item_id)])[0]
        n_ok = by.setdefault(int(lab.model_version or 0), [0, 0])
        n_ok[0] += 1
        n_ok[1] += int(lab.label == truth)
    return [{"version": v, "n": n, "correct": k} for v, (n, k) in sorted(by.items())]
