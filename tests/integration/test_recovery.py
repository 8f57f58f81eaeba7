"""Fast recovery: a SIGKILLed scorer of `activestream up` scores again within seconds (static group membership).

Before, every scorer SIGKILL stalled scoring 41.8-43.6 s: the restarted process joined as a new
member and its partitions stayed with the dead one until librdkafka's 45 s session timeout.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import Item
from activestream.streams.kafka import KafkaBus
from activestream.streams.topics import Topics
from tests.integration.test_local_stack import children_of, health, three_free_ports, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

KILLS = 3


def test_a_killed_scorer_scores_again_within_seconds(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> None:
    base = three_free_ports()
    prefix, namespace = f"rec{uuid.uuid4().hex[:8]}", f"rec{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url, "ACTIVESTREAM_TOPIC_PREFIX": prefix,
           "ACTIVESTREAM_NAMESPACE": namespace, "ACTIVESTREAM_PARTITIONS": "2", "ACTIVESTREAM_BATCH_SIZE": "100"}
    up_log = tmp_path / "up.log"
    with up_log.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "up", "--state-dir", str(tmp_path / "state"),
                                 "--metrics-base-port", str(base), "--without", "retrainer", "--without", "dispatcher"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    topics = Topics(prefix)
    bus = KafkaBus(kafka_bootstrap, partitions=2, client_id=f"test-{prefix}")
    stop = threading.Event()

    def produce() -> None:  # a steady stream: 200 items/s
        rng, i = np.random.default_rng(0), 0
        while not stop.is_set():
            for _ in range(20):
                bus.publish(topics.items, Item(f"r{i}", rng.standard_normal(8).astype(np.float32)).encode(binary=True), key=f"r{i}".encode())
                i += 1
            bus.flush()
            time.sleep(0.1)

    producer = threading.Thread(target=produce, daemon=True)
    recoveries: list[float] = []
    try:
        wait_for(lambda: health(base).get("ok"), "the scorer never came up", up_log, proc)
        bus.ensure_topics(topics.all())
        producer.start()
        wait_for(lambda: queue.depth() > 200, "the scorer never scored", up_log, proc)
        for k in range(1, KILLS + 1):
            time.sleep(11.0)  # scoring steadily; a run of 10 s resets the supervisor's back-off (as Docker's)
            os.kill(children_of(proc.pid)["scorer"], signal.SIGKILL)
            killed = time.monotonic()
            time.sleep(0.3)  # writes the dead scorer had sent land
            before = queue.depth()
            wait_for(lambda before=before: queue.depth() > before, f"scoring did not resume after kill {k}", up_log, proc, timeout=60)
            recoveries.append(time.monotonic() - killed)
            assert f"scorer started again (restart {k})" in up_log.read_text()
        print(f"scorer recovery after SIGKILL (s): {[round(r, 2) for r in recoveries]}, median {statistics.median(recoveries):.2f}")
        assert max(recoveries) < 15.0, recoveries  # (the restart delay, 1 s, included; measured median ~3 s, was ~42 s)
    finally:
        stop.set()
        producer.join(10)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        bus.close()
        queue.r.close()
