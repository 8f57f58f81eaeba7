"""Service subcommands for the distributed mode: each component a process on Kafka + Redis."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activestream import argtypes
from activestream.config import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from activestream.retrainer.service import Retrainer
    from activestream.streams.bus import Bus
    from activestream.streams.topics import Topics

log = logging.getLogger(__name__)


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
    """The settings for a service; a bad value stops it with one line naming the setting."""
    from activestream.rankedqueue import QueueKeys
    from activestream.scorer.strategies import Strategy

    over = {k: getattr(args, k, None) for k in ("redis_url", "kafka_bootstrap_servers", "topic_prefix", "namespace", "strategy", "batch_size", "metrics_port")}
    try:
        s = Settings.from_env(**over)
        Strategy(s.strategy)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if s.cold_start not in ("random", "representative"):
        raise SystemExit(f"error: setting ACTIVESTREAM_COLD_START={s.cold_start!r}: expected 'random' or 'representative'")
    try:
        QueueKeys(s.namespace)
    except ValueError as exc:
        raise SystemExit(f"error: setting ACTIVESTREAM_NAMESPACE (or --namespace): {exc}") from None
    return s


def make_bus(settings: Settings, *, transactional_name: str | None = None) -> Any:
    """The Kafka bus for a service process (services need a broker: see ``activestream up``).

    ``transactional_name`` gives the bus a transactional id unique to this process, so a
    batch's dead letters and its offsets commit together.
    """
    if not settings.kafka_bootstrap_servers:
        raise SystemExit("error: set KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers), or start a local stack with `activestream up`")
    from activestream.streams.kafka import KafkaBus

    return KafkaBus(
        settings.kafka_bootstrap_servers,
        config=dict(settings.kafka_config),
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        transactional_id=f"{settings.topic_prefix}-{transactional_name}-{os.getpid()}-{uuid.uuid4().hex[:8]}" if transactional_name else None,
    )


def connect(args: argparse.Namespace, *, transactional_name: str | None = None) -> tuple[Settings, Any, Any]:
    """Settings, the Kafka bus and the topic names for a service, with every topic created."""
    from activestream.streams.topics import Topics

    s = settings_from(args)
    bus = make_bus(s, transactional_name=transactional_name)
    topics = Topics(s.topic_prefix)
    bus.ensure_topics(topics.all())
    return s, bus, topics


def make_queue(settings: Settings, *, socket_timeout: float | None = None, segment_cache: bool = False) -> Any:
    """The Redis queue; ``socket_timeout`` bounds each Redis call (``None``: wait as long as it takes).

    ``segment_cache``: keep the feature segments a re-rank reads for the next one, up to
    ``settings.rerank_cache_mb`` (the scorer's queue: it re-ranks).
    """
    import redis

    from activestream.rankedqueue import QueueKeys, RankedQueue

    if not settings.redis_url:
        raise SystemExit("error: set REDIS_URL (or --redis-url), or start a local stack with `activestream up`")
    cache = settings.rerank_cache_mb * 2**20 if segment_cache else 0
    return RankedQueue(redis.Redis.from_url(settings.redis_url, socket_timeout=socket_timeout), QueueKeys(settings.namespace),
                       segment_cache_bytes=cache)


def _serve_metrics(service: str, registry: Any, port: int | None, host: str = "127.0.0.1") -> Any:
    from activestream.httpserver import Health, serve

    health = Health(service)
    server = serve(registry, health, port or 0, host)
    print(f"{service}: metrics on http://{host}:{server.server_port}/metrics and /healthz", flush=True)
    return health


def _loop(step: Callable[[], int], health: Any, stop: Stop, *, burst: bool, max_messages: int | None, every: Callable[[], None] | None = None) -> int:
    total = 0
    while not stop():
        n = step()
        total += n
        health.tick(processed=total)
        if every is not None:
            every()
        if burst and n == 0:
            break
        if max_messages is not None and total >= max_messages:
            break
    return total


# --------------------------------------------------------------------------- scorer


def cmd_scorer(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from activestream.httpserver import periodic
    from activestream.scorer.service import Scorer
    from activestream.scorer.strategies import Strategy
    from activestream.streams.topics import SCORER_GROUP

    stop = Stop()
    s, bus, topics = connect(args, transactional_name="scorer")
    registry = CollectorRegistry()
    # Groups are named under the topic prefix, so separate stacks on one broker never rebalance each other.
    try:
        scorer = Scorer(bus, make_queue(s, segment_cache=True), topics, strategy=Strategy(s.strategy, s.seed), batch_size=s.batch_size,
                        n_features=s.n_features, feature_names=[f.strip() for f in s.feature_names.split(",")] if s.feature_names else None,
                        registry=registry, group=f"{s.topic_prefix}.{SCORER_GROUP}", auto_accept=bool(s.auto_accept), labels_per_hour=s.labels_per_hour)
    except ValueError as exc:  # e.g. ACTIVESTREAM_N_FEATURES against what the namespace holds
        bus.close()
        raise SystemExit(f"error: scorer: {exc}") from None
    health = _serve_metrics("scorer", registry, s.metrics_port, s.metrics_host)
    scorer.poll_models(to_end=True)  # start on the newest model, if there is one

    def gauges() -> None:
        scorer.refresh_gauges()
        lag = getattr(scorer._items, "lag", None)
        if lag is not None:
            scorer.metrics.consumer_lag.labels(topic=topics.items).set(lag())
        health.tick(model_version=scorer.model_version, dead_letters=scorer.dead_letters)

    try:
        n = _loop(lambda: scorer.step(0.5), health, stop, burst=args.burst, max_messages=args.max_messages, every=periodic(1.0, gauges))
        print(f"scorer: consumed {n} item messages; model v{scorer.model_version}", flush=True)
    finally:
        scorer.close()
        bus.close()
    return 0


# --------------------------------------------------------------------------- retrainer


def make_retrainer(bus: Bus, topics: Topics, s: Settings, registry: CollectorRegistry) -> Retrainer:
    """The retrainer service's core from the settings (both engines).

    A committee strategy (``bald``, ``vote_entropy``) gets the ensemble it needs: with one
    head its scores would be plain entropy.
    """
    from activestream.retrainer.service import Retrainer
    from activestream.scorer.strategies import ENSEMBLE_MEMBERS, Strategy

    return Retrainer(
        bus, topics, retrain_every=s.retrain_every, retrain_interval=s.retrain_interval, full_refit_every=s.full_refit_every,
        holdout_fraction=s.holdout_fraction, tolerance=s.tolerance, registry=registry,
        n_members=ENSEMBLE_MEMBERS if Strategy(s.strategy, s.seed).needs_members else 1, n_features=s.n_features,
    )


def cmd_retrainer(args: argparse.Namespace) -> int:
    if args.engine == "faust":
        from activestream.retrainer.faust_app import run_faust_retrainer

        return run_faust_retrainer(settings_from(args), args)
    from prometheus_client import CollectorRegistry

    stop = Stop()
    s, bus, topics = connect(args)
    registry = CollectorRegistry()
    rt = make_retrainer(bus, topics, s, registry)
    health = _serve_metrics("retrainer", registry, s.metrics_port, s.metrics_host)
    rt.rebuild()
    print(f"retrainer: {len(rt.training)} labels rebuilt from the log, model v{rt.version}", flush=True)
    try:
        def step() -> int:
            n = rt.step(0.5)
            health.tick(model_version=rt.version, training_set=len(rt.training), last_error=rt.last_error)
            return n

        _loop(step, health, stop, burst=args.burst, max_messages=args.max_messages)
        if args.burst and rt.unused:  # drained: whatever is new goes into a version now
            rt.retrain()
        print(f"retrainer: {len(rt.training)} labels, model v{rt.version}", flush=True)
    finally:
        bus.close()
    return 0


# --------------------------------------------------------------------------- dispatcher


def cmd_dispatcher(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from activestream.labeling.dispatcher import Dispatcher, consumer_group

    stop = Stop()
    s, bus, topics = connect(args)
    registry = CollectorRegistry()
    d = Dispatcher(make_queue(s), bus, topics, labeler_group=args.labeler_group, max_outstanding=args.max_outstanding,
                   group=consumer_group(s.topic_prefix, args.labeler_group),
                   ack_timeout=args.ack_timeout, registry=registry, max_skips=s.max_skips, explore=s.explore)
    health = _serve_metrics("dispatcher", registry, s.metrics_port, s.metrics_host)
    try:
        _loop(lambda: d.step(0.5), health, stop, burst=args.burst, max_messages=None)
    finally:
        bus.close()
    return 0


# --------------------------------------------------------------------------- labeler API


def _queue_gauges(queue: Any) -> Any:
    """A registry whose gauges read the queue's state from Redis at scrape time."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    for name, fn, doc in (
        ("activestream_labeler_api_pending_items", queue.n_waiting, "items waiting in the queue (expired leases included)"),
        ("activestream_labeler_api_leased_items", queue.n_leased, "items out with labelers"),
        ("activestream_labeler_api_labeled_items", queue.n_labeled, "items labeled so far"),
    ):
        Gauge(name, doc, registry=registry).set_function(_as_float(fn))
    return registry


