"""Wiring for the service commands: settings, the bus, the queue, the retrainer core, metrics and the loop.

Every factory returns the port type its callers use (:class:`activestream.streams.bus.Bus`,
:class:`activestream.rankedqueue.RankedQueue`, ...). Heavy modules (confluent-kafka,
redis, scikit-learn) are imported on first use, so ``activestream --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from activestream.config import Settings, declared_classes, unknown_settings
from activestream.labeling.control_share import ControlShare, Explore
from activestream.streams.topics import prefix_problem

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from activestream.httpserver import Health
    from activestream.rankedqueue import RankedQueue
    from activestream.retrainer.estimator import EstimatorFactory
    from activestream.retrainer.service import Retrainer
    from activestream.streams.bus import Bus
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The flags a service command may give that override a setting of the same name.
SETTING_FLAGS = ("redis_url", "kafka_bootstrap_servers", "topic_prefix", "namespace", "strategy", "batch_size", "metrics_port", "estimator",
                 "retrainer_resume")


class Stop:
    """Set by SIGTERM / SIGINT; loops poll it and exit cleanly (offsets committed, consumers closed)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings for a service: the environment, overridden by the command's flags.

    Parameters
    ----------
    args : the parsed command line; flags it lacks (or leaves ``None``) do not override.

    Returns
    -------
    The checked settings.

    Raises
    ------
    SystemExit
        With one ``error:`` line naming the setting (or flag) when a value is bad.
    """
    from activestream.rankedqueue import QueueKeys
    from activestream.scorer.strategies import Strategy

    over = {k: getattr(args, k, None) for k in SETTING_FLAGS}
    for line in unknown_settings():
        log.warning("%s", line)
    try:
        s = Settings.from_env(**over)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        Strategy(s.strategy)
    except ValueError as exc:
        raise SystemExit(f"error: setting ACTIVESTREAM_STRATEGY (or --strategy): {exc}") from None
    s = own_topics(s, over.get("topic_prefix") is not None or bool(os.environ.get("ACTIVESTREAM_TOPIC_PREFIX")))
    problem = prefix_problem(s.topic_prefix)
    if problem:
        raise SystemExit(f"error: topic prefix {s.topic_prefix!r} (ACTIVESTREAM_TOPIC_PREFIX or --topic-prefix; unset, the namespace's): "
                         f"{problem}: choose another")
    if s.cold_start not in ("random", "representative"):
        raise SystemExit(f"error: setting ACTIVESTREAM_COLD_START={s.cold_start!r}: expected 'random' or 'representative'")
    try:
        QueueKeys(s.namespace)
    except ValueError as exc:
        raise SystemExit(f"error: setting ACTIVESTREAM_NAMESPACE (or --namespace): {exc}") from None
    return s


TOPIC_SAFE = re.compile(r"[A-Za-z0-9._-]{1,200}")  # what a Kafka topic name may hold (its prefix, here)


def own_topics(s: Settings, prefix_given: bool) -> Settings:
    """A campaign's own topics: without a topic prefix of its own (``ACTIVESTREAM_TOPIC_PREFIX``, ``--topic-prefix``),
    a namespace other than the default one names its topics and consumer groups (``camp-b.items``, ``camp-b.scorer``),
    so a second campaign started with only its namespace does not read the first one's items and labels."""
    default = Settings()
    if prefix_given or s.namespace == default.namespace or s.topic_prefix != default.topic_prefix:
        return s
    if s.namespace == default.topic_prefix:  # ("activestream": the default namespace's topics already)
        log.warning("namespace %r names the default campaign's topics (%s.*; its services are refused while the default namespace's "
                    "campaign holds them): set ACTIVESTREAM_TOPIC_PREFIX for topics of its own", s.namespace, s.topic_prefix)
        return s
    if not TOPIC_SAFE.fullmatch(s.namespace):
        log.warning("namespace %r cannot name Kafka topics: it takes the topics %s.* (its services are refused while another "
                    "namespace's campaign holds them): set ACTIVESTREAM_TOPIC_PREFIX", s.namespace, s.topic_prefix)
        return s
    log.info("namespace %r: topics %s.* (ACTIVESTREAM_TOPIC_PREFIX unset: the namespace's own)", s.namespace, s.namespace)
    return replace(s, topic_prefix=s.namespace)


