"""Retrainer metrics, built into an injected ``CollectorRegistry``, each labelled with the campaign's ``namespace``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from activestream.schemas.campaign import AUTO_ACCEPT_FIGURES, BOUNDS, ESTIMATE_FIGURES, beyond_curve, estimate_key, fired_rules, score_fell
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
CAMPAIGN_STOP = "activestream_campaign_stop"
CAMPAIGN_STOP_FIRED_LABELS = "activestream_campaign_stop_fired_labels"
CAMPAIGN_AUTO_ACCEPT = "activestream_campaign_auto_accept"
CAMPAIGN_CONTROL_LABELS = "activestream_campaign_control_labels"
CAMPAIGN_SCORE_FELL = "activestream_campaign_score_fell"


@dataclass(frozen=True)
class CampaignGauges:
    """The newest version's campaign figures (:mod:`activestream.schemas.campaign`), as gauges; a figure
    the version does not carry (too few control labels) has no series rather than a stale or zero one."""

    estimate: Gauge
    hours_spent: Gauge
    stop: Gauge
    stop_fired_labels: Gauge
    auto_accept: Gauge
    control_labels: Gauge
    score_fell: Gauge
    namespace: str

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str) -> CampaignGauges:
        ns = [NAMESPACE_LABEL]
        return cls(
            estimate=Gauge(CAMPAIGN_ESTIMATE, "Live estimate from the random-control labels, with its 95% interval (bound=low/high)",
                           [*ns, "figure", "bound"], registry=registry),
            hours_spent=Gauge(CAMPAIGN_HOURS_SPENT, "Annotation hours spent (the labels' seconds)", ns, registry=registry),
            stop=Gauge(CAMPAIGN_STOP, "1 once a stop rule fired (a signal that more labels may add little, not a lock)", ns, registry=registry),
            stop_fired_labels=Gauge(CAMPAIGN_STOP_FIRED_LABELS, "Labels used when each fired stop rule first fired", [*ns, "rule"], registry=registry),
            auto_accept=Gauge(CAMPAIGN_AUTO_ACCEPT, "Auto-accept state of the newest version (threshold, precision_lower_bound, labels_needed, "
                              "paused, audit_n, audit_correct, audit_precision_lower_bound)", [*ns, "figure"], registry=registry),
            control_labels=Gauge(CAMPAIGN_CONTROL_LABELS, "Random-control labels scored (state=scored), and how many more the estimates "
                                 "need (state=needed), and the control walk's sample the estimates use (state=sample)", [*ns, "state"], registry=registry),
            score_fell=Gauge(CAMPAIGN_SCORE_FELL, "1 while the newest two versions' estimated score is below the best before them by more "
                             "than three standard errors (a drifted stream?)", ns, registry=registry),
            namespace=namespace,
        )

    def show(self, metrics: Mapping[str, float]) -> None:
        """Set every gauge from a version record's ``metrics``; remove the series of figures it does not carry."""

        def put(gauge: Gauge, value: float | None, *labels: str) -> None:
            if value is not None:
                gauge.labels(self.namespace, *labels).set(float(value))
            else:
                try:
                    gauge.remove(self.namespace, *labels)
                except KeyError:
                    pass

        for figure in ESTIMATE_FIGURES:
            for bound in BOUNDS:  # (+Inf where random's fitted curve never reaches the accuracy: no count of labels)
                value = math.inf if beyond_curve(metrics, figure, bound) else metrics.get(estimate_key(figure, bound))
                put(self.estimate, value, figure, bound)
        put(self.hours_spent, metrics.get("est_hours_spent"))
        put(self.stop, float(bool(metrics.get("stop"))))
        fired = fired_rules(metrics)
        for rule, at in fired.items():
            put(self.stop_fired_labels, float(at.get("n_labels", 0)), rule)
        for figure, key in AUTO_ACCEPT_FIGURES.items():
            put(self.auto_accept, metrics.get(key), figure)
        put(self.control_labels, metrics.get("n_control"), "scored")
        put(self.control_labels, metrics.get("est_control_labels_needed"), "needed")
        put(self.control_labels, metrics.get("est_sample_size"), "sample")  # (the control walk's sample: its picks and the labels below it)
        put(self.score_fell, float(score_fell(metrics) is not None))


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
    campaign: CampaignGauges

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
            campaign=CampaignGauges.create(registry, namespace),
        )