def _as_float(fn: Callable[[], int]) -> Callable[[], float]:
    return lambda: float(fn())


def cmd_labeler_api(args: argparse.Namespace) -> int:
    from activestream.labeling.api import serve
    from activestream.labeling.auth import TokenFile, TokenFileError
    from activestream.scorer.strategies import Strategy
    from activestream.simulate import make_label_service

    stop = Stop()
    s, bus, topics = connect(args)
    try:
        tokens = TokenFile(s.labeler_tokens) if s.labeler_tokens else None  # (read again when the file changes)
    except TokenFileError as exc:
        bus.close()
        raise SystemExit(f"error: ACTIVESTREAM_LABELER_TOKENS: {exc}") from None
    if tokens is None:
        log.warning("labeler API without ACTIVESTREAM_LABELER_TOKENS: it takes the labeler id each request names")
    # entropy: each labeler process draws its own sampled batches (+falcun), restarts included
    # A request waits at most 30 s for Redis (then 500), instead of holding the API forever.
    queue = make_queue(s, socket_timeout=30.0)
    service = make_label_service(Strategy(s.strategy, s.seed), queue, bus, topics, explore=s.explore, curriculum_labels=s.curriculum_labels,
                                 cold_start=s.cold_start, entropy=uuid.uuid4().int)
    service.lease_ttl = s.lease_ttl
    service.max_skips = s.max_skips
    try:
        server = serve(service, args.port, args.host, tokens)
    except OSError as exc:  # e.g. the port is taken
        service.close()
        bus.close()
        raise SystemExit(f"error: labeler API on {args.host}:{args.port}: {exc.strerror or exc}") from None
    access = f"{len(tokens)} labeler token(s)" if tokens is not None else "no tokens"
    print(f"labeler API on http://{args.host}:{server.server_port} (GET /lease, POST /labels, POST /skip, GET /status; {access})", flush=True)
    health = _serve_metrics("labeler-api", _queue_gauges(service.queue), s.metrics_port, s.metrics_host)
    probe = make_queue(s, socket_timeout=2.0).r  # /healthz says whether the API can reach its Redis
    try:
        while not stop():
            try:
                probe.ping()
                health.tick()
            except Exception as exc:  # noqa: BLE001 - any failure to reach Redis makes the API unhealthy
                health.down(f"redis: {type(exc).__name__}: {exc}")
            time.sleep(0.5)
    finally:
        server.shutdown()
        service.close()
        bus.close()
    return 0


