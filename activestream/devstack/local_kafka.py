"""A single-node Apache Kafka 3.9.1 (KRaft) from its Maven Central jars: no Docker, no tarball.

:func:`kafka_libs` fetches ``org.apache.kafka:kafka_2.13`` and an slf4j binding with
``mvn dependency:copy-dependencies`` once into a cache dir; :class:`LocalKafka` formats
a temp log dir and runs ``kafka.Kafka`` as a child process on free loopback ports.
Used by ``activestream up``, the test fixtures, and ``.ci/run``::

    python -m activestream.devstack.local_kafka [--port N] [--data-dir DIR] [--env-file FILE]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
SLF4J_VERSION = "1.7.36"
DEFAULT_CACHE = Path.home() / ".cache" / "activestream" / f"kafka-{KAFKA_VERSION}" / "libs"
LIBS_ENV = "ACTIVESTREAM_KAFKA_LIBS"
MARKER = ".complete"  # written only after a complete fetch, so a killed mvn run is retried

# Kept identical to deploy/kafka/pom.xml (tests/unit/test_local_kafka_config.py checks it);
# embedded so an installed (non-editable) package can fetch the jars too.
POM_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!--
  Jars for a single-node Apache Kafka 3.9.1 (KRaft) without Docker or a tarball.
  Used by activestream.devstack.local_kafka:
    mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=<cache>/libs
  3.9.x, not 4.x: aiokafka/faust have had incompatibilities with Kafka 4.
  slf4j-reload4j: Kafka 3.9 logs through slf4j and needs a binding on the classpath.
-->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>activestream</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>

  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <kafka.version>3.9.1</kafka.version>
  </properties>

  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${kafka.version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""

# Kept identical to deploy/kafka/log4j.properties (checked by the same unit test).
LOG4J_PROPERTIES = """\
# Quiet broker logging for local/CI brokers: warnings and errors only, to stderr
# (activestream.devstack.local_kafka shows the stderr tail when the broker fails to start).
log4j.rootLogger=WARN, stderr

log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n

# Startup chatter that is logged at WARN but is expected on a fresh single-node broker.
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=ERROR
"""

# Measured on 2 cores: C1-only JIT takes time-to-ready from ~4.2 s to ~3.2 s (a local broker
# is short-lived and lightly loaded, so C2's peak speed is not missed); SerialGC avoids G1's
# extra threads on small machines; no hsperfdata mmap file. A dynamic AppCDS archive saved
# ~1 s more per start but costs ~4 s to dump on the first stop, a loss for one-broker CI runs.
JVM_FLAGS: tuple[str, ...] = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _libs_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(LIBS_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE


def kafka_libs(cache_dir: Path | None = None) -> Path:
    """The directory of Kafka's jars, fetched with Maven on first use.

    Parameters
    ----------
    cache_dir : where the jars live; default ``$ACTIVESTREAM_KAFKA_LIBS``, else
        ``~/.cache/activestream/kafka-3.9.1/libs``. A directory counts as complete
        only with its ``.complete`` marker (touch it to use a Kafka distribution's ``libs/``).

    Returns
    -------
    Path
        The directory, for ``java -cp 'DIR/*'``.

    Raises
    ------
    RuntimeError
        When ``mvn`` is missing or fails (its output is included).
    """
    libs = _libs_dir(cache_dir)
    if (libs / MARKER).exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # A file lock, so parallel test workers or services do not run mvn into one dir at once.
    with open(libs.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / MARKER).exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(f"cannot fetch Kafka {KAFKA_VERSION} jars: Maven (mvn) is not on PATH; install it or set {LIBS_ENV} to a complete libs dir")
        pom = libs.parent / "pom.xml"
        pom.write_text(POM_XML)
        libs.mkdir(parents=True, exist_ok=True)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={libs}"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0 or not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise RuntimeError(f"fetching Kafka {KAFKA_VERSION} jars failed (mvn exit {proc.returncode}): {' '.join(cmd)}\n{_tail(proc.stdout, 60)}")
        (libs / MARKER).write_text(f"kafka_2.13 {KAFKA_VERSION}, slf4j-reload4j {SLF4J_VERSION}\n")
    return libs


def random_cluster_id() -> str:
    """A KRaft cluster id, as ``kafka-storage.sh random-uuid`` makes them.

    Kafka's ``Uuid.randomUuid()`` is a random UUID in URL-safe base64 without padding,
    re-drawn when it starts with ``-``; doing it here saves one JVM start (~0.5-1 s).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def server_properties(port: int, controller_port: int, log_dir: str | Path, extra: Mapping[str, str] | None = None) -> str:
    """Render ``server.properties`` for a single-node broker+controller on loopback.

    Parameters
    ----------
    port : PLAINTEXT listener (what clients bootstrap from).
    controller_port : the KRaft CONTROLLER listener.
    log_dir : ``log.dirs``.
    extra : settings that override or add to the defaults.
    """
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        # One node: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # The first group join creates __consumer_offsets; 1 partition instead of 50 is much faster.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        # Tests open and close many groups: no 3 s wait before the first rebalance.
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        # Topics come from ensure_topics only, so a typo fails instead of creating a topic.
        "auto.create.topics.enable": "false",
        "log.dirs": str(log_dir),
    }
    props.update(extra or {})
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


_RUNNING: set[LocalKafka] = set()


@atexit.register
def _stop_all() -> None:
    # Backstop for an interpreter exiting with a broker still up (the JVM is in its own session).
    for k in list(_RUNNING):
        k.stop()