def kafka_config_problem(config: Mapping[str, str]) -> str | None:
    """Why librdkafka refuses the pass-through settings (``ACTIVESTREAM_KAFKA_*``: a misspelt property, a bad value),
    or ``None``; a client is made and dropped, nothing is connected to (it fails on the first use otherwise, in a
    traceback, and a stack started on it restarts its services on it for good)."""
    if not config:
        return None
    from activestream.streams.kafka_client import confluent

    ck = confluent()
    try:
        ck.Producer({"bootstrap.servers": "127.0.0.1:9", **config})
    except ck.KafkaException as exc:
        names = ", ".join(f"ACTIVESTREAM_KAFKA_{k.upper().replace('.', '_')}" for k in config)
        return f"a Kafka client setting ({names}): {exc.args[0].str()}"
    return None


def make_bus(settings: Settings, *, transactional_name: str | None = None) -> Bus:
    """The Kafka bus for a service process (services need a broker: see ``activestream up``).

    Parameters
    ----------
    settings : the broker address, librdkafka pass-through settings, partitions, replicas.
    transactional_name : gives the bus a transactional id unique to this process, so a
        batch's dead letters and its offsets commit together (``None``: not transactional).

    Returns
    -------
    A :class:`activestream.streams.kafka.KafkaBus`.

    Raises
    ------
    SystemExit
        When no broker is configured.
    """
    if not settings.kafka_bootstrap_servers:
        raise SystemExit("error: set KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers), or start a local stack with `activestream up`")
    from activestream.streams.kafka import KafkaBus

    problem = kafka_config_problem(settings.kafka_config)
    if problem is not None:
        raise SystemExit(f"error: {problem}")
    return KafkaBus(
        settings.kafka_bootstrap_servers,
        config=dict(settings.kafka_config),
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        transactional_id=transactional_id(settings, transactional_name) if transactional_name else None,
        instance_id=settings.instance_id,
    )


def transactional_id(settings: Settings, name: str) -> str:
    """The producer's transactional id: stable per process slot (``instance_id``), else unique per process.

    A stable one lets a restarted service fence its killed predecessor and abort its open
    transaction at once; a unique one leaves that transaction (and the offsets it holds,
    which the restarted consumer waits for) until the broker's transaction timeout.
    """
    if settings.instance_id:
        return f"{settings.topic_prefix}-{name}-{settings.instance_id}"
    return f"{settings.topic_prefix}-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def connect(args: argparse.Namespace | Settings, *, transactional_name: str | None = None, health: Health | None = None,
            stop: Callable[[], bool] | None = None) -> tuple[Settings, Bus, Topics]:
    """Settings, the Kafka bus and the topic names for a service, with every topic created.

    Parameters
    ----------
    args : the parsed command line (see :func:`settings_from`), or the settings read from it.
    transactional_name : see :func:`make_bus`.
    health, stop : a service's: a broker that cannot be reached is waited for (bounded back-off, ``/healthz`` says why)
        until ``stop``; without them (a command) it raises.

    Returns
    -------
    ``(settings, bus, topics)``; the caller closes the bus.
    """
    from activestream.streams.topics import Topics

    s = args if isinstance(args, Settings) else settings_from(args)
    bus = make_bus(s, transactional_name=transactional_name)
    topics = Topics(s.topic_prefix)
    try:
        if stop is None:
            bus.ensure_topics(topics.all())
        elif not through_broker_outages(lambda: bus.ensure_topics(topics.all(), timeout=BROKER_TRY_SECONDS), stop, health):
            raise SystemExit(0)  # (stopped while it waited: a clean exit, no broker error)
    except BaseException:
        bus.close()
        raise
    return s, bus, topics