# --------------------------------------------------------------------------- produce / label


def cmd_produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from activestream.producer import encode_row, read_items

    s, bus, topics = connect(args)
    n = 0
    skipped: list[str] = []
    seen: set[str] = set()
    repeated = 0

    def skip(problem: str) -> None:  # a malformed line or a row without an id is reported and skipped; the rest still goes out
        print(f"skipped {problem}", file=sys.stderr)
        skipped.append(problem)

    try:
        # --id-column's default ("id") may be absent (row-number ids); a column the user named must exist.
        rows = read_items(args.file, id_column=args.id_column or "id", id_required=args.id_column is not None, exclude=args.exclude or (), on_error=skip)
        for row_no, (item_id, feats, md) in enumerate(tqdm(rows, unit="item", disable=args.no_progress, desc="producing")):
            iid = item_id if item_id is not None else f"{args.id_prefix}{row_no}"
            if iid in seen:
                repeated += 1
            seen.add(iid)
            bus.publish(topics.items, encode_row(iid, feats, md, raw=args.raw), key=iid.encode())
            n += 1
        bus.flush()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    if repeated:  # the queue is keyed by id: a repeat is taken for a redelivery of the first
        print(f"warning: {args.file}: {repeated} row(s) repeat an earlier id; the queue keeps one item per id", file=sys.stderr)
    print(f"produced {n} items to {topics.items}" + (f"; skipped {len(skipped)} row(s)" if skipped else ""), flush=True)
    return 1 if skipped else 0