class LocalKafka:
    """A single-node KRaft broker+controller as a child process, on free loopback ports.

    Parameters
    ----------
    port : PLAINTEXT port (free one by default).
    controller_port : CONTROLLER port (free one by default).
    data_dir : keep logs here across restarts (formatted once); a temp dir, removed on
        :meth:`stop`, by default.
    libs : directory of Kafka jars (default :func:`kafka_libs`).
    properties : extra ``server.properties`` settings.
    jvm_flags : JVM flags (heap, JIT); ``-Dlog4j.configuration`` is always added.

    Examples
    --------
    >>> with LocalKafka() as kafka:  # doctest: +SKIP
    ...     bus = KafkaBus(kafka.bootstrap_servers)
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        data_dir: str | Path | None = None,
        libs: Path | None = None,
        properties: Mapping[str, str] | None = None,
        jvm_flags: tuple[str, ...] = JVM_FLAGS,
    ) -> None:
        self._fixed_ports = port is not None or controller_port is not None
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.data_dir = Path(data_dir) if data_dir else None
        self.libs = libs
        self.properties = dict(properties or {})
        self.jvm_flags = jvm_flags
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._workdir: Path | None = None
        self._log: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    # -- lifecycle
    def start(self, timeout: float = 60.0) -> LocalKafka:
        """Format storage, launch the broker and wait until it answers metadata requests.

        Raises
        ------
        RuntimeError
            When java or the jars are missing, or the broker exits or does not answer
            within ``timeout`` seconds (the tail of its log is included).
        """
        if self.proc is not None:
            return self
        t0 = time.monotonic()
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("cannot start Kafka: java is not on PATH (Kafka 3.9 needs Java 11+)")
        libs = self.libs or kafka_libs()
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="activestream-kafka-")
        self._workdir = Path(self._tmp.name)
        log_dir = self.data_dir / "logs" if self.data_dir else self._workdir / "logs"
        log4j = self._workdir / "log4j.properties"
        log4j.write_text(LOG4J_PROPERTIES)
        base = [java, *self.jvm_flags, f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{libs}/*"]
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            try:
                self._launch(base, log_dir, t0 + timeout)
                break
            except _PortTaken:
                # free_port() can race with another process; pick new ports and retry.
                if attempt == attempts - 1:
                    raise RuntimeError(f"Kafka could not bind its ports; log tail:\n{self.log_tail()}") from None
                self.port, self.controller_port = free_port(), free_port()
        self.startup_seconds = time.monotonic() - t0
        return self

    def _launch(self, base: list[str], log_dir: Path, deadline: float) -> None:
        assert self._workdir is not None
        props = self._workdir / "server.properties"
        props.write_text(server_properties(self.port, self.controller_port, log_dir, self.properties))
        log_dir.mkdir(parents=True, exist_ok=True)
        if not (log_dir / "meta.properties").exists():
            fmt = subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(props), "--ignore-formatted"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka StorageTool format failed (exit {fmt.returncode}):\n{_tail(fmt.stdout)}")
        self._log = self._workdir / "broker.log"
        with open(self._log, "wb") as out:
            # Own session/process group: stop() signals the JVM and anything it forked, and a
            # Ctrl-C in the parent's terminal does not reach it before we stop it in order.
            self.proc = subprocess.Popen([*base, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _RUNNING.add(self)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        from confluent_kafka.admin import AdminClient

        # log_level 0: no "connection refused" lines from librdkafka while the JVM boots.
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0, "socket.connection.setup.timeout.ms": 1000})
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                rc, tail = self.proc.returncode, self.log_tail()
                self._kill()
                if "Address already in use" in tail or "BindException" in tail:
                    raise _PortTaken()
                raise RuntimeError(f"Kafka exited with code {rc} during startup; log tail:\n{tail}")
            if _listening(self.port):
                with contextlib.suppress(Exception):
                    # Brokers appear in metadata only once the node is registered and unfenced.
                    if admin.list_topics(timeout=1.0).brokers:
                        return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"Kafka did not answer on {self.bootstrap_servers} in time; log tail:\n{tail}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the broker's log (stdout and stderr), ``""`` before any."""
        if self._log is None or not self._log.exists():
            return ""
        return _tail(self._log.read_text(errors="replace"), lines)

    def _kill(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        if proc is None or proc.poll() is not None:
            return
        # SIGTERM lets the broker close its logs cleanly (fast restart with --data-dir).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` s) and remove the temp dir."""
        self._kill(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class _PortTaken(Exception):
    pass


def _listening(port: int) -> bool:
    # A cheap TCP probe first, so the admin client is not asked before the socket exists.
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    """Start a broker, print ``KAFKA_BOOTSTRAP_SERVERS=...``, run until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="python -m activestream.devstack.local_kafka", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: a free one)")
    ap.add_argument("--data-dir", default=None, help="keep the broker's data here across runs (default: a temp dir)")
    ap.add_argument("--env-file", default=None, help="also write KAFKA_BOOTSTRAP_SERVERS=... to this file once ready")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker (includes the first jar fetch)")
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kafka = LocalKafka(args.port, data_dir=args.data_dir)
    try:
        kafka.start(args.timeout)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        line = f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}"
        print(line, flush=True)
        print(f"# Kafka {KAFKA_VERSION} ready in {kafka.startup_seconds:.1f}s; Ctrl-C stops it", file=sys.stderr, flush=True)
        if args.env_file:
            # Written last and atomically: waiters poll for a non-empty file.
            tmp = Path(f"{args.env_file}.tmp")
            tmp.write_text(line + "\n")
            tmp.replace(args.env_file)
        while not stop.wait(1.0):
            if not kafka.running:
                print(f"error: Kafka exited; log tail:\n{kafka.log_tail()}", file=sys.stderr)
                return 1
        return 0
    finally:
        kafka.stop()


if __name__ == "__main__":
    raise SystemExit(main())
