"""A process supervisor for the local stack (``activestream up``): start services, restart them with back-off.

A service that exits is started again after :data:`RESTART_FIRST_DELAY`, doubled for each
exit in a row up to :data:`RESTART_MAX_DELAY` (Compose's ``restart: unless-stopped`` backs
off the same way); one that ran for :data:`RESTART_RESET_SECONDS` counts as healthy and
starts the next count from the beginning.

Each service gets ``ACTIVESTREAM_INSTANCE_ID`` (its slot: host, name, replica 0), the same on
every restart: its Kafka consumers rejoin their group as the same static member and resume
their partitions at once (:data:`activestream.streams.kafka_consumer.STATIC_SESSION_TIMEOUT_MS`
is fitted to :data:`RESTART_FIRST_DELAY`).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
# As Docker's restart policies: a run of 10 s resets the back-off. A service killed after it
# ran that long (an OOM kill, an operator's kill -9) is back after RESTART_FIRST_DELAY, not
# after a delay grown by earlier, unrelated exits; a crash loop (exits within seconds) still backs off.
RESTART_RESET_SECONDS = 10.0


def restart_delay(previous: float | None, ran_for: float) -> float:
    """Seconds to wait before starting again a service that ran ``ran_for`` seconds and exited.

    Parameters
    ----------
    previous : the delay before its last start (``None``: it never was restarted).
    ran_for : how long its last run lasted.

    Returns
    -------
    :data:`RESTART_FIRST_DELAY` after a healthy run, else twice ``previous`` up to :data:`RESTART_MAX_DELAY`.
    """
    if previous is None or ran_for >= RESTART_RESET_SECONDS:
        return RESTART_FIRST_DELAY
    return min(2 * previous, RESTART_MAX_DELAY)


# The exit status of a command that refused with one "error:" line (a setting, a flag, credentials: activestream.cli.main).
REFUSED = 2


def last_line(path: Path) -> str:
    """The last non-empty line of a log file (its last 4 KiB), or a note that there is none."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))
            lines = [line for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(its log is empty)"


class Supervised:
    """One service of the local stack: its process, started again whenever it exits.

    Parameters
    ----------
    name : the service's name in messages.
    argv : its command line.
    env : its environment.
    log_path : its stdout and stderr are appended here.
    """

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, dict(env), log_path
        self.restarts = 0
        self.delay: float | None = None
        self.proc: subprocess.Popen[bytes]  # (set by start)
        self.started = 0.0
        self.start_at: float | None = None  # when to start it again; None while it runs
        self.refused = False  # it exited with REFUSED: started again, it would refuse again
        self.start()

    def start(self) -> None:
        """Start the process (its log file is appended to)."""
        with self.log_path.open("ab") as logf:  # the child keeps its own handle
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=logf, stderr=subprocess.STDOUT)
        # (beside its log: a supervisor killed with -9 leaves its services running, and the next one names them)
        self.log_path.with_suffix(".pid").write_text(str(self.proc.pid), encoding="utf-8")
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
        if code == REFUSED:
            self.refused = True
            return f"{self.name} refused to start (exit code {code}): {last_line(self.log_path)}"
        if not restart:
            return f"{self.name} exited with code {code}"
        self.delay = restart_delay(self.delay, now - self.started)
        self.start_at = now + self.delay
        return f"{self.name} exited with code {code} after {now - self.started:.0f} s; starting it again in {self.delay:.0f} s"


def start_services(ports: Mapping[str, int], env: Mapping[str, str], state: Path) -> list[Supervised]:
    """Start ``activestream <name> --metrics-port <port>`` for each service, logging to ``state/<name>.log``.

    Parameters
    ----------
    ports : service name (``scorer``, ``retrainer``, ``dispatcher``) -> its metrics port.
    env : the services' environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ...).
    state : the directory of the logs.

    Returns
    -------
    The running services, in the order of ``ports``.
    """
    exe = [sys.executable, "-m", "activestream.cli"]
    return [Supervised(name, [*exe, name, "--metrics-port", str(port)], {**env, "ACTIVESTREAM_INSTANCE_ID": instance_id(name)},
                       state / f"{name}.log") for name, port in ports.items()]


def instance_id(name: str, replica: int = 0) -> str:
    """The stable slot id of replica ``replica`` of service ``name`` on this host (``ACTIVESTREAM_INSTANCE_ID``)."""
    return f"{socket.gethostname()}-{name}-{replica}"


def supervise(services: Sequence[Supervised], stop: Callable[[], bool], *, restart: bool, poll: float = 0.5,
              backends: Callable[[], str | None] | None = None) -> int:
    """Watch ``services`` until ``stop()``, restarting (``restart``) or giving up on one that exits.

    Each event (an exit, a restart) is printed with the service's log path; so is what ``backends`` (the stack's own
    broker and Redis, see ``activestream up``) says when one of them exited.

    Returns
    -------
    0 when stopped, 1 when a service exited and ``restart`` is off, :data:`REFUSED` when one refused to start (a
    setting, a flag: started again it would refuse again, so the stack stops, saying why).
    """
    while not stop():
        said = backends() if backends is not None else None
        if said is not None:
            print(said, flush=True)
        for svc in services:
            event = svc.check(restart=restart)
            if event is not None:
                print(f"{event} (log: {svc.log_path})", flush=True)
                if svc.refused:
                    print("stopping the stack: fix that and start it again", flush=True)
                    return REFUSED
                if not restart:
                    return 1
        time.sleep(poll)
    return 0


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