def cmd_label(args: argparse.Namespace) -> int:
    from activestream.labeling.terminal import label_from_topic, prompt_answer

    s, bus, topics = connect(args)
    answer: Any = prompt_answer
    if args.answers:
        truth = _answers(args.answers, args.id_column, args.label_column)

        def answer(item_id: str, features: Any, metadata: Any) -> Any:
            return truth.get(item_id)

    try:
        n = label_from_topic(bus, topics, answer, labeler_id=args.labeler_id, group=args.group, max_items=args.max_items,
                             idle_timeout=args.idle_timeout, seconds_per_label=args.seconds_per_label)
    finally:
        bus.close()
    print(f"published {n} labels to {topics.labels}", flush=True)
    return 0


def _answers(path: str, id_column: str, label_column: str) -> dict[str, Any]:
    """Item id -> label from a CSV; ids are read as text (``001`` stays ``001``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={id_column: pa.string()}))
    except (pa.ArrowException, OSError) as exc:
        raise SystemExit(f"error: --answers {path}: cannot be read: {exc}") from None
    for col in (id_column, label_column):
        if col not in table.column_names:
            raise SystemExit(f"error: --answers {path}: column {col!r}: not found (columns: {', '.join(table.column_names[:20])})")
    labels = table.column(label_column).to_pylist()
    if any(isinstance(v, float) for v in labels):
        raise SystemExit(f"error: --answers {path}: column {label_column!r}: labels must be integers or strings, not floats")
    return dict(zip(table.column(id_column).to_pylist(), labels, strict=True))


# --------------------------------------------------------------------------- local stack


# A service that exits is started again after this delay, doubled for each exit in a row
# up to the cap (Compose's `restart: unless-stopped` backs off the same way); one that ran
# for RESTART_RESET_SECONDS counts as healthy and starts the next count from the beginning.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
RESTART_RESET_SECONDS = 60.0


def restart_delay(previous: float | None, ran_for: float) -> float:
    """Seconds to wait before starting again a service that ran ``ran_for`` seconds and exited.

    ``previous`` is the delay before its last start (None: it never was restarted).
    """
    if previous is None or ran_for >= RESTART_RESET_SECONDS:
        return RESTART_FIRST_DELAY
    return min(2 * previous, RESTART_MAX_DELAY)


class Supervised:
    """One service of the local stack: its process, started again whenever it exits."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.restarts = 0
        self.delay: float | None = None
        self.proc: subprocess.Popen[bytes]  # (set by start)
        self.started = 0.0
        self.start_at: float | None = None  # when to start it again; None while it runs
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as logf:  # the child keeps its own handle
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=logf, stderr=subprocess.STDOUT)
        self.started, self.start_at = time.monotonic(), None

    def check(self, *, restart: bool) -> str | None:
        """Start the service again if it exited and its delay is over; say what happened, if anything."""
        now = time.monotonic()
        if self.start_at is not None:
            if now >= self.start_at:
                self.restarts += 1
                self.start()
                return f"{self.name} started again (restart {self.restarts})"
            return None
        code = self.proc.poll()
        if code is None:
            return None
        if not restart:
            return f"{self.name} exited with code {code}"
        self.delay = restart_delay(self.delay, now - self.started)
        self.start_at = now + self.delay
        return f"{self.name} exited with code {code} after {now - self.started:.0f} s; starting it again in {self.delay:.0f} s"


def _start_services(args: argparse.Namespace, env: dict[str, str], state: Path) -> tuple[list[Supervised], dict[str, int]]:
    exe = [sys.executable, "-m", "activestream.cli"]
    ports = {"scorer": args.metrics_base_port, "retrainer": args.metrics_base_port + 1, "dispatcher": args.metrics_base_port + 2}
    ports = {n: p for n, p in ports.items() if n not in args.without}
    services = [Supervised(name, [*exe, name, "--metrics-port", str(port)], env, state / f"{name}.log") for name, port in ports.items()]
    return services, ports


