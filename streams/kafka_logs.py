"""librdkafka's log lines through Python logging, each kind of line once a minute with the count of its repeats.

(An ops audit: with the broker away, a scorer wrote about 20 lines a second to stderr, one per failed reconnect —
librdkafka's default log callback prints every one; the consumer's coordinator query retries every 50 ms.)
The clients are built with :func:`kafka_logger` as their ``logger`` setting; their lines then wait in each client's
queue until it is polled: a consumer's by ``consume``, a producer's and the admin client's by ``KafkaBus.serve_logs``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

REPEAT_SECONDS = 60.0
LOGGER_NAME = "activestream.kafka.librdkafka"
_MAX_KINDS = 1000  # kinds of line remembered at once: older ones are forgotten first

# What differs between repeats of one line: the client's name ("[activestream#consumer-3]"), the time spent in a state,
# counts, ports, partitions.
_CLIENT = re.compile(r"\[[^\]\s]*#(?:producer|consumer)-\d+\]")
_NUMBER = re.compile(r"\d+")


def line_kind(message: str) -> str:
    """The part of a librdkafka log line its repeats share.

    Parameters
    ----------
    message : a formatted line as confluent-kafka logs it: ``"FAIL [activestream#consumer-3] 127.0.0.1:9092/bootstrap:
        Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"``.

    Returns
    -------
    The line without its client's name and with every number as ``#``.
    """
    return _NUMBER.sub("#", _CLIENT.sub("", message))


class RepeatFilter(logging.Filter):
    """Passes the first line of each kind (:func:`line_kind`), then one per ``seconds`` with the count it held back.

    Parameters
    ----------
    seconds : how long repeats of a passed line are held back.
    clock : monotonic seconds (a parameter for the tests).
    """

    def __init__(self, seconds: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = seconds
        self._clock = clock
        self._kinds: dict[tuple[int, str], list[float]] = {}  # kind -> [time it last passed, repeats held back since]
        self._lock = threading.Lock()  # (clients of several threads log through one filter)

    def forget(self) -> None:
        """Forget every line passed (the next of each kind passes again)."""
        with self._lock:
            self._kinds.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        kind, now = (record.levelno, line_kind(record.getMessage())), self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.seconds:
                seen[1] += 1
                return False
            if len(self._kinds) >= _MAX_KINDS:
                del self._kinds[next(iter(self._kinds))]
            self._kinds.pop(kind, None)  # (re-inserted last: the dict's order is the order of last passing)
            self._kinds[kind] = [now, 0.0]
        if seen is not None and seen[1]:
            record.msg, record.args = f"{record.getMessage()} (and {seen[1]:.0f} more like it in {now - seen[0]:.0f} s)", ()
        return True


def kafka_logger() -> logging.Logger:
    """The logger every Kafka client of this process logs to (one :class:`RepeatFilter`, added once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger


def forget_kafka_lines() -> None:
    """Let the next line of each kind through again (tests that count lines, each from a fresh start)."""
    for f in kafka_logger().filters:
        if isinstance(f, RepeatFilter):
            f.forget()
