"""Back-pressure: the scorer waits for Redis (unreachable, or full at ``maxmemory``) instead of failing."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from activestream.rankedqueue.outage import Backoff, redis_outage
from activestream.scorer.metrics import ScorerMetrics

log = logging.getLogger(__name__)


class RedisPause:
    """Runs a scorer step; a Redis outage in it pauses (recover, then a bounded back-off wait) instead of raising.

    Parameters
    ----------
    metrics : the scorer's bundle: ``paused`` is 1 while paused, ``pauses`` counts pauses by reason.
    backoff : the waits between tries.

    Attributes
    ----------
    reason : why the last step waited (``None``: it did not); ``/healthz`` shows it.
    """

    def __init__(self, metrics: ScorerMetrics, backoff: Backoff | None = None) -> None:
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        self.reason: str | None = None

    def run(self, step: Callable[[], int], recover: Callable[[], None]) -> int:
        """``step()``, or 0 after an outage (``recover()`` called, back-off waited); other errors raise."""
        try:
            n = step()
        except Exception as exc:
            outage = redis_outage(exc)
            if outage is None:
                raise
            code, message = outage
            if self.reason is None:
                log.warning("scoring paused: %s", message)
                self.metrics.pauses.labels(reason=code).inc()
            self.reason = message
            self.metrics.paused.set(1)
            with contextlib.suppress(Exception):  # (Redis is away: recover drops what it cannot confirm)
                recover()
            time.sleep(self.backoff.next())
            return 0
        if self.reason is not None:
            log.info("Redis takes writes again: scoring resumes")
            self.reason = None
            self.metrics.paused.set(0)
        self.backoff.reset()
        return n
