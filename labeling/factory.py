"""A labeling service built for a strategy: how its leased batches are chosen.

Used by the labeler API (``activestream labeler-api``) and by the offline simulator, so a
simulated campaign leases exactly as a deployed labeler would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from activestream.labeling import selection
from activestream.labeling.bandit import ArmSelector, BanditSelector
from activestream.labeling.control_share import Explore
from activestream.labeling.live_model import LiveModel
from activestream.labeling.service import LabelService, top_k
from activestream.rankedqueue import RankedQueue
from activestream.scorer.strategies import BANDIT, BANDIT_ARMS, RANDOM, Strategy
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

FALCUN_CANDIDATES = 100  # queue-head candidates per leased item for ``+falcun``
FALCUN_MAX_CANDIDATES = 10_000  # its cost grows with candidates x k: cap it for big leases
PROJECTION_DIM = 32  # dimensions of the ``@proj`` / ``@pca`` diversity spaces
DENSITY_REFERENCE = 500  # queue items sampled per lease to measure representativeness (``+density``)


def make_label_service(
    strategy: Strategy, queue: RankedQueue, bus: Bus, topics: Topics, *, explore: Explore = 0.0, curriculum_labels: int | None = None,
    cold_start: str = "random", entropy: int | None = None, classes: Sequence[str | int] | None = None,
) -> LabelService:
    """A labeling service whose leased batches follow the strategy's batch mode.

    For every batch mode but ``top`` it follows the models topic on ``bus`` itself: FALCUN,
    diversity in probability space and the strategy bandit (``albl``) need the live model's
    probabilities of the candidates, which the queue does not keep. Its draws are
    seeded by the strategy's seed and ``entropy``: give each labeler process its own (the
    labeler API does) so replicas and restarts do not repeat each other's batches.

    Parameters
    ----------
    strategy : the scoring strategy; its batch mode (``top``, ``density``, ``falcun``,
        ``kmeans``, ``kcenter``) picks the batch selector and its seed seeds the draws.
    queue : the ranked queue leases come from.
    bus, topics : where accepted labels go (and, for ``+falcun``, where models come from).
    explore : share of each leased batch drawn at random (the random-control slice).
    curriculum_labels : easy-to-hard schedule length in labels (``None``: off).
    cold_start : ``"random"`` or ``"representative"`` first labels (see ``LabelService``).
    entropy : extra seed material for ``+falcun`` draws (one per labeler process).
    classes : the campaign's declared classes (``ACTIVESTREAM_CLASSES``; ``None``: any answer).

    Returns
    -------
    The service; :meth:`LabelService.close` releases what it follows.
    """
    opts: dict[str, Any] = {"explore": explore, "curriculum_labels": curriculum_labels, "cold_start": cold_start, "seed": strategy.seed,
                            "classes": classes}
    svc = _service(strategy, queue, bus, topics, opts, entropy)
    svc.settings = {"strategy": strategy.name, "explore": explore if isinstance(explore, float | int) else "adaptive",
                    "curriculum_labels": curriculum_labels or 0, "cold_start": cold_start, "classes": list(classes) if classes else None}
    return svc


def _service(strategy: Strategy, queue: RankedQueue, bus: Bus, topics: Topics, opts: dict[str, Any], entropy: int | None) -> LabelService:
    mode = strategy.batch_mode
    if mode == "top":
        return LabelService(queue, bus, topics, **opts)
    live = LiveModel(bus, topics)
    live.refresh(to_end=True)  # a labeler API started after the first model must not lease blind
    draws = np.random.default_rng(strategy.seed if entropy is None else [strategy.seed, entropy])
    if mode == BANDIT:
        arms: dict[str, ArmSelector | None] = {}
        for arm in BANDIT_ARMS:
            s = Strategy(arm, strategy.seed)
            arms[arm] = None if s.score_name == RANDOM else _selector(s, queue, live, draws)[0]
        bandit = BanditSelector(arms, live, queue, seed=strategy.seed if entropy is None else hash((strategy.seed, entropy)) % 2**32)
        return LabelService(queue, bus, topics, select_batch=bandit, oversample=FALCUN_CANDIDATES, max_candidates=FALCUN_MAX_CANDIDATES,
                            on_close=live.close, plan_random=bandit.random_picks, on_label=bandit.observe, **opts)
    select, oversample = _selector(strategy, queue, live, draws)
    return LabelService(queue, bus, topics, select_batch=select, oversample=oversample,
                        max_candidates=FALCUN_MAX_CANDIDATES if mode == "falcun" else None, on_close=live.close, **opts)


def _probas(live: LiveModel, queue: RankedQueue, X: np.ndarray) -> np.ndarray | None:
    """The live model's (m, n_outputs) probabilities of ``X``, or ``None`` (no model yet, another width, a failure: logged)."""
    if int(queue.get_meta("model_version") or 0) > live.version:
        live.refresh(2.0)  # the scorer already ranks by a newer version: catch up first
    cur = live.live
    if cur is None:
        return None
    if cur.model.n_features not in (None, X.shape[1]):
        log.warning("model v%d expects %s features, queued items have %d: selecting without it", cur.version, cur.model.n_features, X.shape[1])
        return None
    try:
        return cur.model.predict_proba_many(X)
    except Exception:  # a lease must not fail on a model the scorer would also reject
        log.exception("model v%d could not score the candidates", cur.version)
        return None


def _selector(strategy: Strategy, queue: RankedQueue, live: LiveModel, draws: np.random.Generator) -> tuple[ArmSelector, int]:
    """The batch selector of a ``+kmeans`` / ``+kcenter`` / ``+density`` / ``+falcun`` strategy (or ``top``) and its oversampling."""
    mode = strategy.batch_mode
    prefilter = 10
    if mode == "top":
        return top_k, 1

    def in_space(X: np.ndarray) -> tuple[np.ndarray, bool]:
        """Where distances are measured: (the rows, whether to standardize them)."""
        space = strategy.space_for(X.shape[1])
        if space == "features":
            return X, True
        if space == "proj":  # the same seeded matrix for every batch of the campaign
            return selection.random_projection(X, PROJECTION_DIM, seed=strategy.seed), False
        if space == "pca":
            return selection.pca_projection(X, PROJECTION_DIM), False
        P = _probas(live, queue, X)
        return (X, True) if P is None or not np.isfinite(P).all() else (P, False)

    if mode == "density":
        rng = np.random.default_rng((strategy.seed, 7))

        def dense(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
            # A fresh uniform sample of the queue per lease: representativeness of what is pending now.
            _, R = queue.sample(DENSITY_REFERENCE, rng)
            Z, std = in_space(np.vstack([X, R]) if len(R) else X)
            return selection.density_weighted(scores, Z[: len(X)], k, reference=Z[len(X):], prefilter=prefilter, seed=strategy.seed,
                                              standardize=std)

        return dense, prefilter
    if mode == "falcun":

        def sampled(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
            top = top_k(ids, scores, X, k)
            P = _probas(live, queue, X)
            cur = live.live
            if P is None or cur is None:  # before a model the scores are the cold-start order
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

        return sampled, FALCUN_CANDIDATES
    fn = selection.weighted_kmeans if mode == "kmeans" else selection.k_center_greedy

    def select(ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> list[int]:
        Z, std = in_space(X)
        return fn(scores, Z, k, seed=strategy.seed, prefilter=prefilter, standardize=std)

    return select, prefilter
