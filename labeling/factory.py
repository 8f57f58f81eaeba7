"""A labeling service built for a strategy: how its leased batches are chosen.

Used by the labeler API (``activestream labeler-api``) and by the offline simulator, so a
simulated campaign leases exactly as a deployed labeler would.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from activestream.labeling import selection
from activestream.labeling.live_model import LiveModel
from activestream.labeling.service import LabelService, top_k
from activestream.rankedqueue import RankedQueue
from activestream.scorer.strategies import Strategy
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

FALCUN_CANDIDATES = 100  # queue-head candidates per leased item for ``+falcun``
FALCUN_MAX_CANDIDATES = 10_000  # its cost grows with candidates x k: cap it for big leases
DENSITY_REFERENCE = 500  # queue items sampled per lease to measure representativeness (``+density``)


def make_label_service(
    strategy: Strategy, queue: RankedQueue, bus: Bus, topics: Topics, *, explore: float = 0.0, curriculum_labels: int | None = None,
    cold_start: str = "random", entropy: int | None = None,
) -> LabelService:
    """A labeling service whose leased batches follow the strategy's batch mode.

    For ``+falcun`` it follows the models topic on ``bus`` itself: FALCUN needs the live
    model's probabilities of the candidates, which the queue does not keep. Its draws are
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

    Returns
    -------
    The service; :meth:`LabelService.close` releases what it follows.
    """
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
