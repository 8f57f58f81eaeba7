"""Labeling metrics (the labeler API's and the dispatcher's), built into an injected
``CollectorRegistry`` (never the global one), as the scorer's and retrainer's are.

The labeler API's gauges read the queue's state from Redis at scrape time: it has no loop
of its own that could set them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from activestream.rankedqueue.outage import redis_outage
from activestream.streams.metric_labels import NAMESPACE_LABEL, in_namespace

PENDING_ITEMS = "activestream_labeler_api_pending_items"
LEASED_ITEMS = "activestream_labeler_api_leased_items"
LABELED_ITEMS = "activestream_labeler_api_labeled_items"
DROPPED_ITEMS = "activestream_labeler_api_dropped_items"
DISPATCHED = "activestream_dispatched_total"
DISPATCH_ACKED = "activestream_dispatch_acked_total"
DISPATCH_SKIPPED = "activestream_dispatch_skipped_total"
DISPATCH_OUTSTANDING = "activestream_dispatch_outstanding"
DISPATCH_READERS = "activestream_dispatch_readers"


class QueueCounts(Protocol):
    """What the gauges read: the counts of a :class:`activestream.rankedqueue.RankedQueue`."""

    def n_waiting(self) -> int: ...

    def n_leased(self) -> int: ...

    def n_labeled(self) -> int: ...

    def n_dropped(self) -> int: ...


def _as_float(fn: Callable[[], int]) -> Callable[[], float]:
    """``fn`` read at each scrape; NaN (unknown) while Redis is away, so ``/metrics`` still answers: a 503 there made
    Prometheus call a live labeler API down (``ActivestreamServiceDown``) and dropped its every series."""

    def read() -> float:
        try:
            return float(fn())
        except Exception as exc:
            if redis_outage(exc) is None:
                raise
            return math.nan

    return read


@dataclass(frozen=True)
class LabelingMetrics:
    pending_items: Gauge
    leased_items: Gauge
    labeled_items: Gauge
    dropped_items: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, queue: QueueCounts, namespace: str = "default") -> LabelingMetrics:
        """Register the gauges in ``registry``, each reading ``queue`` when scraped.

        Parameters
        ----------
        registry : the labeler API's own registry (served on its ``/metrics``).
        queue : the queue the API leases from.
        namespace : its campaign (every gauge's ``namespace`` label).

        Returns
        -------
        The gauges, already bound to ``queue``.
        """
        ns = [NAMESPACE_LABEL]
        pending = in_namespace(Gauge(PENDING_ITEMS, "items waiting in the queue (expired leases included)", ns, registry=registry), namespace)
        leased = in_namespace(Gauge(LEASED_ITEMS, "items out with labelers", ns, registry=registry), namespace)
        labeled = in_namespace(Gauge(LABELED_ITEMS, "items labeled so far", ns, registry=registry), namespace)
        dropped = in_namespace(Gauge(DROPPED_ITEMS, "items that left the queue unlabeled, skipped by max_skips labelers", ns, registry=registry),
                               namespace)
        pending.set_function(_as_float(queue.n_waiting))
        leased.set_function(_as_float(queue.n_leased))
        labeled.set_function(_as_float(queue.n_labeled))
        dropped.set_function(_as_float(queue.n_dropped))
        return cls(pending_items=pending, leased_items=leased, labeled_items=labeled, dropped_items=dropped)


@dataclass(frozen=True)
class DispatcherMetrics:
    dispatched: Counter
    acked: Counter
    skipped: Counter
    outstanding: Gauge
    readers: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "default") -> DispatcherMetrics:
        """Register the dispatcher's counters and gauge in ``registry`` (its process's own), labelled with its ``namespace``."""
        ns = [NAMESPACE_LABEL]
        return cls(
            dispatched=in_namespace(Counter(DISPATCHED.removesuffix("_total"), "Items sent to the queue topic", ns, registry=registry), namespace),
            acked=in_namespace(Counter(DISPATCH_ACKED.removesuffix("_total"), "Dispatched items acknowledged by a label", ns, registry=registry), namespace),
            skipped=in_namespace(Counter(DISPATCH_SKIPPED.removesuffix("_total"), "Dispatched items a labeler passed on", ns, registry=registry), namespace),
            outstanding=in_namespace(Gauge(DISPATCH_OUTSTANDING, "Items out with labelers", ns, registry=registry), namespace),
            readers=in_namespace(Gauge(DISPATCH_READERS, "Labelers reading the queue topic (members of their consumer group; -1: not checked)", ns,
                                       registry=registry), namespace),
        )


LS_TASKS_CREATED = "activestream_labelstudio_tasks_created_total"
LS_TASKS_RESCORED = "activestream_labelstudio_tasks_rescored_total"
LS_TASKS_DELETED = "activestream_labelstudio_tasks_deleted_total"
LS_ANNOTATIONS = "activestream_labelstudio_annotations_total"
LS_OPEN_TASKS = "activestream_labelstudio_open_tasks"
LS_ERRORS = "activestream_labelstudio_sync_errors_total"


@dataclass(frozen=True)
class LabelStudioMetrics:
    created: Counter
    rescored: Counter
    deleted: Counter
    annotations: Counter
    open_tasks: Gauge
    errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LabelStudioMetrics:
        """Register the Label Studio connector's counters and gauge in ``registry`` (its process's own)."""
        return cls(
            created=Counter(LS_TASKS_CREATED.removesuffix("_total"), "Label Studio tasks created from the ranked queue", registry=registry),
            rescored=Counter(LS_TASKS_RESCORED.removesuffix("_total"), "Task predictions given a new score or model version",
                             registry=registry),
            deleted=Counter(LS_TASKS_DELETED.removesuffix("_total"), "Tasks deleted after their item left the top", registry=registry),
            annotations=Counter(LS_ANNOTATIONS.removesuffix("_total"), "Annotations read, by outcome (labeled, superseded, skipped, "
                                "duplicate, refused, empty)", ["outcome"], registry=registry),
            open_tasks=Gauge(LS_OPEN_TASKS, "Items leased to the Label Studio project", registry=registry),
            errors=Counter(LS_ERRORS.removesuffix("_total"), "Sync rounds that failed (Label Studio or Redis unreachable)", registry=registry),
        )