# One try of a service's start-up against its broker (it is tried again while the broker is away: see through_broker_outages).
BROKER_TRY_SECONDS = 5.0
# What a service's /healthz says (503) from its first answer until it reached its broker.
CONNECTING = "waiting for Kafka: connecting"


def broker_away(exc: BaseException) -> str | None:
    """Why ``exc`` says the Kafka broker cannot be reached now (it may come), else ``None`` (a refusal, or no broker error)."""
    from activestream.streams.kafka_client import PERMANENT_ERRORS, TRANSIENT_ERRORS, error_codes

    err = exc.args[0] if type(exc).__name__ == "KafkaException" and exc.args else None
    if err is None or not hasattr(err, "code"):
        return None
    if err.code() in error_codes(PERMANENT_ERRORS) or err.code() not in error_codes(TRANSIENT_ERRORS):
        return None
    return str(err.str())


def through_broker_outages(fn: Callable[[], object], stop: Callable[[], bool], health: Health | None = None) -> bool:
    """Call ``fn()`` (one short try) again, 1 s doubling to 30 s apart, while the Kafka broker cannot be reached: a
    service started before its broker (Compose, a restart day) waits for it, ``/healthz`` answering 503 with the reason.
    Returns ``True`` once ``fn`` returned, ``False`` when ``stop`` was requested meanwhile.

    Raises
    ------
    Exception
        What ``fn`` raised when it is no broker away (a refusal: credentials, rights).
    """
    from activestream.rankedqueue.outage import Backoff

    backoff = Backoff(first=1.0, most=30.0)
    while not stop():  # (``health`` says CONNECTING from its first answer: see serve_metrics' ``problem``)
        try:
            fn()
        except Exception as exc:
            why = broker_away(exc)
            if why is None:
                raise
            wait = backoff.next()
            log.warning("Kafka unreachable at start-up (%s; KAFKA_BOOTSTRAP_SERVERS); trying again in %.0f s", why, wait)
            if health is not None:
                health.down(f"waiting for Kafka: {why}")
            end = time.monotonic() + wait
            while not stop() and time.monotonic() < end:  # (a stop cuts the wait short)
                time.sleep(0.2)
            continue
        if health is not None:
            health.tick()
        return True
    return False


def explore_of(settings: Settings) -> Explore:
    """The control share the labeling side leases with: ``explore`` (fixed), or the adaptive rule (``explore_adaptive=1``).

    ``ValueError`` when the adaptive parameters do not fit together (``explore_low`` above ``explore_high``).
    """
    if not settings.explore_adaptive:
        return settings.explore
    return ControlShare(high=settings.explore_high, low=settings.explore_low, width=settings.explore_width)


# The longest one Redis call of a service may take before Redis counts as unreachable (the service pauses, /healthz
# says why): a Redis that hangs (stopped, swapping) is an outage as one that refuses connections is. Far above any call
# of ours (a whole-pool re-rank's swap of 1,000,000 items takes about a second).
REDIS_TIMEOUT = 30.0
# How long one step of the scorer's or the dispatcher's loop may run before /healthz says so (their steps take well under
# a second, a whole-pool re-rank a few): a hung Redis shows there at once, not after REDIS_TIMEOUT (and the pause's probe).
STEP_STUCK_SECONDS = 15.0


