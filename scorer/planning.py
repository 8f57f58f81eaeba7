"""Planning a micro-batch before anything is written: score, route, and isolate the items scoring fails on.

:func:`plan_batch` decides where a batch's valid, distinct items go (the queue, the
auto-labels topic, nowhere when over budget) and which the model cannot score. Should it
raise for a batch, :func:`plan_each` plans the items one at a time: those that fail alone
are dead letters with the exception as the reason, the others go on, so a poison record
never stops the stream (nor, by stopping the scorer on the same offset again and again,
every item behind it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from activestream.rankedqueue.pool import first_of_each_id
from activestream.schemas import DecodeError, Label
from activestream.schemas.errors import show
from activestream.scorer.autoaccept import item_thresholds
from activestream.scorer.batches import BatchCounts
from activestream.scorer.routing import Router
from activestream.streams.bus import Record

# Not the record's fault: an outage of Redis or the network, or the process out of memory.
# These stop the batch (nothing of it is committed; it is read again), never dead-letter it.
OUTAGES: tuple[type[BaseException], ...] = (redis.RedisError, OSError, MemoryError)

ScoreFn = Callable[[np.ndarray, Sequence[str]], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class Planned:
    """Where a micro-batch's valid, distinct items go, decided before anything is written.

    Parameters
    ----------
    ids, X, metas, scores : (m,) ids, (m, n_features) rows, metadata and scores of the items for the queue.
    auto : item id -> auto-label record of each auto-accepted item.
    auto_metas : item id -> metadata of each auto-accepted item that has any (what an audit of it shows a labeler).
    errors : ``(position, DecodeError)`` of each item scoring failed for (a dead letter each).
    counts : auto-accepted, over budget, and ``scored`` = ``m`` until the write tells which were new.
    """

    ids: list[str]
    X: np.ndarray
    metas: list[dict[str, Any]]
    scores: np.ndarray
    auto: dict[str, Record]
    errors: list[tuple[int, DecodeError]]
    counts: BatchCounts
    auto_metas: dict[str, dict[str, Any]] = field(default_factory=dict)


def scoring_failed(item_id: str, exc: BaseException) -> DecodeError:
    """The dead-letter reason for an item the scorer failed on after decoding it."""
    return DecodeError(item_id, None, f"scoring it failed: {type(exc).__name__}: {show(str(exc))}")


def plan_each(ids: Sequence[str], index: Sequence[int], width: int, plan_one: Callable[[int], Planned]) -> Planned:
    """Plan a batch one item at a time (``plan_one(j)`` for item ``j``); an item whose plan raises is an error.

    What the scorer does when a batch's plan raised: the items that fail alone are dead
    letters, the others go on, so one poison record never stops the stream. An outage
    (:data:`OUTAGES`) is raised, not blamed on the item.
    """
    parts: list[Planned] = []
    errors: list[tuple[int, DecodeError]] = []
    for j in range(len(ids)):
        try:
            parts.append(plan_one(j))
        except OUTAGES:
            raise
        except Exception as exc:
            errors.append((index[j], scoring_failed(ids[j], exc)))
    counts = BatchCounts()
    for p in parts:
        counts.add(p.counts)
        errors += p.errors
    kept = [p for p in parts if p.ids]
    return Planned(
        [i for p in kept for i in p.ids],
        np.vstack([p.X for p in kept]).astype(np.float32) if kept else np.zeros((0, width), dtype=np.float32),
        [m for p in kept for m in p.metas],
        np.concatenate([p.scores for p in kept]) if kept else np.zeros(0),
        {k: r for p in parts for k, r in p.auto.items()},
        sorted(errors, key=lambda e: e[0]),
        counts,
    )


def first_writes(
    ids: list[str], X: np.ndarray, metas: list[dict[str, Any]], index: list[int]
) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[int], int]:
    """A decoded batch with each id's first occurrence only (the queue's first write wins), and how many were left out.

    ``X : (n, d)`` rows, ``metas`` and ``index`` (the records' positions) go with ``ids``.
    """
    if len(set(ids)) == len(ids):
        return ids, X, metas, index, 0
    keep = first_of_each_id(ids)
    return [ids[j] for j in keep], X[keep], [metas[j] for j in keep], [index[j] for j in keep], len(ids) - len(keep)


@dataclass(frozen=True)
class LiveFacts:
    """What routing a batch reads of the live model and the scorer's settings."""

    version: int
    task: str
    classes: tuple[object, ...]
    auto_labels_topic: str
    labels_per_hour: float | None


def auto_label_record(item_id: str, x: np.ndarray, p: np.ndarray, threshold: float, live: LiveFacts) -> Record:
    """The auto-labels record of an item the live version accepts (``x : (n_features,)``, ``p : (k,)``).

    Its label id, ``auto:{item}:v{version}``, is the same however often it is made: a record sent
    again after a crash is the same label (consumers keep one per label id, the export one per item).
    """
    label = Label(item_id, f"auto:{item_id}:v{live.version}", f"auto:v{live.version}", label=live.classes[int(p.argmax())],  # type: ignore[arg-type]
                  features=x, source="auto", model_version=live.version, confidence=min(1.0, float(p.max())), threshold=threshold)
    return Record(live.auto_labels_topic, label.encode(), item_id.encode())


def plan_batch(
    ids: list[str], X: np.ndarray, metas: list[dict[str, Any]], index: list[int], *, score: ScoreFn, router: Router, live: LiveFacts,
    now: float,
) -> Planned:
    """Score and route distinct valid items.

    Parameters
    ----------
    ids, X, metas : (m,) ids, (m, n_features) rows and metadata of the items.
    index : (m,) their positions among the batch's messages (for dead letters).
    score : ``(X, ids) -> (scores (m,), probas (m, k) or None)`` under the live model.
    router : auto-accept and stream-budget decisions (its budget advances).
    live : the live version's facts; ``now`` : monotonic seconds (the arrival rate).
    """
    counts = BatchCounts()
    scores, probas = score(X, ids) if ids else (np.zeros(0), None)
    bad = ~np.isfinite(scores) if probas is None else ~(np.isfinite(scores) & np.isfinite(probas).all(axis=1))
    errors: list[tuple[int, DecodeError]] = []
    if bad.any():  # finite features the model still overflows on (e.g. 3e38): one item must not stop the stream
        reason = f"model v{live.version} gives non-finite probabilities for these values (too large for float32 arithmetic?)"
        errors = [(index[j], DecodeError(ids[j], "features", reason)) for j in np.flatnonzero(bad)]
        ok = np.flatnonzero(~bad)
        ids, X, metas, scores = [ids[j] for j in ok], X[ok], [metas[j] for j in ok], scores[ok]
        probas = probas[ok] if probas is not None else None
    auto: dict[str, Record] = {}
    auto_metas: dict[str, dict[str, Any]] = {}
    if ids and probas is not None and (router.auto_threshold is not None or router.budget is not None):
        if live.labels_per_hour:
            router.observe_arrivals(len(ids), now, live.labels_per_hour)
        routes = router.route(probas, live.task)
        router.update(probas, routes, live.task)
        passed = item_thresholds(probas, router.auto_threshold)
        for j in np.flatnonzero(routes.auto):
            auto[ids[j]] = auto_label_record(ids[j], X[j], probas[j], float(passed[j]), live)
            if metas[j]:
                auto_metas[ids[j]] = metas[j]
        counts.auto_accepted += int(routes.auto.sum())
        counts.refused += int(routes.refused.sum())
        keep = np.flatnonzero(routes.queue)
        ids, X, metas, scores = [ids[j] for j in keep], X[keep], [metas[j] for j in keep], scores[keep]
    counts.scored = len(ids)
    return Planned(ids, X, metas, scores, auto, errors, counts, auto_metas)
