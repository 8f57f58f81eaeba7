"""Telling a Redis outage (wait and retry) from a verdict on a record (dead-letter it).

A service that meets one of these waits with :class:`Backoff` and tries again: the record
it was handling is valid, only Redis is away (refused, timed out, loading its AOF) or full
(``maxmemory`` with ``noeviction`` answers writes with ``OOM`` errors until memory is freed).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import redis
from prometheus_client import Counter, Gauge

from activestream.streams.metric_labels import Namespaced

log = logging.getLogger(__name__)

#: Reasons a service reports (``/healthz``, the pause metric's label).
UNREACHABLE = "redis_unreachable"
FULL = "redis_maxmemory"
READ_ONLY = "redis_read_only"

# Error replies that say Redis cannot take writes now, not that the command was wrong.
_REPLY_PREFIXES = {"OOM ": FULL, "MISCONF ": READ_ONLY, "READONLY ": READ_ONLY, "LOADING ": UNREACHABLE, "MASTERDOWN ": UNREACHABLE}
# What redis-py raises for those replies to a plain command (it strips the prefix off the message).
_REPLY_CLASSES = ((redis.exceptions.OutOfMemoryError, FULL), (redis.exceptions.ReadOnlyError, READ_ONLY),
                  (redis.exceptions.MasterDownError, UNREACHABLE))


def redis_outage(exc: BaseException) -> tuple[str, str] | None:
    """``(reason code, message)`` when ``exc`` means Redis is away or full, else ``None`` (a real error).

    Parameters
    ----------
    exc : what a Redis call (or a script's reply read later) raised.
    """
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):  # (BusyLoadingError is a ConnectionError)
        return UNREACHABLE, f"Redis unreachable: {type(exc).__name__}: {exc}"
    if isinstance(exc, redis.ResponseError):
        text = str(exc)
        for cls, code in _REPLY_CLASSES:
            if isinstance(exc, cls):
                return code, f"Redis cannot take writes ({code}): {text[:200]}"
        # A script's error reply reads "... @user_script: 1: -OOM command not allowed ...": look inside it too.
        for prefix, code in _REPLY_PREFIXES.items():
            if text.startswith(prefix) or f"-{prefix}" in text:
                return code, f"Redis cannot take writes ({code}): {text[:200]}"
    return None


class Backoff:
    """Bounded exponential back-off: ``first`` seconds, doubled per failure in a row, at most ``most``.

    Parameters
    ----------
    first : the first wait.
    most : the longest wait.
    """

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self.first, self.most = first, most
        self.failures = 0

    def next(self) -> float:
        """The wait after one more failure in a row."""
        self.failures += 1
        return float(min(self.most, self.first * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.failures = 0


class RedisPause:
    """Runs a service's step; a Redis outage in it pauses (recover, then a bounded back-off wait) instead of raising.

    Parameters
    ----------
    paused : a gauge set to 1 while paused, 0 once a step succeeds again (optional).
    pauses : a counter of pauses, with a ``reason`` label (optional).
    backoff : the waits between tries.
    what : what pauses, for the log.

    Attributes
    ----------
    reason : why the last step waited (``None``: it did not); ``/healthz`` shows it.
    """

    def __init__(self, paused: Gauge | None = None, pauses: Counter | Namespaced[Counter] | None = None, backoff: Backoff | None = None,
                 what: str = "scoring") -> None:
        self.paused, self.pauses = paused, pauses
        self.backoff = backoff or Backoff()
        self.what = what
        self.reason: str | None = None

    def run(self, step: Callable[[], int], recover: Callable[[], None], probe: Callable[[], object] | None = None) -> int:
        """``step()``, or 0 after an outage (``recover()`` called, back-off waited); other errors raise.

        While paused, a step that did nothing (0: no record came, so Redis was maybe not asked)
        ends the pause only when ``probe()`` (e.g. a PING) succeeds; without a probe, any step that
        does not raise ends it.
        """
        try:
            n = step()
            if self.reason is not None and n == 0 and probe is not None:
                probe()
        except Exception as exc:
            outage = redis_outage(exc)
            if outage is None:
                raise
            self._pause(*outage, recover)
            return 0
        if self.reason is not None:
            log.warning("Redis takes writes again: %s resumes", self.what)  # (as loud as the pause: services log warnings only)
            self.reason = None
            if self.paused is not None:
                self.paused.set(0)
        self.backoff.reset()
        return n

    def _pause(self, code: str, message: str, recover: Callable[[], None]) -> None:
        if self.reason is None:
            log.warning("%s paused: %s", self.what, message)
            if self.pauses is not None:
                self.pauses.labels(reason=code).inc()
        self.reason = message
        if self.paused is not None:
            self.paused.set(1)
        with contextlib.suppress(Exception):  # (Redis is away: recover drops what it cannot confirm)
            recover()
        time.sleep(self.backoff.next())