def make_queue(settings: Settings, *, socket_timeout: float | None = None, segment_cache: bool = False) -> RankedQueue:
    """The Redis ranked queue of the settings' namespace.

    Parameters
    ----------
    settings : ``redis_url``, ``namespace``, ``rerank_cache_mb`` and the pool's limits (``pool_capacity``,
        ``reservoir_share``, ``pool_max_age``).
    socket_timeout : bounds each Redis call (``None``: wait as long as it takes).
    segment_cache : keep the feature segments a re-rank reads for the next one, up to
        ``settings.rerank_cache_mb`` (the scorer's queue: it re-ranks).

    Raises
    ------
    SystemExit
        When no Redis is configured.
    """
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue
    from activestream.rankedqueue.pool import PoolLimits

    if not settings.redis_url:
        raise SystemExit("error: set REDIS_URL (or --redis-url), or start a local stack with `activestream up`")
    cache = settings.rerank_cache_mb * 2**20 if segment_cache else 0
    return RankedQueue(redis.Redis.from_url(settings.redis_url, socket_timeout=socket_timeout), QueueKeys(settings.namespace),
                       segment_cache_bytes=cache, pool=PoolLimits.of(settings.pool_capacity, settings.reservoir_share, settings.pool_max_age))


def new_namespace_note(queue: RankedQueue, what: str) -> str | None:
    """A note for stderr when ``queue``'s namespace holds no campaign yet while others in its Redis do (a new namespace
    beside existing ones is often a typo of one: ``--namespace typo``, and what goes into it trains no model they have);
    ``None`` otherwise. Read it before writing to the namespace; print it after the command's own errors."""
    others = queue.other_namespaces()
    if not others:
        return None
    return (f"note: {what}: namespace {queue.k.namespace!r} holds no campaign yet (this Redis holds {', '.join(map(repr, others))}): "
            "is that the one you meant? ACTIVESTREAM_NAMESPACE (or --namespace) names it")


def join_campaign(settings: Settings, queue: RankedQueue, *, redeclare: bool = True) -> tuple[str | int, ...] | None:
    """What a service does with its namespace at start: mark it as holding a campaign (see :func:`new_namespace_note`),
    and return the campaign's declared classes: ``ACTIVESTREAM_CLASSES`` when set (then recorded with the queue, so the
    campaign's processes started without the setting check them too; a warning when that changes what was recorded),
    else the recorded ones (``None``: any answer goes). ``redeclare=False`` (a one-off command, e.g. ``import-labels`` run
    with another campaign's env file sourced): a setting that differs from the recorded classes is refused, one line."""
    from activestream.rankedqueue.keys import ANSWER_FIELDS, META_LABEL_FIELD, META_STARTED_AT, META_TOPIC_PREFIX, task_of_field

    earlier = queue.get_meta_fields(META_STARTED_AT, META_TOPIC_PREFIX)
    queue.agree_meta(META_STARTED_AT, f"{time.time():.3f}")
    derived = settings.topic_prefix == settings.namespace != "default"  # (the namespace's own topics: see own_topics)
    if earlier[META_STARTED_AT] and not earlier[META_TOPIC_PREFIX] and derived:
        # A campaign started before its topics were recorded may have run on activestream.* (every namespace's default
        # then): nothing is recorded until a process names its topics (ACTIVESTREAM_TOPIC_PREFIX), so the advice holds.
        log.warning("namespace %r holds a campaign started before its topics were recorded: if it ran on activestream.* (the "
                    "default for every namespace before ACTIVESTREAM_TOPIC_PREFIX defaulted to the namespace), set "
                    "ACTIVESTREAM_TOPIC_PREFIX=activestream (refused while another namespace's campaign holds those topics: two "
                    "campaigns on one set of topics mix); this process uses %s.*", queue.k.namespace, settings.topic_prefix)
    else:
        # Two campaigns on one set of topics read each other's items and labels, and publish models to each other (a
        # multi-campaign audit: another namespace's 2-class models served to a 3-class campaign), and a process of a
        # campaign on other topics than its campaign's publishes labels nothing of the campaign reads: both refused.
        owners = queue.namespaces_on_topics(settings.topic_prefix) if earlier[META_TOPIC_PREFIX] != settings.topic_prefix else []
        if owners:  # (a namespace new to those topics: one that recorded them already is not locked out of its own)
            raise SystemExit(f"error: the topics {settings.topic_prefix}.* are the campaign of namespace {owners[0]!r} (recorded with its "
                             f"queue): set ACTIVESTREAM_TOPIC_PREFIX (or --topic-prefix) to topics of namespace {queue.k.namespace!r}'s own, "
                             f"or ACTIVESTREAM_NAMESPACE={owners[0]} to join that campaign")
        held = queue.agree_meta(META_TOPIC_PREFIX, settings.topic_prefix)  # (the campaign's topics: its first process's)
        if held != settings.topic_prefix:
            raise SystemExit(f"error: the campaign of namespace {queue.k.namespace!r} runs on the topics {held}.* (recorded with its "
                             f"queue); this process would use {settings.topic_prefix}.*: set ACTIVESTREAM_TOPIC_PREFIX={held} (or "
                             f"--topic-prefix) to join it, or use another namespace")
    if settings.task:  # (the answer field a first label would record: every front end asks for that shape from the start)
        field = ANSWER_FIELDS[settings.task]
        held = queue.agree_meta(META_LABEL_FIELD, field)
        if held != field:
            held_task = task_of_field(held)
            raise SystemExit(f"error: ACTIVESTREAM_TASK={settings.task}, but namespace {queue.k.namespace!r} holds "
                             f"{'label sets' if held_task == 'multilabel' else 'single-class answers'} already (its task is "
                             f"{held_task}): unset it, or use another namespace")
    declared = declared_classes(settings)
    if declared is None:
        return queue.declared_classes()
    recorded = queue.declared_classes()
    if not redeclare and recorded is not None and recorded != declared:
        raise SystemExit(f"error: ACTIVESTREAM_CLASSES={','.join(map(str, declared))} differs from the classes namespace {queue.k.namespace!r} "
                         f"declared ({','.join(map(str, recorded))}): unset it to use the namespace's (another campaign's env file "
                         "sourced?), or restart the campaign's services with the new classes to change them")
    before = queue.record_declared_classes(declared)
    if before is not None and before != declared:
        log.warning("ACTIVESTREAM_CLASSES changes namespace %r's declared classes from %s to %s", queue.k.namespace,
                    ",".join(map(str, before)), ",".join(map(str, declared)))
    return declared


