"""Replay a labeled dataset through the real scorer, queue and retrainer with a simulated labeler.

Each (strategy, seed) campaign gets its own in-process bus and Redis namespace; the
labels are hidden behind a simulated labeler that leases the top of the queue,
answers from the ground truth, and submits through the labeling service. Scores are
always measured on a held-out test split that is never offered for labeling.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import KFold, train_test_split

from activestream.datasets import Dataset
from activestream.labeling.service import LabelService, top_k
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.report import Curve, auc, hours_saved, labels_to_target, mean_curve, savings
from activestream.retrainer.calibration import calibrate_threshold
from activestream.retrainer.service import Retrainer
from activestream.retrainer.stopping import StopRules
from activestream.retrainer.trainer import NotEnoughClasses, Trainer
from activestream.schemas import Item
from activestream.scorer.autoaccept import accepted
from activestream.scorer.service import LiveModel, Scorer
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY, ENSEMBLE_MEMBERS, RANDOM, Strategy
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
    curriculum_labels : easy-to-hard schedule length in labels (``None``: off).
    cold_start : ``"random"`` or ``"representative"`` first labels (see ``LabelService``).
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
    curriculum_labels: int | None = None
    cold_start: str = "random"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"--metric: unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        for s in self.strategies:
            Strategy(s)  # raises on an unknown name
        for flag, value in (("--init", self.init), ("--batch", self.batch)):
            if value < 1:
                raise ValueError(f"{flag} {value}: must be at least 1")
        if self.budget < self.init:  # the seed labels alone would overspend the budget
            raise ValueError(f"--budget {self.budget} is below --init {self.init}")


@dataclass
class CampaignResult:
    strategy: str
    seed: int
    curve: Curve
    full_data_score: float
    seconds: float
    auto_accept: dict[str, Any] = field(default_factory=dict)
    dead_letters: int = 0
    stop: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- scoring


def score(ds: Dataset, metric: str, y_true_idx: np.ndarray, pred_idx: np.ndarray) -> float:
    """Metric of index-coded predictions: (n,) class indices, or (n, n_labels) 0/1 for multi-label."""
    if metric == "accuracy":
        return float(accuracy_score(y_true_idx, pred_idx))
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


def full_data_score(ds: Dataset, train: np.ndarray, test: np.ndarray, metric: str) -> float:
    """The same model trained on every training label, scored on the test split."""
    heads = Trainer(task=ds.task, full_refit_every=1, max_iter=1000).fit(ds.X[train], ds.label_values(train))
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
    """Run one simulated labeling campaign through the real services."""
    t0 = time.perf_counter()
    train, test = split(ds, seed, cfg.test_size)
    full = full_data_score(ds, train, test, cfg.metric)
    bus = InMemoryBus()
    topics = Topics()
    queue = RankedQueue(redis_client, QueueKeys(namespace=f"sim-{strategy}-{seed}-{id(bus)}"))
    queue.clear()
    scorer = Scorer(bus, queue, topics, strategy=Strategy(strategy, seed), batch_size=2000)
    strat = Strategy(strategy, seed)
    retrainer = Retrainer(bus, topics, task=ds.task, retrain_every=cfg.batch, holdout_fraction=cfg.holdout_fraction,
                          n_members=ENSEMBLE_MEMBERS if strat.needs_members else 1, stop_rules=StopRules(budget=cfg.budget))
    explore = 0.0 if strategy == RANDOM else cfg.explore
    # The random baseline stays random from its first label.
    cold_start = "random" if strategy == RANDOM else cfg.cold_start
    labeling = make_label_service(Strategy(strategy, seed), queue, bus, topics, explore=explore, curriculum_labels=cfg.curriculum_labels,
                                  cold_start=cold_start)
    try:
        for i in train:
            bus.publish(topics.items, Item(str(i), ds.X[i]).encode(binary=True), key=str(i).encode())
        scorer.run(burst=True, timeout=0.0)

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
        spent = 0
        while spent < cfg.budget:
            k = cfg.init if spent == 0 else min(cfg.batch, cfg.budget - spent)
            leased = labeling.lease(k, "simulated-labeler")
            if not leased:
                break
            for entry in leased:
                i = int(entry.id)
                answer: Any = ds.label_values([i])[0]
                if ds.task == "multilabel":
                    labeling.submit(entry.id, labeler_id="simulated-labeler", labels=answer, seconds=cfg.seconds_per_label,
                                    source="simulated")
                else:
                    labeling.submit(entry.id, labeler_id="simulated-labeler", label=answer, seconds=cfg.seconds_per_label,
                                    source="simulated")
            spent += len(leased)
            retrainer.run(burst=True, timeout=0.0)
            scorer.poll_models(0.0)
            curve.append((spent, evaluate()))
            if on_round is not None:
                on_round()
        result = CampaignResult(strategy, seed, curve, full, time.perf_counter() - t0, dead_letters=scorer.dead_letters,
                                stop=retrainer.campaign.status.as_dict())
        if ds.task == "multiclass" and scorer.model is not None:
            result.auto_accept = _auto_accept(ds, retrainer, scorer, queue, cfg)
        return result
    finally:
        # Give back the scorer's writer connection and the selector's model reader: a process
        # running many campaigns on one client would otherwise run out of pooled connections.
        with contextlib.suppress(Exception):
            scorer.close()
        labeling.close()
        queue.clear()


FALCUN_CANDIDATES = 100  # queue-head candidates per leased item for ``+falcun``
FALCUN_MAX_CANDIDATES = 10_000  # its cost grows with candidates x k: cap it for big leases
DENSITY_REFERENCE = 500  # queue items sampled per lease to measure representativeness (``+density``)


def make_label_service(
    strategy: Strategy, queue: RankedQueue, bus: Any, topics: Topics, *, explore: float = 0.0, curriculum_labels: int | None = None,
    cold_start: str = "random", entropy: int | None = None,
) -> LabelService:
    """A labeling service whose leased batches follow the strategy's batch mode.

    For ``+falcun`` it follows the models topic on ``bus`` itself: FALCUN needs the live
    model's probabilities of the candidates, which the queue does not keep. Its draws are
    seeded by the strategy's seed and ``entropy``: give each labeler process its own (the
    labeler API does) so replicas and restarts do not repeat each other's batches.
    """
    from activestream.labeling import selection

    opts: dict[str, Any] = {"explore": explore, "curriculum_labels": curriculum_labels, "cold_start": cold_start, "seed": strategy.seed}
    if strategy.batch_mode == "top":
        return LabelService(queue, bus, topics, **opts)
    prefilter = 10
    if strategy.batch_mode == "density":
        rng = np.random.default_rng((strategy.seed, 7))

        def dense(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
            # A fresh uniform sample of the queue per lease: representativeness of what is pending now.
            _, R = queue.sample(DENSITY_REFERENCE, rng)
            return selection.density_weighted(scores, X, k, reference=R, prefilter=prefilter, seed=strategy.seed)

        return LabelService(queue, bus, topics, select_batch=dense, oversample=prefilter, **opts)
    if strategy.batch_mode == "falcun":
        live = LiveModel(bus, topics)
        live.refresh(to_end=True)  # a labeler API started after the first model must not lease blind
        draws = np.random.default_rng(strategy.seed if entropy is None else [strategy.seed, entropy])

        def sampled(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
            if int(queue.get_meta("model_version") or 0) > live.version:
                live.refresh(2.0)  # the scorer already ranks by a newer version: catch up first
            top = top_k(ids, scores, X, k)
            cur = live.live
            if cur is None:  # before a model the scores are the cold-start order
                return top
            if cur.model.n_features not in (None, X.shape[1]):
                log.warning("model v%d expects %s features, queued items have %d: leasing the top %d", cur.version, cur.model.n_features, X.shape[1], k)
                return top
            try:
                P = cur.model.predict_proba_many(X)
            except Exception:  # a lease must not fail on a model the scorer would also reject
                log.exception("model v%d could not score the candidates: leasing the top %d", cur.version, k)
                return top
            # The strategy's own scores under this version, scaled to [0, 1] over the candidates
            # (FALCUN's uncertainty is 1 - margin; Li & Guo's multi-label score is unbounded).
            u = strategy.score(P, ids, task=cur.task, version=cur.version, label_cardinality=cur.label_cardinality)
            ok = np.flatnonzero(np.isfinite(P).all(axis=1) & np.isfinite(u))
            if len(ok) == 0:
                return top
            # Candidates the model cannot score (features it overflows on; the scorer ranks them last) sit out.
            P, u = P[ok], u[ok]
            picks = selection.falcun(u / u.max() if u.max() > 0 else u, P, k, seed=int(draws.integers(2**63)))
            return [int(ok[i]) for i in picks]

        return LabelService(queue, bus, topics, select_batch=sampled, oversample=FALCUN_CANDIDATES, max_candidates=FALCUN_MAX_CANDIDATES,
                            on_close=live.close, **opts)
    fn = selection.weighted_kmeans if strategy.batch_mode == "kmeans" else selection.k_center_greedy

    def select(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
        return fn(scores, X, k, seed=strategy.seed, prefilter=prefilter)

    return LabelService(queue, bus, topics, select_batch=select, oversample=prefilter, **opts)


def _auto_accept(ds: Dataset, retrainer: Retrainer, scorer: Scorer, queue: RankedQueue, cfg: SimConfig) -> dict[str, Any]:
    """Calibrate on out-of-fold predictions over the labeled set; apply to the unlabeled pool."""
    ids = sorted(retrainer.training.items, key=int)
    idx = np.array([int(i) for i in ids])
    X, yv = ds.X[idx], ds.label_values(idx)
    conf = np.zeros(len(idx))
    correct = np.zeros(len(idx), dtype=bool)
    covered = np.zeros(len(idx), dtype=bool)
    folds = KFold(min(5, len(idx)), shuffle=True, random_state=0).split(X) if len(idx) >= 2 else []  # a tiny budget: no calibration
    for tr, te in folds:
        try:
            heads = Trainer(task="multiclass", full_refit_every=1).fit(X[tr], [yv[j] for j in tr])
        except NotEnoughClasses:
            continue
        p = heads.predict_proba(X[te])
        conf[te] = p.max(axis=1)
        correct[te] = [heads.classes[a] == yv[j] for a, j in zip(p.argmax(axis=1), te, strict=True)]
        covered[te] = True
    t = calibrate_threshold(conf[covered], correct[covered], target_precision=cfg.auto_accept_precision)
    # What the deployed system would do: the retrainer's threshold, from random-control labels only.
    deployed = {"threshold": retrainer.campaign.auto_accept_threshold(), "n_control": len(retrainer.campaign.control_correct)}
    pool_ids, Xp = [], []
    for chunk_ids, chunk_X in queue.iter_pending():
        pool_ids += chunk_ids
        Xp.append(chunk_X)
    if not pool_ids or scorer.model is None:  # nothing left unlabeled: no share to speak of
        return {"threshold": t, "share": None, "realized_precision": None, "n_unlabeled": 0,
                "deployed": {**deployed, "share": None, "realized_precision": None}}
    probas = scorer.model.predict_proba_many(np.vstack(Xp))
    pred = predict_idx(ds, probas, scorer.classes)
    truth = ds.y[np.array([int(i) for i in pool_ids])]

    def applied(threshold: float | None) -> tuple[float, float | None]:
        mask = accepted(probas, threshold)
        return float(mask.mean()), float((pred[mask] == truth[mask]).mean()) if mask.any() else None

    share, realized = applied(t)
    d_share, d_realized = applied(deployed["threshold"])
    return {"threshold": t, "share": share, "realized_precision": realized, "n_unlabeled": len(pool_ids),
            "deployed": {**deployed, "share": d_share, "realized_precision": d_realized}}


# --------------------------------------------------------------------------- many campaigns


def _worker(args: tuple[Dataset, str, int, SimConfig, str]) -> CampaignResult:
    ds, strategy, seed, cfg, url = args
    logging.getLogger("activestream").setLevel(logging.WARNING)
    return run_campaign(ds, strategy, seed, cfg, redis.Redis.from_url(url))


def simulate(ds: Dataset, cfg: SimConfig, redis_url: str, *, progress: bool = True) -> dict[str, Any]:
    """Run every (strategy, seed) campaign and build the report.

    Returns
    -------
    ``{"dataset", "metric", "full_data_score", "target", "config", "strategies": {NAME: {...}}, "comparison"}``.
    """
    jobs = [(ds, s, seed, cfg, redis_url) for s in cfg.strategies for seed in cfg.seeds]
    results: list[CampaignResult] = []
    bar = _bar(len(jobs) * _rounds(cfg), progress)
    if cfg.workers > 1:
        with mp.get_context("spawn").Pool(min(cfg.workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_worker, jobs):
                results.append(res)
                bar.update(_rounds(cfg))
    else:
        client = redis.Redis.from_url(redis_url)
        for _, s, seed, _, _ in jobs:
            results.append(run_campaign(ds, s, seed, cfg, client, on_round=lambda: bar.update(1)))
    bar.close()
    return build_report(ds, cfg, results)


def _rounds(cfg: SimConfig) -> int:
    return 1 + int(np.ceil((cfg.budget - cfg.init) / cfg.batch))


def _bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="round", desc="simulating", leave=False)


def build_report(ds: Dataset, cfg: SimConfig, results: Sequence[CampaignResult]) -> dict[str, Any]:
    """The JSON report: curves averaged over seeds, labels to target, AUC, savings vs random."""
    by_seed_full = {r.seed: r.full_data_score for r in results}
    full = float(np.mean(list(by_seed_full.values())))
    target = cfg.target_fraction * full
    strategies: dict[str, Any] = {}
    for name in cfg.strategies:
        runs = sorted((r for r in results if r.strategy == name), key=lambda r: r.seed)
        curve = mean_curve([r.curve for r in runs])
        per_seed_targets = [labels_to_target(r.curve, cfg.target_fraction * r.full_data_score) for r in runs]
        entry: dict[str, Any] = {
            "curve": [[x, round(y, 6)] for x, y in curve],
            "per_seed": [[[x, round(y, 6)] for x, y in r.curve] for r in runs],
            "seeds": [r.seed for r in runs],
            "labels_to_target": labels_to_target(curve, target),
            "per_seed_labels_to_target": per_seed_targets,
            "auc": auc(curve),
            "final_score": curve[-1][1] if curve else None,
            "score_at_budget": curve[-1][1] if curve else None,
            "wall_seconds": float(sum(r.seconds for r in runs)),
        }
        entry["stop_rules"] = [r.stop for r in runs]
        aa = [r.auto_accept for r in runs if r.auto_accept]
        if aa:
            dep = [a["deployed"] for a in aa]
            entry["auto_accept"] = {
                "target_precision": cfg.auto_accept_precision,
                # An estimate: a threshold calibrated on 5-fold out-of-fold predictions over all
                # the labeled items (not only the random-control ones), applied to the live model.
                # The mean counts a seed without a threshold as 0 (see "shares").
                "method": "5-fold out-of-fold predictions over all labeled items",
                **_over_seeds(aa),
                # As deployed: the retrainer's own threshold, from random-control labels only
                # (it needs at least 100 of them, so short campaigns have none).
                "deployed": {**_over_seeds(dep), "n_control": [d["n_control"] for d in dep]},
            }
        strategies[name] = entry
    comparison: dict[str, Any] = {}
    if RANDOM in strategies:
        base = strategies[RANDOM]["labels_to_target"]
        for name, entry in strategies.items():
            if name == RANDOM:
                continue
            comparison[name] = {
                "labels_to_target": entry["labels_to_target"],
                "random_labels_to_target": base,
                "label_savings": savings(entry["labels_to_target"], base),
                "annotation_hours_saved": hours_saved(entry["labels_to_target"], base, cfg.seconds_per_label),
                "score_at_budget": entry["score_at_budget"],
                "random_score_at_budget": strategies[RANDOM]["score_at_budget"],
            }
            spent = strategies[RANDOM]["curve"][-1][0] if strategies[RANDOM]["curve"] else None
            if base is None and entry["labels_to_target"] is not None and spent:
                # Random did not reach the target within the labels it was given: it needs more
                # than those, so the savings are at least what that many would give.
                comparison[name]["label_savings_at_least"] = savings(entry["labels_to_target"], spent)
                comparison[name]["annotation_hours_saved_at_least"] = hours_saved(entry["labels_to_target"], spent, cfg.seconds_per_label)
                comparison[name]["random_labels_spent"] = spent
    return {
        "dataset": ds.name,
        "task": ds.task,
        "n_items": len(ds.X),
        "n_features": int(ds.X.shape[1]),
        "metric": cfg.metric,
        "full_data_score": full,
        "target": target,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "strategies": strategies,
        "comparison": comparison,
    }


def _over_seeds(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One auto-accept figure's seeds (``threshold``, ``share``, ``realized_precision`` each) side by side, and their means."""
    return {
        "share": _mean_or_none([r["share"] for r in per_seed]),
        "shares": [r["share"] for r in per_seed],
        "thresholds": [r["threshold"] for r in per_seed],
        "realized_precision": _mean_or_none([r["realized_precision"] for r in per_seed]),
    }


def _mean_or_none(vals: Sequence[float | None]) -> float | None:
    keep = [v for v in vals if v is not None]
    return float(np.mean(keep)) if keep else None
