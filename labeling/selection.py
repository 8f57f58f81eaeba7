"""Batch selection among the top candidates: diversity so a leased batch is not k near-copies.

Pure functions over ``scores : (m,)`` and ``X : (m, n_features)`` of the ``m`` best
candidates (best first); each returns the indices of the ``k`` to lease.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, X: np.ndarray, k: int, *, seed: int = 0) -> list[int]:
    """The ``k`` best-scored candidates."""
    return list(np.argsort(-np.asarray(scores), kind="stable")[:k])


def _standardize(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    sd[sd < 1e-12] = 1.0
    return (X - X.mean(axis=0)) / sd  # type: ignore[no-any-return]


def random_projection(X: np.ndarray, dim: int = 32, *, seed: int = 0) -> np.ndarray:
    """Standardized rows mapped to ``dim`` dimensions by a fixed seeded Gaussian matrix (Johnson-Lindenstrauss).

    The matrix depends only on ``(seed, n_features, dim)``, so every batch of a campaign is
    projected alike; columns are standardized over the given rows first (as for ``features``).

    Parameters
    ----------
    X : (m, n_features) features.
    dim : target dimensions; with ``n_features <= dim`` the standardized ``X`` is returned as is.
    seed : seed of the projection matrix (the strategy's seed).

    Returns
    -------
    (m, min(dim, n_features)) float64 rows; squared distances are preserved in expectation.
    """
    Z = _standardize(X)
    if Z.shape[1] <= dim:
        return Z
    R = np.random.default_rng([seed, Z.shape[1], dim]).standard_normal((Z.shape[1], dim)) / np.sqrt(dim)
    return Z @ R  # type: ignore[no-any-return]


def pca_projection(X: np.ndarray, dim: int = 32) -> np.ndarray:
    """Standardized rows on their own ``dim`` leading principal components (of these rows).

    Parameters
    ----------
    X : (m, n_features) features.
    dim : components kept (at most ``min(m, n_features)``).

    Returns
    -------
    (m, min(dim, m, n_features)) float64 scores on the components.
    """
    Z = _standardize(X)
    Zc = Z - Z.mean(axis=0)
    U, S, _ = np.linalg.svd(Zc, full_matrices=False)
    r = min(dim, len(S))
    return U[:, :r] * S[:r]  # type: ignore[no-any-return]


def _best(scores: np.ndarray, k: int, prefilter: int) -> np.ndarray:
    """Indices ``(c,)`` of the ``prefilter * k`` best-scored candidates, best first."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[: min(len(scores), prefilter * k)]


def _candidates(scores: np.ndarray, X: np.ndarray, k: int, prefilter: int, standardize: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``prefilter * k`` best candidates: ``(indices (c,), standardized X (c, d), positive weights (c,))``.

    ``standardize=False`` keeps ``X`` as it is (probability vectors: a rare class's column
    must not be blown up to the others' scale).
    """
    s = np.asarray(scores, dtype=np.float64)
    cand = _best(s, k, prefilter)
    Z = _standardize(X[cand]) if standardize else np.asarray(X, dtype=np.float64)[cand]
    return cand, Z, s[cand] - s[cand].min() + 1e-6


def weighted_kmeans(scores: np.ndarray, X: np.ndarray, k: int, *, seed: int = 0, prefilter: int = 10, standardize: bool = True) -> list[int]:
    """Diverse mini-batch selection (Zhdanov, 2019): cluster the ``prefilter * k`` best candidates
    into ``k`` clusters weighted by score and take the candidate nearest each centroid.

    Parameters
    ----------
    scores : (m,) informativeness of the candidates.
    X : (m, n_features) their features (or embeddings).
    k : batch size.
    prefilter : candidates considered per batch slot.
    standardize : standardize ``X``'s columns first (features); ``False`` for probability vectors.

    Returns
    -------
    ``k`` distinct indices (fewer if ``m < k``).
    """
    from sklearn.cluster import KMeans

    if len(scores) <= k:
        return list(range(len(scores)))
    cand, Z, w = _candidates(scores, X, k, prefilter, standardize)
    n_clusters = min(k, len(np.unique(Z, axis=0)))  # copies cannot make more clusters than distinct rows
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, max_iter=50).fit(Z, sample_weight=w)
    chosen: list[int] = []
    taken = np.zeros(len(cand), dtype=bool)
    d = ((Z[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(axis=2)  # (c, n_clusters)
    for j in range(n_clusters):
        order = np.argsort(d[:, j])
        for i in order:
            if not taken[i]:
                taken[i] = True
                chosen.append(int(cand[i]))
                break
    # Fewer clusters than k: the rest are the best-scored candidates not taken (best first).
    chosen += [int(cand[i]) for i in np.flatnonzero(~taken)[: k - len(chosen)]]
    return chosen


def k_center_greedy(scores: np.ndarray, X: np.ndarray, k: int, *, seed: int = 0, prefilter: int = 10, standardize: bool = True) -> list[int]:
    """Greedy k-center over the ``prefilter * k`` best candidates, starting from the best one.

    Each next pick is the candidate farthest from those already picked, with distances
    weighted by score so informative outliers are preferred over uninformative ones.
    ``X`` : (m, d) features (standardized here) or, with ``standardize=False``, the live
    model's (m, n_classes) probabilities: with many features, raw distances are dominated
    by outliers and noise (see docs/benchmarks.md, issue 23).
    """
    if len(scores) <= k:
        return list(range(len(scores)))
    cand, Z, w = _candidates(scores, X, k, prefilter, standardize)
    w = w / w.max()
    chosen = [0]
    dmin = ((Z - Z[0]) ** 2).sum(axis=1)
    dmin[0] = -np.inf  # never picked twice, even when the rest are copies of a pick (all at distance 0)
    for _ in range(k - 1):
        pick = int(np.argmax(dmin * w))  # ties (e.g. all copies): the best-scored, candidates are best first
        chosen.append(pick)
        dmin = np.minimum(dmin, ((Z - Z[pick]) ** 2).sum(axis=1))
        dmin[pick] = -np.inf
    return [int(cand[i]) for i in chosen]


def density_weighted(
    scores: np.ndarray, X: np.ndarray, k: int, *, reference: np.ndarray, beta: float = 1.0, prefilter: int = 10, seed: int = 0,
    standardize: bool = True,
) -> list[int]:
    """Information density (Settles & Craven, 2008): informativeness times representativeness.

    Among the ``prefilter * k`` best candidates, each score is multiplied by the candidate's
    mean RBF similarity to a sample of the whole queue raised to ``beta``, so an uncertain
    item in a dense region outranks an equally uncertain outlier; the ``k`` best are taken.

    Parameters
    ----------
    scores : (m,) informativeness of the candidates.
    X : (m, n_features) their features.
    k : batch size.
    reference : (r, n_features) features of a uniform sample of the pending items; it
        also fixes the standardization and the RBF width (median squared distance).
    beta : weight of representativeness (0 = plain scores).
    standardize : standardize by the reference's columns (features); ``False`` for probability
        vectors (``X`` and ``reference`` then both hold the live model's probabilities).

    Returns
    -------
    ``k`` distinct indices (fewer if ``m < k``).
    """
    if len(scores) <= k:
        return list(range(len(scores)))
    cand = _best(scores, k, prefilter)
    # The scores themselves (all strategies' are >= 0), not shifted to the candidates' minimum:
    # a product must not zero out the last candidate.
    w = np.maximum(np.asarray(scores, dtype=np.float64)[cand], 0.0) + 1e-12
    R = np.asarray(reference, dtype=np.float64)
    if len(R) < 2:  # nothing to measure density against: plain scores
        return [int(c) for c in cand[:k]]
    mu, sd = (R.mean(axis=0), R.std(axis=0)) if standardize else (np.zeros(R.shape[1]), np.ones(R.shape[1]))
    sd[sd < 1e-12] = 1.0
    Zc, Zr = (np.asarray(X, dtype=np.float64)[cand] - mu) / sd, (R - mu) / sd
    d2 = (Zc**2).sum(axis=1)[:, None] - 2.0 * Zc @ Zr.T + (Zr**2).sum(axis=1)[None, :]  # (c, r)
    d2 = np.maximum(d2, 0.0)
    width = float(np.median(d2)) or 1.0
    density = np.exp(-d2 / width).mean(axis=1)
    order = np.argsort(-(w * density**beta), kind="stable")[:k]
    return [int(cand[i]) for i in order]


def falcun(scores: np.ndarray, probas: np.ndarray, k: int, *, gamma: float = 10.0, seed: int = 0) -> list[int]:
    """FALCUN (Gilhuber et al., 2024): uncertainty plus diversity in probability space, sampled.

    The first pick is drawn with probability proportional to ``(2 u)**gamma``; each next one
    to ``(u + d)**gamma`` where ``d`` is the candidate's L1 distance in probability space to
    the nearest item already picked, min-max normalized over the candidates. Sampling (not
    arg-max) keeps a batch from piling into one ambiguous region; ``gamma`` sets how greedy.

    Parameters
    ----------
    scores : (m,) uncertainties of the candidates in ``[0, 1]`` (clipped to it); FALCUN's
        own is ``1 - margin``.
    probas : (m, n_classes) the live model's probabilities for them.
    k : batch size.
    gamma : sharpness (0 = uniform, large = greedy).
    seed : seed of the draws.

    Returns
    -------
    ``k`` distinct indices (fewer if ``m < k``).
    """
    u = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    P = np.asarray(probas, dtype=np.float64)
    m = len(u)
    if m <= k:
        return list(range(m))
    rng = np.random.default_rng(seed)
    dist = u.copy()
    taken = np.zeros(m, dtype=bool)
    chosen: list[int] = []
    for _ in range(k):
        if chosen:
            dist = np.minimum(dist, np.abs(P - P[chosen[-1]]).sum(axis=1))
            lo, span = dist.min(), dist.max() - dist.min()
            dist = (dist - lo) / span if span > 0 else dist - lo
        # (u + d)**gamma, in log space so a large gamma neither overflows nor underflows
        with np.errstate(divide="ignore"):
            log_rel = gamma * np.log(u + dist) if gamma > 0 else np.zeros(m)
        log_rel[taken] = -np.inf
        if np.isneginf(log_rel).all():  # nothing relevant left: uniform over what is not taken
            log_rel = np.where(taken, -np.inf, 0.0)
        rel = np.exp(log_rel - log_rel.max())
        pick = int(rng.choice(m, p=rel / rel.sum()))
        taken[pick] = True
        chosen.append(pick)
    return chosen