def stop_processes(children: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM every child, then give each ``timeout`` seconds before SIGKILL (and reap it)."""
    for c in children:
        if c.poll() is None:
            c.terminate()
    for c in children:
        try:
            c.wait(timeout)
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()


def cmd_up(args: argparse.Namespace) -> int:
    """Start Kafka (KRaft, Maven Central jars), Redis (AOF) and the services; stop them all on Ctrl-C.

    A service that exits is started again (after 1 s, doubling to 30 s while it keeps
    exiting), as Compose's ``restart: unless-stopped`` does; ``--no-restart`` stops the
    stack instead.
    """
    from activestream.redis_server import LocalRedis

    stop = Stop()
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    kafka: Any = None
    redis_server: Any = None
    services: list[Supervised] = []
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from activestream.local_kafka import LocalKafka

            print("starting Apache Kafka (KRaft) ...", flush=True)
            kafka = LocalKafka(port=args.kafka_port).start()
            bootstrap = kafka.bootstrap_servers
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            redis_server = LocalRedis(args.redis_port, appendonly=True, data_dir=str(state / "redis")).start()
            redis_url = redis_server.url
        services, ports = _start_services(args, {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url}, state)
        print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nREDIS_URL={redis_url}", flush=True)
        for name, port in ports.items():
            print(f"{name}: http://127.0.0.1:{port}/metrics  (log: {state / (name + '.log')})", flush=True)
        if args.env_file:
            Path(args.env_file).write_text(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nREDIS_URL={redis_url}\n")
        print("stack is up; Ctrl-C stops it", flush=True)
        while not stop():
            for svc in services:
                event = svc.check(restart=not args.no_restart)
                if event is not None:
                    print(f"{event} (log: {svc.log_path})", flush=True)
                    if args.no_restart:
                        return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_processes([svc.proc for svc in services])
        if redis_server is not None:
            redis_server.stop()
        if kafka is not None:
            kafka.stop()
        print("stack stopped", flush=True)


# --------------------------------------------------------------------------- queue (ops)


def queue_info(queue: Any) -> dict[str, Any]:
    """What an operator checks first about a namespace's queue: counts, widths, model versions."""
    from activestream.labeling.api import meta_classes

    meta = queue.get_meta_fields("n_features", "feature_dtype", "model_version", "ranked_version", "classes", "task", "label_kind")
    return {
        "namespace": queue.k.namespace,
        "pending": queue.depth(),
        "leased": queue.n_leased(),
        "labeled": queue.n_labeled(),
        "oldest_pending_age_s": round(queue.oldest_age(), 3),
        "n_features": int(meta["n_features"]) if meta["n_features"] else None,
        "feature_dtype": meta["feature_dtype"],
        "stored_widths": queue.stored_widths(),  # more than one: items of another width are pending
        "model_version": int(meta["model_version"] or 0),
        "ranked_version": int(meta["ranked_version"] or 0),
        "task": meta["task"],
        "classes": meta_classes(meta["classes"]),
        "label_kind": meta["label_kind"],
    }


def cmd_queue(args: argparse.Namespace) -> int:
    import json

    s = settings_from(args)
    queue = make_queue(s, socket_timeout=30.0)
    if args.action == "info":
        print(json.dumps(queue_info(queue), indent=2))
        return 0
    info = queue_info(queue)
    if not args.yes:
        print(f"error: `queue clear` deletes every key of namespace {s.namespace!r} ({info['pending']} pending, {info['leased']} leased, "
              f"{info['labeled']} labeled items; labels on the labels topic are kept); add --yes to do it", file=sys.stderr)
        return 2
    queue.clear()
    print(f"cleared namespace {s.namespace!r}: {info['pending']} pending, {info['leased']} leased, {info['labeled']} labeled items")
    return 0


# --------------------------------------------------------------------------- parsers


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka-bootstrap-servers", default=None, help="default: KAFKA_BOOTSTRAP_SERVERS")
    p.add_argument("--redis-url", default=None, help="default: REDIS_URL")
    p.add_argument("--topic-prefix", default=None, help="default: ACTIVESTREAM_TOPIC_PREFIX or 'activestream'")
    p.add_argument("--namespace", default=None, help="Redis key namespace (default: ACTIVESTREAM_NAMESPACE or 'default')")


def _metrics_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=int, default=None, help="port for /metrics and /healthz (default: any free port)")


def _loop_opts(p: argparse.ArgumentParser) -> None:
    _metrics_opt(p)
    p.add_argument("--burst", action="store_true", help="drain what is waiting, then exit")
    p.add_argument("--max-messages", type=argtypes.count, default=None, help="exit after this many messages")


