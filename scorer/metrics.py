"""Scorer metrics, built into an injected ``CollectorRegistry`` (never the global one).

Every metric carries the campaign's ``namespace`` label, bound at creation
(:mod:`activestream.streams.metric_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.outage import redis_outage
from activestream.streams.metric_labels import NAMESPACE_LABEL, M, Namespaced, in_namespace

ITEMS_SCORED = "activestream_items_scored_total"
ITEMS_ENQUEUED = "activestream_items_enqueued_total"
SCORING_LATENCY = "activestream_scoring_latency_seconds"
QUEUE_DEPTH = "activestream_queue_depth"
LEASED = "activestream_queue_leased"
OLDEST_PENDING_AGE = "activestream_oldest_pending_age_seconds"
MODEL_VERSION = "activestream_scorer_model_version"
RERANK_SECONDS = "activestream_rerank_seconds"
DEAD_LETTERS = "activestream_dead_letters_total"
CONSUMER_LAG = "activestream_consumer_lag"
COMMIT_REWINDS = "activestream_scorer_commit_rewinds_total"
ITEMS_AUTO_ACCEPTED = "activestream_items_auto_accepted_total"
ITEMS_OVER_BUDGET = "activestream_items_over_budget_total"
ITEMS_READ = "activestream_items_read_total"
ITEMS_DUPLICATE = "activestream_items_duplicate_total"
SCORER_PAUSED = "activestream_scorer_paused"
SCORER_PAUSES = "activestream_scorer_pauses_total"
AUTO_ACCEPT_PAUSED = "activestream_auto_accept_paused"
ITEMS_AUTO_ACCEPTED_AT_RERANK = "activestream_items_auto_accepted_at_rerank_total"
POOL_EVICTIONS = "activestream_pool_evictions_total"
POOL_REJECTIONS = "activestream_pool_rejections_total"
POOL_AGE_EVICTIONS = "activestream_pool_age_evictions_total"
RESERVOIR_REPLACEMENTS = "activestream_reservoir_replacements_total"


@dataclass(frozen=True)
class ScorerMetrics:
    items_scored: Counter
    items_enqueued: Counter
    scoring_latency: Histogram
    queue_depth: Gauge
    leased: Gauge
    oldest_pending_age: Gauge
    model_version: Gauge
    rerank_seconds: Histogram
    dead_letters: Namespaced[Counter]
    consumer_lag: Namespaced[Gauge]
    commit_rewinds: Counter
    items_auto_accepted: Counter
    items_over_budget: Counter
    items_read: Counter
    items_duplicate: Counter
    paused: Gauge
    pauses: Namespaced[Counter]
    auto_accept_paused: Gauge
    items_auto_accepted_at_rerank: Counter
    pool_evictions: Counter
    pool_rejections: Counter
    pool_age_evictions: Counter
    reservoir_replacements: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "default") -> ScorerMetrics:
        """Register the scorer's metrics in ``registry``, labelled with the campaign's ``namespace``."""
        buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
        ns = [NAMESPACE_LABEL]

        def one(metric: M) -> M:
            return in_namespace(metric, namespace)

        return cls(
            items_scored=one(Counter(ITEMS_SCORED.removesuffix("_total"), "Items scored and newly queued (not a duplicate, not auto-accepted, not over budget)", ns, registry=registry)),
            items_enqueued=one(Counter(ITEMS_ENQUEUED.removesuffix("_total"), "Items newly added to the queue", ns, registry=registry)),
            scoring_latency=one(Histogram(SCORING_LATENCY, "Seconds to score one micro-batch end to end", ns, buckets=buckets, registry=registry)),
            queue_depth=one(Gauge(QUEUE_DEPTH, "Items waiting in the queue", ns, registry=registry)),
            leased=one(Gauge(LEASED, "Items leased to labelers", ns, registry=registry)),
            oldest_pending_age=one(Gauge(OLDEST_PENDING_AGE, "Age of the oldest unlabeled item", ns, registry=registry)),
            model_version=one(Gauge(MODEL_VERSION, "Model version the scorer serves", ns, registry=registry)),
            rerank_seconds=one(Histogram(RERANK_SECONDS, "Seconds to re-rank the queue after a new model", ns, registry=registry)),
            dead_letters=Namespaced(Counter(DEAD_LETTERS.removesuffix("_total"), "Rejected messages", [*ns, "source", "reason"], registry=registry), namespace),
            consumer_lag=Namespaced(Gauge(CONSUMER_LAG, "Messages not yet consumed", [*ns, "topic"], registry=registry), namespace),
            commit_rewinds=one(Counter(COMMIT_REWINDS.removesuffix("_total"),
                                       "Rolled-back commits (e.g. a rebalance during a transaction) after which the scorer read again from its committed offsets",
                                       ns, registry=registry)),
            # With items_scored, the share auto-accepted and the share the stream budget turned away.
            items_auto_accepted=one(Counter(ITEMS_AUTO_ACCEPTED.removesuffix("_total"),
                                            "Items whose prediction was confident enough to need no human (sent to the autolabels topic)", ns, registry=registry)),
            items_over_budget=one(Counter(ITEMS_OVER_BUDGET.removesuffix("_total"),
                                          "Items neither queued nor auto-labeled: over the stream budget (ACTIVESTREAM_LABELS_PER_HOUR)", ns, registry=registry)),
            # Each record read counts once: read = scored + duplicate + auto_accepted + over_budget + dead_letters{source=<items topic>}.
            items_read=one(Counter(ITEMS_READ.removesuffix("_total"), "Item records read and committed (each counted in exactly one outcome)", ns,
                                   registry=registry)),
            items_duplicate=one(Counter(ITEMS_DUPLICATE.removesuffix("_total"),
                                        "Item records whose id was already taken (earlier in their batch, or by the queue: pending, leased, labeled or dropped)",
                                        ns, registry=registry)),
            # Back-pressure: 1 while the scorer waits for Redis (unreachable, or full at maxmemory) instead of consuming.
            paused=one(Gauge(SCORER_PAUSED, "1 while scoring waits for Redis (unreachable or at maxmemory); 0 while it consumes", ns, registry=registry)),
            pauses=Namespaced(Counter(SCORER_PAUSES.removesuffix("_total"), "Times scoring paused for Redis, by reason "
                                      "(redis_unreachable, redis_maxmemory, redis_read_only)", [*ns, "reason"], registry=registry), namespace),
            auto_accept_paused=one(Gauge(AUTO_ACCEPT_PAUSED, "1 while the live version pauses auto-accept (audited precision below the target)",
                                         ns, registry=registry)),
            items_auto_accepted_at_rerank=one(Counter(ITEMS_AUTO_ACCEPTED_AT_RERANK.removesuffix("_total"),
                                                      "Pending items a new version was sure of at its re-rank, taken from the queue "
                                                      "(their auto-labels published first)", ns, registry=registry)),
            # The capped pool (ACTIVESTREAM_POOL_CAPACITY) and its random reservoir: what this scorer's writes did.
            pool_evictions=one(Counter(POOL_EVICTIONS.removesuffix("_total"), "Pending items evicted from the full pool by a better-ranked one", ns,
                                       registry=registry)),
            pool_rejections=one(Counter(POOL_REJECTIONS.removesuffix("_total"),
                                        "Items the full pool did not take (they did not outrank its lowest pending item; counted at commit)", ns,
                                        registry=registry)),
            pool_age_evictions=one(Counter(POOL_AGE_EVICTIONS.removesuffix("_total"), "Pending items evicted for being older than ACTIVESTREAM_POOL_MAX_AGE",
                                           ns, registry=registry)),
            reservoir_replacements=one(Counter(RESERVOIR_REPLACEMENTS.removesuffix("_total"), "Random-reservoir members replaced by a newcomer", ns,
                                               registry=registry)),
        )


def refresh_queue_gauges(metrics: ScorerMetrics, queue: RankedQueue) -> None:
    """Set the queue's gauges (depth, leased, oldest pending age); during a Redis outage they read NaN, not known (the next
    step pauses; ``activestream_scorer_paused`` says why), as the labeler API's do: a frozen age would look like a queue
    that is fine (an ops audit)."""
    try:
        metrics.queue_depth.set(queue.n_waiting())  # (leases that ran out count as waiting)
        metrics.leased.set(queue.n_leased())
        metrics.oldest_pending_age.set(queue.oldest_age())
    except Exception as exc:
        if redis_outage(exc) is None:
            raise
        for gauge in (metrics.queue_depth, metrics.leased, metrics.oldest_pending_age):
            gauge.set(float("nan"))
