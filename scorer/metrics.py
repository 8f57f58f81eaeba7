"""Scorer metrics, built into an injected ``CollectorRegistry`` (never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
SCORER_PAUSED = "activestream_scorer_paused"
SCORER_PAUSES = "activestream_scorer_pauses_total"


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
    dead_letters: Counter
    consumer_lag: Gauge
    commit_rewinds: Counter
    items_auto_accepted: Counter
    items_over_budget: Counter
    paused: Gauge
    pauses: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ScorerMetrics:
        buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
        return cls(
            items_scored=Counter(ITEMS_SCORED.removesuffix("_total"), "Items scored for the queue (not auto-accepted, not over budget)", registry=registry),
            items_enqueued=Counter(ITEMS_ENQUEUED.removesuffix("_total"), "Items newly added to the queue", registry=registry),
            scoring_latency=Histogram(SCORING_LATENCY, "Seconds to score one micro-batch end to end", buckets=buckets, registry=registry),
            queue_depth=Gauge(QUEUE_DEPTH, "Items waiting in the queue", registry=registry),
            leased=Gauge(LEASED, "Items leased to labelers", registry=registry),
            oldest_pending_age=Gauge(OLDEST_PENDING_AGE, "Age of the oldest unlabeled item", registry=registry),
            model_version=Gauge(MODEL_VERSION, "Model version the scorer serves", registry=registry),
            rerank_seconds=Histogram(RERANK_SECONDS, "Seconds to re-rank the queue after a new model", registry=registry),
            dead_letters=Counter(DEAD_LETTERS.removesuffix("_total"), "Rejected messages", ["source", "reason"], registry=registry),
            consumer_lag=Gauge(CONSUMER_LAG, "Messages not yet consumed", ["topic"], registry=registry),
            commit_rewinds=Counter(COMMIT_REWINDS.removesuffix("_total"),
                                   "Rolled-back commits (e.g. a rebalance during a transaction) after which the scorer read again from its committed offsets",
                                   registry=registry),
            # With items_scored, the share auto-accepted and the share the stream budget turned away.
            items_auto_accepted=Counter(ITEMS_AUTO_ACCEPTED.removesuffix("_total"),
                                        "Items whose prediction was confident enough to need no human (sent to the autolabels topic)", registry=registry),
            items_over_budget=Counter(ITEMS_OVER_BUDGET.removesuffix("_total"),
                                      "Items neither queued nor auto-labeled: over the stream budget (ACTIVESTREAM_LABELS_PER_HOUR)", registry=registry),
            # Back-pressure: 1 while the scorer waits for Redis (unreachable, or full at maxmemory) instead of consuming.
            paused=Gauge(SCORER_PAUSED, "1 while scoring waits for Redis (unreachable or at maxmemory); 0 while it consumes", registry=registry),
            pauses=Counter(SCORER_PAUSES.removesuffix("_total"), "Times scoring paused for Redis, by reason "
                           "(redis_unreachable, redis_maxmemory, redis_read_only)", ["reason"], registry=registry),
        )
