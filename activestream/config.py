"""Settings: one frozen object built once at start-up from the environment and flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY

ENV_PREFIX = "ACTIVESTREAM_"
# ACTIVESTREAM_KAFKA_* names that are not librdkafka settings: the broker address (a field)
# and the local broker's jar directory (activestream.local_kafka.LIBS_ENV).
NOT_KAFKA_CONFIG = (ENV_PREFIX + "KAFKA_BOOTSTRAP_SERVERS", ENV_PREFIX + "KAFKA_LIBS")


@dataclass(frozen=True)
class Settings:
    """Everything a service reads at start-up.

    Each field ``name`` is read from ``ACTIVESTREAM_NAME`` (``REDIS_URL`` and
    ``KAFKA_BOOTSTRAP_SERVERS`` also without the prefix). Extra librdkafka
    settings (SASL/TLS, ...) pass through from ``ACTIVESTREAM_KAFKA_<KEY>`` with
    ``_`` turned into ``.``, e.g. ``ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL``.
    """

    redis_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    topic_prefix: str = "activestream"
    namespace: str = "default"
    partitions: int = 2
    replication_factor: int = 1
    strategy: str = DEFAULT_STRATEGY
    seed: int = 0
    batch_size: int = 1000
    n_features: int | None = None
    feature_names: str | None = None  # comma-separated order of named-field item features
    explore: float = DEFAULT_EXPLORE
    curriculum_labels: int | None = None
    cold_start: str = "random"  # or "representative": first labels from k-means centroids of the queue
    auto_accept: int = 1  # 0 turns off routing confident items to the auto-labels topic
    labels_per_hour: float | None = None  # stream budget for queue admission (None: admit all)
    lease_ttl: float = 300.0
    max_skips: int = 3
    retrain_every: int = 10
    retrain_interval: float = 30.0
    full_refit_every: int = 10
    holdout_fraction: float = 0.1
    tolerance: float = 0.05
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape
    kafka_config: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``env`` (default ``os.environ``), then apply non-``None`` ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "kafka_config":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None and f.name == "redis_url":
                raw = env.get("REDIS_URL")
            if raw is None and f.name == "kafka_bootstrap_servers":
                raw = env.get("KAFKA_BOOTSTRAP_SERVERS")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
        kafka = {
            k[len(ENV_PREFIX + "KAFKA_") :].lower().replace("_", "."): v
            for k, v in env.items()
            if k.startswith(ENV_PREFIX + "KAFKA_") and k not in NOT_KAFKA_CONFIG
        }
        values["kafka_config"] = kafka
        base = cls(**values)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(name: str, typ: Any, raw: str) -> Any:
    t = str(typ)
    try:
        if "int" in t:
            return int(raw)
        if "float" in t:
            return float(raw)
    except ValueError:
        raise ValueError(f"setting {ENV_PREFIX + name.upper()}={raw!r}: expected a number") from None
    return raw
