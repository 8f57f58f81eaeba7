"""``/metrics`` (Prometheus) and ``/healthz`` for every service, on a daemon thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class Health:
    """Liveness facts a service updates from its loop; ``/healthz`` is 200 while the loop ticks."""

    def __init__(self, service: str, stale_after: float = 60.0) -> None:
        self.service = service
        self.stale_after = stale_after
        self.last_tick = time.monotonic()
        self.problem: str | None = None
        self.facts: dict[str, Any] = {}

    def tick(self, **facts: Any) -> None:
        """The loop is alive: healthy again, with ``facts`` (model version, ...) added to ``/healthz``."""
        self.last_tick = time.monotonic()
        self.problem = None
        self.facts.update(facts)

    def down(self, problem: str) -> None:
        """Unhealthy (503) until the next :meth:`tick`, saying why: the loop runs but cannot do its work."""
        self.problem = problem

    def status(self) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)`` of ``/healthz``: 200 while ticked within ``stale_after`` and not down, else 503."""
        age = time.monotonic() - self.last_tick
        ok = age < self.stale_after and self.problem is None
        extra = {"problem": self.problem} if self.problem is not None else {}
        return (200 if ok else 503), {"service": self.service, "ok": ok, "last_tick_seconds_ago": round(age, 3), **extra, **self.facts}


def serve(registry: CollectorRegistry, health: Health, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving on ``host:port`` (0 = any free port; read ``server.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/metrics"):
                try:
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                except Exception as exc:  # noqa: BLE001 - e.g. a gauge reading an unreachable Redis
                    body, ctype, code = f"metrics unavailable: {type(exc).__name__}: {exc}\n".encode(), "text/plain", 503
            elif self.path.startswith("/healthz"):
                code, payload = health.status()
                body, ctype = json.dumps(payload).encode(), "application/json"
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def periodic(interval: float, fn: Callable[[], None]) -> Callable[[], None]:
    """Call ``fn`` at most every ``interval`` seconds when the returned function is called."""
    last = [0.0]

    def maybe() -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            fn()

    return maybe
