"""Probabilities to scores with a model session and a strategy: live micro-batches and re-ranks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from activestream.scorer.model import OnnxClassifier
from activestream.scorer.strategies import Strategy

log = logging.getLogger(__name__)


def score_and_probas(
    X: np.ndarray, ids: Sequence[str], model: OnnxClassifier | None, strategy: Strategy, *, task: str, version: int,
    label_cardinality: float | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Score ``X`` with ``model`` (``None`` before any model: the strategy's cold-start scores).

    Parameters
    ----------
    X : (n, n_features) feature rows.
    ids : (n,) their item ids (the random parts of strategies are seeded per id).
    model : a session of the live version, or ``None``.
    strategy : how probabilities become scores.
    task, version, label_cardinality : the live version's facts the strategy reads.

    Returns
    -------
    scores : (n,) higher is more informative.
    probas : (n, k) the model's probabilities (the members' mean for a committee), or ``None``.
    """
    members = None
    if model is None:
        probas = None
    elif strategy.needs_members and "member_probabilities" in model.output_names:
        (raw,) = model.run(X, ["member_probabilities"])  # (n, members, k)
        members = np.asarray(raw, dtype=np.float64).transpose(1, 0, 2)
        probas = members.mean(axis=0)
    else:
        probas = model.predict_proba_many(X)
    scores = strategy.score(probas, ids, task=task, version=version, members=members, label_cardinality=label_cardinality)
    return scores, probas


def rerank_scores(
    X: np.ndarray, ids: Sequence[str], model: OnnxClassifier, strategy: Strategy, *, width: int | None, task: str, version: int,
    label_cardinality: float | None, on_probas: Callable[[Sequence[str], np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """:func:`score_and_probas` for a re-rank: an item the model cannot score goes last.

    It was accepted (e.g. before any model, when it got a random score), so it stays
    queued rather than blocking every re-rank; ``-1`` is below every strategy's scores.
    So does a row of another width than ``width``, the features the model reads (``None``: unknown).

    Parameters
    ----------
    X : (n, n_cols) pending rows of one stored width.
    ids : (n,) their item ids.
    on_probas : called with ``(ids, X, probas (n, k))`` of the rows the model scored (re-rank auto-accept).

    Returns
    -------
    scores : (n,) with ``-1`` for rows the model cannot score.
    """
    if width is not None and X.shape[1] != width:  # (items written under another n_features setting)
        log.warning("model v%d reads %d features; %d pending item(s) have %d (e.g. %s): ranked last", version, width, len(X),
                    X.shape[1], ids[0] if len(ids) else "?")
        return np.full(len(X), -1.0)
    scores, probas = score_and_probas(X, ids, model, strategy, task=task, version=version, label_cardinality=label_cardinality)
    bad = ~np.isfinite(scores)
    if on_probas is not None and probas is not None:
        ok = np.flatnonzero(~bad & np.isfinite(probas).all(axis=1)).tolist()
        on_probas([ids[j] for j in ok], X[ok], probas[ok])
    if bad.any():
        first = ids[int(np.flatnonzero(bad)[0])]
        log.warning("model v%d gives %d pending item(s) non-finite scores (e.g. %s): ranked last", version, int(bad.sum()), first)
        scores = np.where(bad, -1.0, scores)
    return scores