def estimator_factory(s: Settings, named: str) -> EstimatorFactory | None:
    """The retrainer's estimator from ``s.estimator`` (``None``: the default heads); a spec that cannot be one (no such
    module or callable, no ``predict_proba``) is one ``error:`` line naming the setting as ``named``."""
    if not s.estimator:
        return None
    from activestream.retrainer.estimator import EstimatorError, load_factory

    try:
        return load_factory(s.estimator)
    except EstimatorError as exc:
        raise SystemExit(f"error: setting {named}: {exc}") from None


def make_retrainer(bus: Bus, topics: Topics, s: Settings, registry: CollectorRegistry) -> Retrainer:
    """The retrainer service's core from the settings (both engines).

    A committee strategy (``bald``, ``vote_entropy``) gets the ensemble it needs: with one
    head its scores would be plain entropy.

    Parameters
    ----------
    bus, topics : where labels come from and model versions go.
    s : the retrain policy (``retrain_every``, ``holdout_fraction``, ...) and the strategy.
    registry : the process's metrics registry.
    """
    from activestream.retrainer.service import Retrainer
    from activestream.scorer.strategies import ENSEMBLE_MEMBERS, Strategy

    committee = Strategy(s.strategy, s.seed).needs_members
    factory = estimator_factory(s, "ACTIVESTREAM_ESTIMATOR (or --estimator)")
    if factory is not None:
        if committee:
            log.warning("strategy %s scores a committee; --estimator %s is one model: it is scored on its probabilities alone",
                        s.strategy, s.estimator)
        log.info("retrainer estimator: %s", s.estimator)
    return Retrainer(
        bus, topics, retrain_every=s.retrain_every, retrain_interval=s.retrain_interval, full_refit_every=s.full_refit_every,
        holdout_fraction=s.holdout_fraction, tolerance=s.tolerance, registry=registry,
        n_members=ENSEMBLE_MEMBERS if committee and factory is None else 1, n_features=s.n_features, namespace=s.namespace,
        estimator=factory, resume=bool(s.retrainer_resume), auto_accept_precision=s.auto_accept_precision,
        budget=s.budget, classes=declared_classes(s),
    )


