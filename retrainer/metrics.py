"""Retrainer metrics, built into an injected ``CollectorRegistry``, each labelled with the campaign's ``namespace``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from activestream.streams.metric_labels import NAMESPACE_LABEL, Namespaced, in_namespace

LABELS_RECEIVED = "activestream_labels_received_total"
LABELS_BY_SOURCE = "activestream_labels_received_by_source_total"
LABELS_DUPLICATE = "activestream_labels_duplicate_total"
RETRAIN_DURATION = "activestream_retrain_duration_seconds"
MODEL_VERSION = "activestream_retrainer_model_version"
MODELS_REJECTED = "activestream_models_rejected_total"
TRAINING_SET_SIZE = "activestream_training_set_size"
DEAD_LETTERS = "activestream_retrainer_dead_letters_total"
HOLDING_USER_VERSION = "activestream_retrainer_holding_user_version"
CAMPAIGN_ESTIMATE = "activestream_campaign_estimate"
CAMPAIGN_HOURS_SPENT = "activestream_campaign_hours_spent"
ESTIMATE_FIGURES = ("accuracy", "random_labels", "labels_saved", "savings_share", "hours_saved", "accuracy_at_budget")
ESTIMATE_BOUNDS = {"estimate": "", "low": "_low", "high": "_high"}  # bound label -> metric-key suffix


@dataclass(frozen=True)
class RetrainerMetrics:
    labels_received: Counter
    labels_by_source: Namespaced[Counter]
    labels_duplicate: Counter
    retrain_duration: Histogram
    model_version: Gauge
    models_rejected: Namespaced[Counter]
    training_set_size: Gauge
    dead_letters: Namespaced[Counter]
    holding_user_version: Gauge
    campaign_estimate: Namespaced[Gauge]
    campaign_hours_spent: Gauge

    def set_estimates(self, metrics: Mapping[str, float]) -> None:
        """Set the estimate gauges from a version's ``est_*`` metrics; a figure not known (too few control labels) is NaN."""
        for figure in ESTIMATE_FIGURES:
            for bound, suffix in ESTIMATE_BOUNDS.items():
                self.campaign_estimate.labels(figure=figure, bound=bound).set(metrics.get(f"est_{figure}{suffix}", math.nan))
        self.campaign_hours_spent.set(metrics.get("est_hours_spent", math.nan))

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "default") -> RetrainerMetrics:
        """Register the retrainer's metrics in ``registry``, labelled with the campaign's ``namespace``."""
        ns = [NAMESPACE_LABEL]
        buckets = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
        return cls(
            labels_received=in_namespace(Counter(LABELS_RECEIVED.removesuffix("_total"), "Labels accepted into the training set", ns, registry=registry), namespace),
            labels_by_source=Namespaced(Counter(LABELS_BY_SOURCE.removesuffix("_total"),
                                                "Labels accepted into the training set, by source (human, baseline: imported, simulated)",
                                                [*ns, "source"], registry=registry), namespace),
            labels_duplicate=in_namespace(Counter(LABELS_DUPLICATE.removesuffix("_total"), "Labels ignored as duplicates (same label id)", ns, registry=registry),
                                          namespace),
            retrain_duration=in_namespace(Histogram(RETRAIN_DURATION, "Seconds from retrain start to publish", ns, buckets=buckets, registry=registry), namespace),
            model_version=in_namespace(Gauge(MODEL_VERSION, "Newest published model version (its own or a user's)", ns, registry=registry), namespace),
            models_rejected=Namespaced(Counter(MODELS_REJECTED.removesuffix("_total"), "Candidates that failed validation", [*ns, "reason"], registry=registry),
                                       namespace),
            training_set_size=in_namespace(Gauge(TRAINING_SET_SIZE, "Labeled items in the training set", ns, registry=registry), namespace),
            dead_letters=Namespaced(Counter(DEAD_LETTERS.removesuffix("_total"), "Rejected label messages", [*ns, "reason"], registry=registry), namespace),
            holding_user_version=in_namespace(Gauge(HOLDING_USER_VERSION, "The user model version (publish-model) the retrainer holds for, "
                                                    "publishing none of its own until --resume (0: not holding)", ns, registry=registry), namespace),
            campaign_estimate=Namespaced(Gauge(CAMPAIGN_ESTIMATE, "Live campaign estimate from the random-control labels (figure: accuracy, "
                                               "random_labels, labels_saved, savings_share, hours_saved, accuracy_at_budget; bound: estimate, "
                                               "low, high of the 95% interval); NaN: too few control labels", [*ns, "figure", "bound"],
                                               registry=registry), namespace),
            campaign_hours_spent=in_namespace(Gauge(CAMPAIGN_HOURS_SPENT, "Annotation hours spent (sum of the labels' seconds)", ns,
                                                    registry=registry), namespace),
        )
