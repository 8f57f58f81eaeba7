"""A backend away, as ops sees it: a broker that goes away under an idle scorer (a real broker, SIGKILLed), and a scorer
started while its Redis is away; ``/healthz`` says so.

(An ops fault day: with the broker dead every service's ``/healthz`` said ok, and the consumer-lag gauge, read from
the last fetch's cached watermarks, said 0: nothing unread. librdkafka reports the broker away to an error callback
only, never as a consumed error.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import redis

from activestream.devstack.local_kafka import LocalKafka
from activestream.devstack.redis_server import free_port
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.scorer.service import Scorer
from activestream.streams.kafka import KafkaBus
from activestream.streams.kafka_logs import LOGGER_NAME, forget_kafka_lines
from activestream.streams.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_an_idle_scorer_says_the_broker_is_away_in_a_few_log_lines(
        redis_client: redis.Redis, namespace: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # (an ops audit: librdkafka's own log callback wrote each failed reconnect to stderr, about 20 lines a second)
    kafka = LocalKafka().start()
    try:
        bus, topics = KafkaBus(kafka.bootstrap_servers), Topics("away")
        bus.ensure_topics(topics.all())
        scorer = Scorer(bus, RankedQueue(redis_client, QueueKeys(namespace)), topics, batch_size=50, commit_interval=0.0)
        for _ in range(5):
            scorer.step(0.2)
        assert scorer.trouble() is None
        assert kafka.proc is not None
        capfd.readouterr()
        caplog.clear()
        forget_kafka_lines()  # (another test's lines of the same kind within the minute would hold these back)
        kafka.proc.send_signal(signal.SIGKILL)
        kafka.proc.wait()
        deadline = time.monotonic() + 30
        while scorer.trouble() is None and time.monotonic() < deadline:
            scorer.step(0.5)
        trouble = scorer.trouble()
        assert trouble is not None and trouble.startswith("Kafka: ") and "Connect to" in trouble, trouble
        away = time.monotonic()
        while time.monotonic() - away < 10:
            scorer.step(0.5)
        stderr = capfd.readouterr().err
        assert "%3|" not in stderr, stderr[:2000]  # (librdkafka's own format: nothing bypasses Python logging)
        refused = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME and "Connection refused" in r.getMessage()]
        assert 0 < len(refused) <= 4, refused  # (each kind of line at most once a minute: the broker's and the bootstrap's)
    finally:
        kafka.stop()


def test_a_scorer_started_while_redis_is_away_answers_healthz_with_the_reason(kafka_bootstrap: str) -> None:
    # (an ops audit: it served neither /metrics nor /healthz until Redis was back: "connection refused", so Prometheus
    # said the service was down, not that it waited for Redis)
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "ACTIVESTREAM_NAMESPACE": "waits-for-redis"}
    proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "scorer", "--metrics-port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, seen = time.monotonic() + 60, None
        while time.monotonic() < deadline and seen is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3)  # noqa: S310 - loopback
            except urllib.error.HTTPError as exc:
                seen = (exc.code, json.loads(exc.read()))
                continue
            except OSError:
                pass
            time.sleep(0.3)
        assert seen is not None and seen[0] == 503, seen
        assert seen[1]["problem"].startswith("scorer start-up: Redis unreachable"), seen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
