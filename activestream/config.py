"""Settings: one frozen object built once at start-up from the environment and flags."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from activestream.labeling.control_share import DEFAULT_ADAPTIVE, DEFAULT_HIGH, DEFAULT_LOW, DEFAULT_WIDTH
from activestream.schemas import parse_classes
from activestream.scorer.strategies import DEFAULT_EXPLORE, DEFAULT_STRATEGY

log = logging.getLogger(__name__)

ENV_PREFIX = "ACTIVESTREAM_"
# ACTIVESTREAM_KAFKA_* names that are not librdkafka settings: the broker address (a field)
# and the local broker's jar directory (activestream.devstack.local_kafka.LIBS_ENV).
UNPREFIXED = ("redis_url", "kafka_bootstrap_servers")  # (settings also read as REDIS_URL, KAFKA_BOOTSTRAP_SERVERS)
NOT_KAFKA_CONFIG = (ENV_PREFIX + "KAFKA_BOOTSTRAP_SERVERS", ENV_PREFIX + "KAFKA_LIBS")


def _at_least(low: int) -> tuple[Callable[[float], bool], str]:
    return (lambda v: v >= low), f"an integer >= {low}"


# What each numeric setting may be: a test and the words for it. A value outside (NaN included)
# would fail later, far from its cause: a batch of 0 reads nothing, a lease of -5 s expires at once.
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "partitions": _at_least(1),
    "replication_factor": _at_least(1),
    "seed": _at_least(0),
    "batch_size": _at_least(1),
    "n_features": _at_least(1),
    "explore": ((lambda v: 0 <= v <= 1), "a share in [0, 1]"),
    "explore_adaptive": ((lambda v: v in (0, 1)), "0 or 1"),
    "explore_high": ((lambda v: 0 < v <= 1), "a share in (0, 1]"),
    "explore_low": ((lambda v: 0 < v <= 1), "a share in (0, 1] (0 would stop the live estimates updating)"),
    "explore_width": ((lambda v: 0 < v <= 1), "an interval width in (0, 1]"),
    "curriculum_labels": ((lambda v: v >= 0), "an integer >= 0 (0: off)"),
    "auto_accept": ((lambda v: v in (0, 1)), "0 or 1"),
    "auto_accept_precision": ((lambda v: 0 < v < 1), "a precision in (0, 1)"),
    "audit_share": ((lambda v: 0 <= v <= 1), "a share in [0, 1]"),
    "budget": _at_least(1),
    "retrainer_resume": ((lambda v: v in (0, 1)), "0 or 1"),
    "labels_per_hour": ((lambda v: math.isfinite(v) and v >= 0), "a finite number >= 0 (0: admit every item)"),
    "lease_ttl": ((lambda v: math.isfinite(v) and v > 0), "a finite number of seconds > 0"),
    "max_skips": _at_least(1),
    "retrain_every": _at_least(1),
    "retrain_interval": ((lambda v: math.isfinite(v) and v >= 0), "a finite number of seconds >= 0"),
    "full_refit_every": _at_least(1),
    "holdout_fraction": ((lambda v: 0 <= v < 1), "a share in [0, 1)"),
    "tolerance": ((lambda v: 0 <= v <= 1), "an accuracy drop in [0, 1]"),
    "metrics_port": ((lambda v: 0 <= v <= 65535), "a port in [0, 65535] (0: any free port)"),
    "rerank_cache_mb": _at_least(0),
    "pool_capacity": ((lambda v: v >= 0), "an integer >= 0 (0: no cap)"),
    "pool_max_age": ((lambda v: math.isfinite(v) and v >= 0), "a finite number of seconds >= 0 (0: off)"),
    "reservoir_share": ((lambda v: 0 <= v < 1), "a share of the pool capacity in [0, 1)"),
    "task": ((lambda v: v in ("multiclass", "multilabel")), "multiclass or multilabel"),
    "label_studio_project": _at_least(1),
    "label_studio_top_n": _at_least(1),
    "model_artifact_max_mb": _at_least(1),
}


def setting_text(env: Mapping[str, str], name: str) -> str | None:
    """Setting ``name``'s text in ``env``: ``ACTIVESTREAM_<NAME>``, else (``redis_url``, ``kafka_bootstrap_servers``) the
    name without the prefix; ``None`` when unset or empty (an empty setting is an unset one)."""
    raw = env.get(ENV_PREFIX + name.upper())
    if raw is None and name in UNPREFIXED:
        raw = env.get(name.upper())
    return raw or None


def out_of_range(name: str, value: Any) -> str | None:
    """What setting ``name`` must be when ``value`` is not that, else ``None`` (also for ``None``: unset)."""
    if value is None or name not in RANGES:
        return None
    inside, what = RANGES[name]
    return None if inside(value) else what


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
    explore_adaptive: int = int(DEFAULT_ADAPTIVE)  # 1: the control share follows the live estimates (labeling/control_share.py)
    explore_high: float = DEFAULT_HIGH  # adaptive: the share while the estimates are missing or too uncertain
    explore_low: float = DEFAULT_LOW  # adaptive: the share once the accuracy interval is narrower than explore_width
    explore_width: float = DEFAULT_WIDTH  # adaptive: the widest 95% accuracy interval the estimates steer with
    curriculum_labels: int | None = None
    cold_start: str = "random"  # or "representative": first labels from k-means centroids of the queue
    auto_accept: int = 1  # 0 turns off routing confident items to the auto-labels topic
    auto_accept_precision: float = 0.99  # the precision auto-accepted items keep (its 95% lower bound on control labels)
    audit_share: float = 0.02  # share of auto-accepted items also sent to labelers blind (the audit)
    classes: str | None = None  # the campaign's classes, comma-separated: a label outside them is refused (None: any label)
    task: str | None = None  # multiclass or multilabel: the campaign's answers, before its first (None: its first answer decides)
    budget: int | None = None  # the campaign's label budget: the retrainer estimates random sampling's accuracy at it
    labels_per_hour: float | None = None  # stream budget for queue admission (None: admit all)
    rerank_cache_mb: int = 1024  # the scorer's copy of the queue's feature segments for re-ranks (0: off)
    pool_capacity: int = 1_000_000  # most pending items per namespace (0: no cap)
    pool_max_age: float = 0.0  # seconds after which a pending item is evicted (0: off)
    reservoir_share: float = 0.1  # the random reservoir's size, as a share of pool_capacity
    lease_ttl: float = 300.0
    max_skips: int = 3
    labeler_tokens: str | None = None  # labeler API: a file of '<token> <labeler id>' lines (None: any labeler id is taken)
    retrain_every: int = 10
    retrain_interval: float = 30.0
    full_refit_every: int = 10
    holdout_fraction: float = 0.1
    tolerance: float = 0.05
    estimator: str | None = None  # module:callable returning a scikit-learn classifier (None: logistic regression)
    retrainer_resume: int = 0  # 1: the retrainer publishes over a user's model version (publish-model) instead of holding
    label_studio_url: str | None = None  # the Label Studio server the connector drives (activestream label-studio)
    label_studio_token: str | None = None  # its API token (Account & Settings; a legacy token or a personal access token)
    label_studio_project: int | None = None  # the project id (None: --create-project makes one)
    label_studio_top_n: int = 100  # items of the ranked queue kept as Label Studio tasks
    label_studio_webhook_url: str | None = None  # the URL Label Studio calls on each annotation (None: polling only)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape
    instance_id: str | None = None  # this process's slot (static Kafka group membership); '{hostname}' is expanded
    redis_password_file: str | None = None  # a file holding the Redis password (a compose secret), put into redis_url
    model_artifact_dir: str | None = None  # directories model artifact_uri may point under (None: artifacts refused)
    model_artifact_max_mb: int = 256
    kafka_config: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``env`` (default ``os.environ``), then apply non-``None`` ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "kafka_config":
                continue
            raw = setting_text(env, f.name)
            if raw is not None:
                values[f.name] = _coerce(f.name, f.type, raw)
                problem = out_of_range(f.name, values[f.name])
                if problem:
                    raise ValueError(f"setting {ENV_PREFIX + f.name.upper()}={raw}: expected {problem}")
                if f.name == "classes":
                    try:
                        parse_classes(raw)
                    except ValueError as exc:
                        raise ValueError(f"setting {ENV_PREFIX}CLASSES={raw!r}: {exc}") from None
        kafka = {
            k[len(ENV_PREFIX + "KAFKA_") :].lower().replace("_", "."): v
            for k, v in env.items()
            if k.startswith(ENV_PREFIX + "KAFKA_") and k not in NOT_KAFKA_CONFIG
        }
        values["kafka_config"] = kafka
        if values.get("instance_id"):
            values["instance_id"] = values["instance_id"].replace("{hostname}", socket.gethostname())
        base = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        for name, value in given.items():  # (the services' flags: --batch-size, --metrics-port, ...)
            problem = out_of_range(name, value)
            if problem:
                raise ValueError(f"--{name.replace('_', '-')} {value}: expected {problem}")
        out = replace(base, **given)
        if out.redis_password_file:  # (the URL may come from --redis-url too)
            out = replace(out, redis_url=with_password(out.redis_url, out.redis_password_file))
        return out


# ACTIVESTREAM_* names read by the test suite and the benchmarks, not by the product (never "unknown").
HARNESS_PREFIXES = (ENV_PREFIX + "TEST_", ENV_PREFIX + "FUZZ_", ENV_PREFIX + "REQUIRE_SERVICES", ENV_PREFIX + "SKIP_BROWSER")


def unknown_settings(env: Mapping[str, str] | None = None) -> list[str]:
    """One line for each ``ACTIVESTREAM_*`` variable of ``env`` that no service reads (a typo is otherwise silently
    ignored), naming the closest known setting. ``ACTIVESTREAM_KAFKA_*`` names pass through to librdkafka."""
    import difflib

    env = os.environ if env is None else env
    known = [ENV_PREFIX + f.name.upper() for f in fields(Settings) if f.name != "kafka_config"]
    out = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith((ENV_PREFIX + "KAFKA_", *HARNESS_PREFIXES)):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        out.append(f"setting {name} is not one activestream reads: ignored" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def feature_name_list(settings: Settings) -> list[str] | None:
    """``ACTIVESTREAM_FEATURE_NAMES`` as a list (``None``: unset)."""
    return [n.strip() for n in settings.feature_names.split(",")] if settings.feature_names else None


def declared_classes(settings: Settings) -> tuple[str | int, ...] | None:
    """The campaign's declared classes (``ACTIVESTREAM_CLASSES``), ``None`` when any label goes."""
    return parse_classes(settings.classes) if settings.classes else None


def with_password(url: str | None, password_file: str) -> str | None:
    """``url`` with the password read from ``password_file`` (a URL that names a password keeps it).

    Raises
    ------
    ValueError
        When the file cannot be read, naming the setting.
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        return url
    try:
        password = Path(password_file).read_text().strip()
    except OSError as exc:
        raise ValueError(f"setting {ENV_PREFIX}REDIS_PASSWORD_FILE={password_file}: {exc.strerror}") from None
    user = quote(parts.username or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"))


def _coerce(name: str, typ: Any, raw: str) -> Any:
    t = str(typ)
    try:
        if "int" in t:
            return int(raw)
        if "float" in t:
            return float(raw)
    except ValueError:
        raise ValueError(f"setting {ENV_PREFIX + name.upper()}={raw!r}: expected {'an integer' if 'int' in t else 'a number'}") from None
    return raw
