"""A broker that goes away under an idle scorer: its ``/healthz`` problem says so (a real broker, SIGKILLed).

(An ops fault day: with the broker dead every service's ``/healthz`` said ok, and the consumer-lag gauge, read from
the last fetch's cached watermarks, said 0: nothing unread. librdkafka reports the broker away to an error callback
only, never as a consumed error.)
"""

from __future__ import annotations

import signal
import time

import pytest
import redis

from activestream.devstack.local_kafka import LocalKafka
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.scorer.service import Scorer
from activestream.streams.kafka import KafkaBus
from activestream.streams.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_an_idle_scorer_says_the_broker_is_away(redis_client: redis.Redis, namespace: str) -> None:
    kafka = LocalKafka().start()
    try:
        bus, topics = KafkaBus(kafka.bootstrap_servers), Topics("away")
        bus.ensure_topics(topics.all())
        scorer = Scorer(bus, RankedQueue(redis_client, QueueKeys(namespace)), topics, batch_size=50, commit_interval=0.0)
        for _ in range(5):
            scorer.step(0.2)
        assert scorer.trouble() is None
        assert kafka.proc is not None
        kafka.proc.send_signal(signal.SIGKILL)
        kafka.proc.wait()
        deadline = time.monotonic() + 30
        while scorer.trouble() is None and time.monotonic() < deadline:
            scorer.step(0.5)
        trouble = scorer.trouble()
        assert trouble is not None and trouble.startswith("Kafka: ") and "Connect to" in trouble, trouble
    finally:
        kafka.stop()
