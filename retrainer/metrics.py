"""Retrainer metrics, built into an injected ``CollectorRegistry``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LABELS_RECEIVED = "activestream_labels_received_total"
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
    labels_duplicate: Counter
    retrain_duration: Histogram
    model_version: Gauge
    models_rejected: Counter
    training_set_size: Gauge
    dead_letters: Counter
    holding_user_version: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RetrainerMetrics:
        return cls(
            labels_received=Counter(LABELS_RECEIVED.removesuffix("_total"), "Labels accepted into the training set", registry=registry),
            labels_duplicate=Counter(LABELS_DUPLICATE.removesuffix("_total"), "Labels ignored as duplicates (same label id)", registry=registry),
            retrain_duration=Histogram(RETRAIN_DURATION, "Seconds from retrain start to publish", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=registry),
            model_version=Gauge(MODEL_VERSION, "Newest published model version (its own or a user's)", registry=registry),
            models_rejected=Counter(MODELS_REJECTED.removesuffix("_total"), "Candidates that failed validation", ["reason"], registry=registry),
            training_set_size=Gauge(TRAINING_SET_SIZE, "Labeled items in the training set", registry=registry),
            dead_letters=Counter(DEAD_LETTERS.removesuffix("_total"), "Rejected label messages", ["reason"], registry=registry),
            holding_user_version=Gauge(HOLDING_USER_VERSION, "The user model version (publish-model) the retrainer holds for, "
                                       "publishing none of its own until --resume (0: not holding)", registry=registry),
        )