def add_parsers(sub: Any) -> None:
    """Register the service subcommands on the ``activestream`` parser."""
    p = sub.add_parser("scorer", help="score the items topic into the Redis queue; hot-swap models and re-rank")
    _common(p)
    _loop_opts(p)
    p.add_argument("--strategy", default=None, help="scoring strategy (default: ACTIVESTREAM_STRATEGY or margin+kcenter)")
    p.add_argument("--batch-size", type=int, default=None, help="items per micro-batch")
    p.set_defaults(func=cmd_scorer)

    p = sub.add_parser("retrainer", help="retrain on the labels topic and publish validated model versions")
    _common(p)
    _loop_opts(p)
    p.add_argument("--engine", choices=("confluent", "faust"), default="confluent", help="confluent-kafka loop or a faust-streaming app")
    p.set_defaults(func=cmd_retrainer)

    p = sub.add_parser("dispatcher", help="move top-ranked items to the queue topic for labelers that consume a topic")
    _common(p)
    _loop_opts(p)
    p.add_argument("--labeler-group", default="labelers", help="who the dispatched items are leased to")
    p.add_argument("--max-outstanding", type=argtypes.count, default=100, help="most items out with labelers at once")
    p.add_argument("--ack-timeout", type=argtypes.positive_seconds, default=300.0, help="seconds before an unlabeled item returns to the queue")
    p.set_defaults(func=cmd_dispatcher)

    p = sub.add_parser("labeler-api", help="HTTP API for labelers and UIs: lease top-k, submit labels, skip")
    _common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=argtypes.port, default=8080)
    _metrics_opt(p)
    p.add_argument("--strategy", default=None, help="its batch mode (+kmeans/+kcenter/+density/+falcun) shapes leased batches")
    p.set_defaults(func=cmd_labeler_api)

    p = sub.add_parser("queue", help="ops: a namespace's queue as JSON (info), or delete it (clear --yes)")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--redis-url", default=None, help="default: REDIS_URL")
    p.add_argument("--namespace", default=None, help="Redis key namespace (default: ACTIVESTREAM_NAMESPACE or 'default')")
    p.add_argument("--yes", action="store_true", help="clear: really delete the namespace's keys")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("produce", help="push a CSV / CSV.gz / JSONL / Parquet file to the items topic")
    _common(p)
    p.add_argument("file")
    p.add_argument("--id-column", default=None, help="item id column (default: id; row number when absent, and an error when given and absent)")
    p.add_argument("--id-prefix", default="row-", help="prefix of row-number ids")
    p.add_argument("--exclude", action="append", help="columns that are not features (repeatable), e.g. the label")
    p.add_argument("--raw", action="store_true",
                   help="write float vectors without metadata in the raw binary layout (fastest for the scorer to decode; "
                        "the default is JSON with base64 features, which other consumers of the topic can read)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("label", help="label items from the queue topic in the terminal (or from an answers file)")
    _common(p)
    p.add_argument("--labeler-id", default=os.environ.get("USER", "labeler"))
    p.add_argument("--group", default="labelers", help="consumer group of the labelers")
    p.add_argument("--max-items", type=argtypes.count, default=None)
    p.add_argument("--idle-timeout", type=argtypes.seconds, default=None, help="exit after this many seconds without work")
    p.add_argument("--seconds-per-label", type=argtypes.seconds, default=0.0)
    p.add_argument("--answers", default=None, help="CSV with the true labels: label automatically (a simulated labeler)")
    p.add_argument("--id-column", default="id")
    p.add_argument("--label-column", default="label")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("up", help="local stack without Docker: Kafka (KRaft), Redis and the services; Ctrl-C stops all")
    p.add_argument("--state-dir", default=".activestream", help="logs and Redis AOF (default: %(default)s)")
    p.add_argument("--kafka-port", type=argtypes.port, default=None)
    p.add_argument("--redis-port", type=argtypes.port, default=None)
    p.add_argument("--metrics-base-port", type=argtypes.port, default=9310, help="scorer, retrainer, dispatcher get this port and the next two")
    p.add_argument("--without", action="append", default=[], choices=("scorer", "retrainer", "dispatcher"), help="do not start this service")
    p.add_argument("--env-file", default=None, help="write KAFKA_BOOTSTRAP_SERVERS and REDIS_URL here once up")
    p.add_argument("--no-restart", action="store_true", help="stop the whole stack when a service exits (default: start it again, backing off)")
    p.set_defaults(func=cmd_up)