def serve_metrics(service: str, registry: CollectorRegistry, port: int | None, host: str = "127.0.0.1", *,
                  stuck_after: float | None = None, problem: str | None = None) -> Health:
    """Serve ``/metrics`` and ``/healthz`` on a daemon thread and say where.

    Parameters
    ----------
    service : the name ``/healthz`` reports (and the line printed starts with).
    registry : the metrics to serve.
    port : ``None`` or 0: any free port.
    host : the address to listen on.
    stuck_after : ``/healthz`` answers 503 while one step of :func:`run_loop` has run this long (``None``: not watched;
        a service whose steps are short, so that a hung backend shows at once, not after its calls' timeouts).
    problem : what ``/healthz`` says (503) until the service first ticks, e.g. that it is still connecting (``None``: 200).

    Returns
    -------
    The health facts the service's loop ticks.
    """
    from activestream.httpserver import Health, serve

    health = Health(service, stuck_after=stuck_after, problem=problem)
    try:
        server = serve(registry, health, port or 0, host)
    except OSError as exc:  # (the port taken, e.g. by a service an earlier stack left running: a refusal, not a crash to retry)
        raise SystemExit(f"error: {service}: cannot serve /metrics on {host}:{port}: {exc.strerror or exc} "
                         f"(ACTIVESTREAM_METRICS_PORT / --metrics-port, ACTIVESTREAM_METRICS_HOST)") from None
    print(f"{service}: metrics on http://{host}:{server.server_port}/metrics and /healthz", flush=True)
    return health


def through_redis_outages(fn: Callable[[], T], what: str, stop: Stop, health: Health | None = None) -> T:
    """``fn()``, called again (bounded back-off) while Redis is away or full, e.g. a service's start-up (``health``: its
    ``/healthz`` says why it waits).

    Raises
    ------
    Exception
        What ``fn`` raised when it is no Redis outage, or when ``stop`` was requested meanwhile.
    """
    from activestream.rankedqueue.outage import Backoff, redis_outage

    backoff = Backoff()
    while True:
        try:
            return fn()
        except Exception as exc:
            outage = redis_outage(exc)
            if outage is None or stop():
                raise
            wait = backoff.next()
            log.warning("%s: %s; trying again in %.1f s", what, outage[1], wait)
            if health is not None:
                health.down(f"{what}: {outage[1]}")
            time.sleep(wait)


def run_loop(step: Callable[[], int], health: Health, stop: Stop, *, burst: bool, max_messages: int | None,
             every: Callable[[], None] | None = None, problem: Callable[[], str | None] | None = None) -> int:
    """Call ``step`` until stopped, ticking ``health`` after each call.

    Parameters
    ----------
    step : one unit of work; returns the messages it consumed.
    health : ticked with the running total (``processed``).
    stop : checked before each step.
    burst : return at the first step that consumed nothing (drained).
    max_messages : return once this many were consumed (``None``: no limit).
    every : called after each step (gauges; wrap it in :func:`activestream.httpserver.periodic`).
    problem : why the service cannot do its work now (e.g. it waits for Redis), else ``None``;
        ``/healthz`` answers 503 with it instead of being ticked.

    Returns
    -------
    The messages consumed in all.
    """
    total = 0
    while not stop():
        health.begin_step()
        try:
            n = step()
            total += n
            if every is not None:
                every()
        finally:
            health.end_step()
        why = problem() if problem is not None else None
        if why is None:
            health.tick(processed=total)
        else:
            health.down(why)
        if burst and n == 0:
            break
        if max_messages is not None and total >= max_messages:
            break
    return total
