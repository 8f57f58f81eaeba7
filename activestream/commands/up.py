"""``activestream up``: a local stack without Docker: Kafka (KRaft), Redis and the services; Ctrl-C stops all."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from activestream.commands import options
from activestream.config import ENV_PREFIX, setting_text
from activestream.supervisor import Supervised, start_services, stop_processes, supervise
from activestream.wiring import Stop, estimator_factory, kafka_config_problem, settings_from

if TYPE_CHECKING:
    from activestream.devstack.local_kafka import LocalKafka
    from activestream.devstack.redis_server import LocalRedis

log = logging.getLogger(__name__)

SERVICES = ("scorer", "retrainer", "dispatcher")


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``up`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("up", help="local stack without Docker: Kafka (KRaft), Redis and the services; Ctrl-C stops all")
    p.add_argument("--state-dir", default=".activestream", help="logs, Kafka's topics and Redis's AOF: a stack started again on it goes on "
                   "where it stopped (default: %(default)s)")
    p.add_argument("--kafka-port", type=options.port, default=None, help="the local broker's client port (default: a free one)")
    p.add_argument("--redis-port", type=options.port, default=None, help="the local Redis's port (default: a free one)")
    p.add_argument("--metrics-base-port", type=options.port, default=None,
                   help="scorer, retrainer, dispatcher get this port and the next two (default: free ones, printed)")
    p.add_argument("--without", action="append", default=[], choices=SERVICES, help="do not start this service")
    p.add_argument("--env-file", default=None, help="write KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and the ACTIVESTREAM_* settings the "
                   "services got (secrets left out) here once up: every command that sources it works on the same campaign")
    p.add_argument("--no-restart", action="store_true", help="stop the whole stack when a service exits (default: start it again, backing off)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start Kafka (KRaft, Maven Central jars), Redis (AOF) and the services; stop them all on Ctrl-C.

    A service that exits is started again (after 1 s, doubling to 30 s while it keeps
    exiting), as Compose's ``restart: unless-stopped`` does; ``--no-restart`` stops the
    stack instead. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``, when set, are used instead
    of starting a broker / a redis-server.

    Returns
    -------
    0 when stopped by a signal, 1 when a service exited under ``--no-restart``, 2 when one refused to start (the stack stops).
    """
    from activestream.devstack.redis_server import LocalRedis, free_port

    s = settings_from(args)  # (a bad ACTIVESTREAM_* setting: one error: line here, not a service restarting on it in a log)
    kafka_problem = kafka_config_problem(s.kafka_config)
    if kafka_problem is not None:
        raise SystemExit(f"error: {kafka_problem}")
    if "retrainer" not in args.without:  # (what the retrainer will fit: resolved only by it otherwise)
        estimator_factory(s, "ACTIVESTREAM_ESTIMATOR")
    stop = Stop()
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    earlier = read_ports(state / PORTS_FILE)  # (a stack started again keeps its addresses: shells and services that hold them go on)
    left = still_running(earlier, state)
    if left:  # (an `up` killed with -9 leaves its broker, Redis and services running: a second broker on the folder failed on its lock)
        raise SystemExit(f"error: processes of an earlier stack on {state} still run ({', '.join(f'{n} pid {p}' for n, p in left.items())}): "
                         f"an `up` stopped with Ctrl-C or SIGTERM stops them; after a kill -9 of it, stop them first: kill {' '.join(map(str, left.values()))}")
    kafka: LocalKafka | None = None
    redis_server: LocalRedis | None = None
    services: list[Supervised] = []
    try:
        # (a shell that sourced this stack's env file holds the addresses of its own broker and Redis, down now: not
        # external ones to use instead of starting them)
        bootstrap = external(address_setting("KAFKA_BOOTSTRAP_SERVERS"), f"127.0.0.1:{earlier.get('kafka')}")
        redis_url = external(address_setting("REDIS_URL"), f"redis://127.0.0.1:{earlier.get('redis')}/0")
        for name, value in (("KAFKA_BOOTSTRAP_SERVERS", bootstrap), ("REDIS_URL", redis_url)):
            if value:
                print(f"using {name}={value.rpartition('@')[2]} from the environment (not starting one)", flush=True)
        if not bootstrap:
            from activestream.devstack.local_kafka import LocalKafka

            print("starting Apache Kafka (KRaft) ...", flush=True)
            kafka = LocalKafka(port=args.kafka_port or reusable(earlier.get("kafka")), data_dir=state / "kafka").start()  # (kept, as Redis's AOF is: a restart goes on)
            bootstrap = kafka.bootstrap_servers
        if not redis_url:
            redis_server = LocalRedis(args.redis_port or reusable(earlier.get("redis")), appendonly=True, data_dir=str(state / "redis")).start()
            redis_url = redis_server.url
        base = args.metrics_base_port
        names = [name for name in SERVICES if name not in args.without]
        # (fixed ports made a second stack on one host crash-loop its services on "address already in use")
        ports = {name: base + SERVICES.index(name) for name in names} if base else {name: free_port() for name in names}
        write_ports(state / PORTS_FILE, {"kafka": kafka.port if kafka else earlier.get("kafka"),  # (one not started here: its record kept)
                                         "redis": redis_server.port if redis_server else earlier.get("redis"),
                                         "kafka_pid": kafka.proc.pid if kafka and kafka.proc else None,
                                         "redis_pid": redis_server.proc.pid if redis_server and redis_server.proc else None})
        # (both names: a service reads ACTIVESTREAM_* first, and one in this environment may be a stopped stack's address)
        addresses = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url}
        services = start_services(ports, {**os.environ, **addresses, **{ENV_PREFIX + k: v for k, v in addresses.items()}}, state)
        print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nREDIS_URL={redis_url}", flush=True)
        for name, port in ports.items():
            print(f"{name}: http://127.0.0.1:{port}/metrics  (log: {state / (name + '.log')})", flush=True)
        if args.env_file:
            with os.fdopen(os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:  # (REDIS_URL may hold a password)
                os.fchmod(fh.fileno(), 0o600)  # (an existing file keeps its mode through O_CREAT: the security audit)
                fh.write(env_file_text(bootstrap, redis_url, os.environ))
        print("stack is up; Ctrl-C stops it", flush=True)
        return supervise(services, stop, restart=not args.no_restart, backends=backends_watch(redis_server, kafka))
    finally:
        stop_processes([svc.proc for svc in services])
        for svc in services:  # (stopped: nothing of theirs runs on)
            svc.log_path.with_suffix(".pid").unlink(missing_ok=True)
        if redis_server is not None:
            redis_server.stop()
        if kafka is not None:
            kafka.stop()
        print("stack stopped", flush=True)


PORTS_FILE = "ports.json"


def backends_watch(redis_server: LocalRedis | None, kafka: LocalKafka | None) -> Callable[[], str | None]:
    """What ``up`` says of its own Redis and broker as it supervises (an ops audit: a Redis killed under ``up`` went
    unsaid, and nothing came back until a person restarted the stack): a Redis that exited is started again on its
    port (its append-only file keeps the data; the services wait for it and go on); a broker that exited is said once
    (stop the stack and start it again)."""
    told: set[str] = set()

    def check() -> str | None:
        if redis_server is not None and redis_server.proc is not None and "redis" not in told:
            code = redis_server.proc.poll()
            if code is not None:
                try:
                    redis_server.start()
                except Exception as exc:  # noqa: BLE001 - said, once: the services keep saying Redis is away
                    told.add("redis")
                    return f"redis-server exited with code {code} and could not be started again ({exc}): stop the stack and start it again"
                return f"redis-server exited with code {code}: started again on port {redis_server.port} (its append-only file keeps the data)"
        if kafka is not None and kafka.proc is not None and "kafka" not in told and (code := kafka.proc.poll()) is not None:
            told.add("kafka")
            return f"the Kafka broker exited with code {code}: the services wait for it; stop the stack (Ctrl-C) and start it again"
        return None

    return check


def still_running(recorded: Mapping[str, int], state: Path) -> dict[str, int]:
    """The broker, Redis and service processes of an earlier stack on ``state`` that still run (``{name: pid}``): those
    of one whose ``up`` was killed without stopping them. The broker's and Redis's pids are ``recorded`` in its ports file,
    each service's in ``<name>.pid`` beside its log; a pid taken since by another program is told by its command line
    (the broker, Redis) or by where its stdout writes (a service: its log in this state dir)."""
    wanted = [("kafka", recorded.get("kafka_pid"), [b"java"]), ("redis", recorded.get("redis_pid"), [b"redis-server"])]
    out = {}
    for name, pid, marks in wanted:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except OSError:
            continue
        if all(mark in cmdline for mark in marks):
            out[name] = int(pid)  # type: ignore[arg-type]
    for name in SERVICES:  # (told by where it writes: its log in this state dir, not another stack's service of that name)
        try:
            pid = int((state / f"{name}.pid").read_text(encoding="utf-8"))
            if os.readlink(f"/proc/{pid}/fd/1") == str((state / f"{name}.log").resolve()):
                out[name] = pid
        except (OSError, ValueError):
            continue
    return out


def address_setting(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The broker's or Redis's address as the services read it (:meth:`activestream.config.Settings.from_env`):
    ``ACTIVESTREAM_<name>`` first, then ``<name>``."""
    return setting_text(os.environ if env is None else env, name.lower())


def external(value: str | None, own: str) -> str | None:
    """``value`` (an address from the environment) unless it is ``own``, the stack's own broker or Redis as the state dir
    recorded it (``None``: start one)."""
    return None if not value or value == own else value


def read_ports(path: Path) -> dict[str, int]:
    """The broker's and Redis's ports a stack on this state dir had (``{}``: none recorded, or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


def write_ports(path: Path, ports: Mapping[str, int | None]) -> None:
    path.write_text(json.dumps({k: v for k, v in ports.items() if v is not None}), encoding="utf-8")


def reusable(port: int | None) -> int | None:
    """``port`` if nothing listens on it now (the stack's last one, taken again), else ``None`` (a free one is picked)."""
    if port is None:
        return None
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as Redis and the broker bind: a port in TIME_WAIT is free to them)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


# Settings never written to the env file (the services got them from the environment): secrets, and Kafka's
# security settings (SASL, SSL), which may hold one.
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY", "CREDENTIAL", "SASL", "SSL", "OAUTH")


def env_file_text(bootstrap: str, redis_url: str, environ: Mapping[str, str]) -> str:
    """The ``--env-file``: the stack's addresses and the campaign's ``ACTIVESTREAM_*`` settings (namespace, classes, ...),
    so that the commands run from another shell (``labeler-api``, ``label``, ``produce``) take what the services took;
    secrets (a token, a password) are left out. Values are shell-quoted (the file is sourced)."""
    addresses = {ENV_PREFIX + "KAFKA_BOOTSTRAP_SERVERS", ENV_PREFIX + "REDIS_URL"}  # (the lines above say them: not a stale copy)
    settings = {k: v for k, v in sorted(environ.items())
                if k.startswith(ENV_PREFIX) and k not in addresses and not any(w in k for w in SECRET_WORDS)}
    # (both names: a shell with a stale ACTIVESTREAM_REDIS_URL exported would read it first, as the services do)
    lines = [f"{prefix}{name}={shlex.quote(value)}" for prefix in ("", ENV_PREFIX)
             for name, value in (("KAFKA_BOOTSTRAP_SERVERS", bootstrap), ("REDIS_URL", redis_url))]
    return "\n".join([*lines, *(f"{k}={shlex.quote(v)}" for k, v in settings.items())]) + "\n"
