"""The terminal labeler on a real broker: a queue entry whose commit did not happen is answered once.

(an audit: each answer went out under a random label id and the entry was committed after it. An answer slower than the
consumer's ``max.poll.interval.ms`` (its commit refused: the group had moved on) or a labeler killed between its label
and the commit got the entry shown and answered again, two labels for one item and its seconds counted twice.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis

from activestream.commands.label import still_leased_to
from activestream.labeling.dispatcher import Dispatcher
from activestream.labeling.terminal import label_from_topic
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.training_set import TrainingSet
from activestream.schemas import Label, decode_label
from activestream.streams.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def labels_on(bus: object, topic: str) -> list[Label]:
    reader = bus.consumer([topic], None)  # type: ignore[attr-defined]
    out = []
    while msgs := reader.consume(1000, 3.0):
        out += [decode_label(m.value) for m in msgs]
    reader.close()
    return out


def hours_counted(labels: list[Label]) -> float:
    ts = TrainingSet()
    for lab in labels:
        ts.add(lab)
    return sum(ts.answer_seconds) / 3600


def one_dispatched(bus: object, redis_client: redis.Redis, namespace: str, topics: Topics) -> tuple[RankedQueue, Dispatcher]:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["x0"], np.array([0.9]), np.ones((1, 4), dtype=np.float32))
    d = Dispatcher(queue, bus, topics, max_outstanding=10, ack_timeout=900.0)  # type: ignore[arg-type]  # (a slow campaign's 15 min)
    assert d.dispatch() == 1
    return queue, d


def test_an_answer_slower_than_the_poll_interval_is_not_asked_again(
    kafka_bus_factory: Callable[..., object], redis_client: redis.Redis, namespace: str
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, partitions=1)
    bus.ensure_topics(topics.all())  # type: ignore[attr-defined]
    queue, dispatcher = one_dispatched(bus, redis_client, namespace, topics)
    # The labeler's bus: max.poll.interval.ms at its smallest (stands for the 300 s default and a slow person).
    labeler_bus = kafka_bus_factory(prefix=topics.prefix + "-l", partitions=1,
                                    config={"max.poll.interval.ms": "6000", "session.timeout.ms": "6000"})
    stop = threading.Event()
    running = threading.Thread(target=dispatcher.run, kwargs={"should_stop": stop.is_set}, daemon=True)  # (it acknowledges the label)
    running.start()
    shown: list[str] = []

    def answer(item_id: str, features: object, metadata: object) -> int:
        shown.append(item_id)
        if len(shown) == 1:
            time.sleep(9.0)  # the person thinks longer than the poll interval: the group drops the consumer, its commit is refused
        return 1

    try:
        label_from_topic(labeler_bus, topics, answer, labeler_id="ann", max_items=3, idle_timeout=12.0,  # type: ignore[arg-type]
                         seconds_per_label=60.0, still_leased=still_leased_to(queue, "labelers"))
    finally:
        stop.set()
        running.join(30)
    labels = labels_on(bus, topics.labels)
    assert shown == ["x0"]  # shown again it was not: the dispatcher had acknowledged its label, the item was no longer leased
    assert len(labels) == 1 and hours_counted(labels) == pytest.approx(60 / 3600) and queue.is_labeled("x0")


KILLED_LABELER = textwrap.dedent("""
    import os, signal, sys
    from activestream.streams.kafka import KafkaBus
    from activestream.streams.topics import Topics
    from activestream.labeling.terminal import label_from_topic

    bootstrap, prefix = sys.argv[1], sys.argv[2]
    bus = KafkaBus(bootstrap, partitions=1, client_id=prefix + "-killed", config={"session.timeout.ms": "6000"})
    real_flush = bus.flush

    def flush(timeout=30.0):
        real_flush(timeout)  # the label is on the broker ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before the queue entry's commit

    bus.flush = flush
    label_from_topic(bus, Topics(prefix), lambda item_id, features, metadata: 1, labeler_id="ann", max_items=1,
                     seconds_per_label=60.0)
""")


def test_a_labeler_killed_between_its_label_and_the_commit_gives_the_same_label_again(
    kafka_bootstrap: str, kafka_bus_factory: Callable[..., object], redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = kafka_bus_factory(prefix=topics.prefix, partitions=1)
    bus.ensure_topics(topics.all())  # type: ignore[attr-defined]
    queue, _ = one_dispatched(bus, redis_client, namespace, topics)
    script = tmp_path / "killed_labeler.py"
    script.write_text(KILLED_LABELER)
    p = subprocess.run([sys.executable, str(script), kafka_bootstrap, topics.prefix], env=dict(os.environ), timeout=120, capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    assert len(labels_on(bus, topics.labels)) == 1  # its label went out
    shown: list[str] = []

    def answer(item_id: str, features: object, metadata: object) -> int:
        shown.append(item_id)
        return 1

    # Started again, no dispatcher has acknowledged the label yet: the item is still the group's, the entry is shown again.
    label_from_topic(bus, topics, answer, labeler_id="ann", max_items=3, idle_timeout=20.0, seconds_per_label=60.0,  # type: ignore[arg-type]
                     still_leased=still_leased_to(queue, "labelers"))
    labels = labels_on(bus, topics.labels)
    assert shown == ["x0"] and len(labels) == 2
    assert labels[0].label_id == labels[1].label_id  # the same label: counted once
    assert hours_counted(labels) == pytest.approx(60 / 3600)
