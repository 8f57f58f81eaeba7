"""``/metrics`` (Prometheus) and ``/healthz`` for every service: a Starlette app on uvicorn, on a daemon thread.

The same framework and server as the labeler API (:mod:`activestream.labeling.webserver`);
the exposition is ``prometheus_client``'s own ``generate_latest``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from activestream.labeling.webserver import ThreadedServer

log = logging.getLogger(__name__)


class Health:
    """Liveness facts a service updates from its loop; ``/healthz`` is 200 while the loop ticks."""

    def __init__(self, service: str, stale_after: float = 60.0, stuck_after: float | None = None, problem: str | None = None) -> None:
        self.service = service
        self.stale_after = stale_after
        self.stuck_after = stuck_after  # a step running longer is reported at once (None: not watched)
        self.last_tick = time.monotonic()
        self.problem: str | None = problem  # (a service served before it can work says why from its first answer)
        self.facts: dict[str, Any] = {}
        self.step_began: float | None = None  # (monotonic) while a step of the loop runs

    def begin_step(self) -> None:
        """A step of the loop starts (see ``stuck_after``)."""
        self.step_began = time.monotonic()

    def end_step(self) -> None:
        self.step_began = None

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
        now = time.monotonic()
        age = now - self.last_tick
        problem = self.problem
        began = self.step_began
        if problem is None and self.stuck_after is not None and began is not None and now - began >= self.stuck_after:
            # (a backend that does not answer holds a call up to its timeout, and the loop's own report comes after it)
            problem = f"one step of the loop has run for {now - began:.0f} s: waiting for Redis or Kafka? (see the service's log)"
        ok = age < self.stale_after and problem is None
        extra = {"problem": problem} if problem is not None else {}
        return (200 if ok else 503), {"service": self.service, "ok": ok, "last_tick_seconds_ago": round(age, 3), **extra, **self.facts}


def create_app(registry: CollectorRegistry, health: Health) -> Starlette:
    """``/metrics`` (``prometheus_client``'s exposition of ``registry``; 503 when a gauge cannot be read) and ``/healthz``."""

    def metrics(request: Request) -> Response:
        try:
            return Response(generate_latest(registry), 200, media_type=CONTENT_TYPE_LATEST)
        except Exception as exc:  # noqa: BLE001 - e.g. a gauge reading an unreachable Redis
            return PlainTextResponse(f"metrics unavailable: {type(exc).__name__}: {exc}\n", 503)

    def healthz(request: Request) -> Response:
        code, payload = health.status()
        return Response(json.dumps(payload).encode(), code, media_type="application/json")  # (as before: NaN facts pass)

    # (sync endpoints run on Starlette's thread pool: a gauge reading Redis blocks no other request)
    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


def serve(registry: CollectorRegistry, health: Health, port: int, host: str = "127.0.0.1") -> ThreadedServer:
    """Start serving on ``host:port`` (0 = any free port; read ``server.server_port``) with uvicorn on a daemon thread."""
    return ThreadedServer(create_app(registry, health), port, host, name="metrics-http")


def periodic(interval: float, fn: Callable[[], None]) -> Callable[[], None]:
    """Call ``fn`` at most every ``interval`` seconds when the returned function is called."""
    last = [0.0]

    def maybe() -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            fn()

    return maybe
