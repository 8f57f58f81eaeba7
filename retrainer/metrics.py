"""Retrainer metrics, built into an injected ``CollectorRegistry``, each labelled with the campaign's ``namespace``."""

from __future__ import annotations

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
        )
