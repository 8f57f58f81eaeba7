"""The retrainer as a faust-streaming app (``activestream retrainer --engine faust``).

Same behaviour as the confluent-kafka loop of ``activestream retrainer`` (the top layer's
``activestream.commands.retrainer``), on the same pure core, :class:`retrainer.service.Retrainer`.
The top layer builds the bus, the core and the ``/metrics`` + ``/healthz`` server and hands
them to :func:`run_faust_retrainer`; this module knows nothing of the settings or the CLI.

1. start-up (before the Faust worker): the core loads the newest model version from the
   models topic and :meth:`~retrainer.service.Retrainer.rebuild` folds the whole labels log
   up to its current end (a group-less confluent-kafka reader), so the training set after a
   restart is exactly the log -- no Faust table, no changelog recovery (faust #651 cannot
   hang us);
2. an agent on the labels topic takes micro-batches (``stream.take_events``) in the
   consumer group ``{prefix}.retrainer`` and folds them; the group resumes at its committed
   offset, and the records between that offset and the rebuilt end are folded twice, which
   the training set ignores (duplicates are dropped by label id);
3. a timer retrains when ``Retrainer.due()`` (``retrain_every`` new labels, or
   ``retrain_interval`` seconds after an unused label) and ticks ``/healthz``.

Every call into the core (folds, which may publish dead letters, and retrains, which
fit, export, validate and publish) runs on one worker thread: the event loop never blocks
on scikit-learn or on a Kafka flush, and the core is never used from two threads at once.
Model versions and dead letters are published through the core's bus (a :class:`streams.kafka.KafkaBus`).
Offsets are committed by Faust after a batch was folded (at-least-once; redelivery changes
nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from activestream.streams.topics import RETRAINER_GROUP, Topics

if TYPE_CHECKING:
    from activestream.retrainer.service import Retrainer

log = logging.getLogger(__name__)

#: Largest micro-batch the agent folds at once, and how long it waits to fill one.
TAKE_MAX = 500
TAKE_WITHIN = 0.5
#: Seconds between timer ticks (retrain when due, refresh /healthz).
TICK_SECONDS = 0.5


def _faust() -> Any:
    """Import faust-streaming on first use, with an error that says what to install."""
    try:
        import faust
        from aiokafka.codec import has_lz4
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("error: --engine faust needs faust-streaming: pip install 'activestream[faust]'") from exc
    if not has_lz4():  # pragma: no cover - depends on the environment
        # KafkaBus produces lz4-compressed batches; aiokafka cannot read them without its codec.
        raise SystemExit("error: --engine faust needs aiokafka's lz4 codec: pip install 'activestream[faust]' (aiokafka[lz4])")
    return faust


@dataclass(frozen=True)
class FaustBroker:
    """Where and how the Faust app connects.

    Parameters
    ----------
    bootstrap_servers : ``host:port[,host:port...]``.
    topic_prefix : the stack's topic prefix (the app id, and so the agent's consumer group, is named after it).
    kafka_config : the librdkafka security settings the other services use (see :func:`broker_credentials`).
    """

    bootstrap_servers: str
    topic_prefix: str
    kafka_config: Mapping[str, str] = field(default_factory=dict)


class Health(Protocol):
    """The ``/healthz`` facts the app ticks (the top layer's ``activestream.httpserver.Health``)."""

    def tick(self, **facts: Any) -> None: ...


def app_id(broker: FaustBroker) -> str:
    """The Faust app id, which is also the Kafka consumer group of the agent."""
    return Topics(broker.topic_prefix).group(RETRAINER_GROUP)


def broker_urls(bootstrap: str) -> list[str]:
    """``host:port[,host:port...]`` -> Faust broker URLs."""
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def broker_credentials(kafka_config: Mapping[str, str]) -> Any:
    """Map the librdkafka security settings (``ACTIVESTREAM_KAFKA_*``) to Faust credentials.

    Supported: ``security.protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
    ``sasl.mechanism(s)`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``sasl.username``,
    ``sasl.password`` and ``ssl.ca.location``. Anything else cannot be honoured by the
    Faust engine, so it refuses to start rather than connect differently from the other
    services. Returns ``None`` for a plaintext broker.
    """
    faust = _faust()
    conf = dict(kafka_config)
    protocol = conf.pop("security.protocol", "PLAINTEXT").upper()
    mechanism = (conf.pop("sasl.mechanism", None) or conf.pop("sasl.mechanisms", None) or "PLAIN").upper()
    username = conf.pop("sasl.username", None)
    password = conf.pop("sasl.password", None)
    cafile = conf.pop("ssl.ca.location", None)
    conf.pop("client.id", None)
    if conf:
        raise SystemExit(f"error: the faust engine cannot apply these Kafka settings: {', '.join(sorted(conf))}; use --engine confluent")
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise SystemExit(f"error: security.protocol={protocol} is not supported by the faust engine; use --engine confluent")
    context = ssl.create_default_context(cafile=cafile) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL"):
        if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise SystemExit(f"error: SASL mechanism {mechanism} is not supported by the faust engine; use --engine confluent")
        return faust.SASLCredentials(username=username, password=password, mechanism=mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class FaustRetrainer:
    """The Faust app around one :class:`retrainer.service.Retrainer` core.

    Parameters
    ----------
    broker : where the app connects.
    core : the retrainer core, already rebuilt from the labels log.
    health : the ``/healthz`` facts, ticked by the timer.
    max_messages : stop the worker after the agent consumed this many label messages.
    """

    def __init__(self, broker: FaustBroker, core: Retrainer, health: Health, *, max_messages: int | None = None) -> None:
        faust = _faust()
        self.core = core
        self.health = health
        self.max_messages = max_messages
        self.consumed = 0
        self.worker: Any = None
        self._stopping: asyncio.Future[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrainer-core")
        self._datadir = tempfile.TemporaryDirectory(prefix="activestream-faust-")
        options: dict[str, Any] = {}
        credentials = broker_credentials(broker.kafka_config)
        if credentials is not None:
            options["broker_credentials"] = credentials
        self.app = faust.App(
            app_id(broker),
            broker=broker_urls(broker.bootstrap_servers),
            store="memory://",  # no tables: the training set is rebuilt from the labels log
            datadir=self._datadir.name,
            autodiscover=False,
            web_enabled=False,  # /metrics and /healthz come from activestream.httpserver
            consumer_auto_offset_reset="earliest",
            # Topics are created by KafkaBus.ensure_topics (partitions, retention.ms=-1 on labels);
            # the broker runs with auto.create.topics.enable=false and no leader topic is needed.
            topic_allow_declare=False,
            topic_disable_leader=True,
            worker_redirect_stdouts=False,
            # A SIGKILLed member leaves the group after this, not after Faust's 60 s default.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            **options,
        )
        self.topic = self.app.topic(core.topics.labels, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.app.agent(self.topic, name="labels", concurrency=1)(self._labels_agent)
        self.app.timer(TICK_SECONDS, name="retrain-timer")(self._tick)

    # ------------------------------------------------------------------ core calls (one thread)
    def _fold_batch(self, batch: list[tuple[bytes | None, bytes]]) -> None:
        for key, value in batch:
            self.core.fold_payload(value, key)
        self.core.watch_models()  # a user's version published meanwhile: hold before retraining
        if self.core.due():  # retrain_every reached: do not wait for the timer
            self.core.retrain()

    def _retrain_if_due(self) -> None:
        self.core.watch_models()
        if self.core.due():
            self.core.retrain()

    async def _in_core_thread(self, fn: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ faust
    async def _labels_agent(self, stream: Any) -> None:
        async for events in stream.take_events(TAKE_MAX, within=TAKE_WITHIN):
            batch = [(e.key, e.value) for e in events]
            # Events are acked (and their offsets become committable) when the loop resumes.
            await self._in_core_thread(self._fold_batch, batch)
            self.consumed += len(batch)
            self._tick_health()
            if self.max_messages is not None and self.consumed >= self.max_messages:
                log.info("consumed %d label messages (--max-messages): stopping", self.consumed)
                self.request_stop()

    async def _tick(self) -> None:
        await self._in_core_thread(self._retrain_if_due)
        self._tick_health()

    def _tick_health(self) -> None:
        self.health.tick(model_version=self.core.version, training_set=len(self.core.training), last_error=self.core.last_error,
                         holding_user_version=self.core.holding, processed=self.consumed, engine="faust")

    def request_stop(self) -> None:
        """Stop the worker from inside the event loop, as SIGTERM would (idempotent)."""
        if self.worker is not None and self._stopping is None:
            # Not a child task of the worker: stopping the worker cancels the agent calling this.
            self._stopping = asyncio.ensure_future(self.worker.stop())

    def run(self) -> int:
        """Run the Faust worker until SIGTERM / SIGINT (or ``max_messages``); returns the exit code."""
        faust = _faust()
        level = "info" if logging.getLogger().isEnabledFor(logging.INFO) else "warning"
        # Logging is configured by the CLI; Faust keeps it (no second root handler).
        self.worker = faust.Worker(self.app, loglevel=level, override_logging=False)
        code = 0
        try:
            self.worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            self._pool.shutdown(wait=True)  # a fold or retrain in flight finishes
            with contextlib.suppress(OSError):
                self._datadir.cleanup()
        return code


class EarlyStop:
    """SIGTERM / SIGINT before the Faust worker installs its own handlers (while the top layer
    connects and the core rebuilds): install it first, :meth:`restore` it after the run."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        """Put back the handlers that were there before."""
        for s, h in self._old.items():
            signal.signal(s, h)


def require_faust() -> None:
    """Exit with one ``error:`` line naming what to install when faust-streaming (or its lz4 codec) is missing.

    Called by the top layer before any broker work.
    """
    _faust()


def run_faust_retrainer(core: Retrainer, health: Health, broker: FaustBroker, early: EarlyStop, *, burst: bool = False,
                        max_messages: int | None = None) -> int:
    """``activestream retrainer --engine faust``: rebuild from the labels log, then run the Faust app.

    Parameters
    ----------
    core : the retrainer core on its bus (the caller closes the bus afterwards).
    health : the ``/healthz`` facts of the already-serving metrics server.
    broker : where the Faust app connects.
    early : installed by the caller before it connected; a signal caught during the
        rebuild skips the worker. Restored here before the worker starts (and on return).
    burst : the rebuild already drains the labels log to its end, so the worker is not
        started: retrain if any label is unused, print, exit (as the confluent engine does).
    max_messages : stop after the agent consumed this many label messages after the rebuild.

    Returns
    -------
    The exit code of the Faust worker (0 with ``burst``).
    """
    try:
        core.rebuild()
        core.close_labels_reader()  # the agent reads new labels from here on
        print(f"retrainer: {len(core.training)} labels rebuilt from the log, model v{core.version}", flush=True)
        health.tick(model_version=core.version, training_set=len(core.training), last_error=core.last_error, engine="faust")
        code = 0
        if burst:
            if core.unused and core.holding is None:  # drained by the rebuild: whatever is new goes into a version now
                core.retrain()
        elif not early.requested:
            early.restore()
            code = FaustRetrainer(broker, core, health, max_messages=max_messages).run()
        print(f"retrainer: {len(core.training)} labels, model v{core.version}", flush=True)
        return code
    finally:
        early.restore()
