"""librdkafka's log lines of an idle producer reach Python logging while nothing is published (streams.kafka_logs):
a real confluent-kafka client against a port nothing listens on, so no broker is needed."""

from __future__ import annotations

import time

import pytest

from activestream.devstack.redis_server import free_port
from activestream.streams.kafka import KafkaBus
from activestream.streams.kafka_logs import LOGGER_NAME, forget_kafka_lines

pytestmark = pytest.mark.integration


def test_an_idle_producers_lines_are_served_while_nothing_is_published(caplog: pytest.LogCaptureFixture) -> None:
    # (a review: serve_logs skipped a producer whose length was not 0, and queued log lines count in that length: with
    # the broker away an idle producer's lines piled up, unserved, for the whole outage)
    forget_kafka_lines()  # (another test's lines of the same kind within the minute would hold these back)
    bus = KafkaBus(f"127.0.0.1:{free_port()}")  # (its producer connects at once: each failed attempt is a log line)
    try:
        deadline = time.monotonic() + 10
        while not any(r.name == LOGGER_NAME and "#producer-" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.2)
            bus._next_log_serve = 0.0  # (serve_logs serves at most once a second: not what is tested here)
            bus.serve_logs()
        assert any(r.name == LOGGER_NAME and "Connection refused" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        bus.close()
