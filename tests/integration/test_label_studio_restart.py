"""``activestream label-studio`` as a process over real Kafka and Redis, SIGKILLed mid-sync and restarted.

Between kills a labeler keeps annotating in Label Studio; at the end every annotation is on the
labels topic and the retrainer folds each exactly once, no item has two tasks, and nothing
annotated is lost.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from activestream.labeling.label_studio_config import ITEM_ID_FIELD
from activestream.labeling.label_studio_project import load_client
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.training_set import TrainingSet
from activestream.schemas import decode_label
from activestream.streams.topics import Topics
from tests.integration.test_label_studio import Annotator
from tests.label_studio_fixtures import LabelStudioServer

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def started(log: Path, timeout: float = 90.0) -> None:
    """Wait until the connector serves its metrics (it has connected to Kafka, Redis and Label Studio)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"metrics on" in log.read_bytes():
            return
        time.sleep(0.1)
    raise AssertionError(f"the connector did not start: {log.read_text(errors='replace')[-2000:]}")


def test_connector_killed_mid_sync_and_restarted_loses_and_duplicates_nothing(
    kafka_bus: tuple[Any, Topics], redis_url: str, redis_client: redis.Redis, namespace: str, label_studio: LabelStudioServer, tmp_path: Path,
) -> None:
    bus, topics = kafka_bus
    bus.ensure_topics(topics.all())
    n = 40
    ids = [f"k{i:03d}" for i in range(n)]
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(ids, np.zeros(n), np.random.default_rng(3).normal(size=(n, 3)).astype(np.float32), [{"text": i} for i in ids])
    queue.rerank(lambda batch, _X: np.array([1.0 - int(i[1:]) / n for i in batch]), version=1)
    with httpx.Client(timeout=30) as http:
        client = load_client(label_studio.url, label_studio.token, http=http)
        title = f"restart {namespace}"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bus.bootstrap_servers, "REDIS_URL": redis_url,
               "ACTIVESTREAM_LABEL_STUDIO_URL": label_studio.url, "ACTIVESTREAM_LABEL_STUDIO_TOKEN": label_studio.token,
               "ACTIVESTREAM_EXPLORE": "0"}
        # Every run as a team would start it: the first creates the project, the others find it by its title.
        args = [sys.executable, "-m", "activestream.cli", "-v", "label-studio", "--create-project", title, "--classes", "cat,dog",
                "--data-field", "text", "--namespace", namespace,
                "--topic-prefix", topics.prefix, "--top-n", "15", "--sync-every", "0.1", "--poll-every", "0.3", "--grace", "0"]
        rng = np.random.default_rng(11)
        annotated: dict[int, str] = {}  # annotation id -> item
        project = 0
        try:
            for round_ in range(8):
                with open(tmp_path / f"connector-{round_}.log", "wb") as log:
                    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
                    try:
                        started(tmp_path / f"connector-{round_}.log")
                        if round_ == 0:
                            found = re.search(rb"created project (\d+)", (tmp_path / "connector-0.log").read_bytes())
                            assert found, "the first run creates the project"
                            project = int(found.group(1))
                            who = Annotator(label_studio, project)
                        else:
                            assert f"project {project} is titled".encode() in (tmp_path / f"connector-{round_}.log").read_bytes()
                        time.sleep(float(rng.uniform(0.0, 1.0)))  # (a sync or a poll in flight)
                        for _ in range(2):
                            task, wait = who.next(), time.monotonic() + 20
                            while task is None and time.monotonic() < wait:  # (under load the restarted connector's first sync comes later)
                                time.sleep(0.2)
                                task = who.next()
                            if task is not None:
                                annotated[who.answer(task["id"], "cat" if round_ % 2 else "dog")["id"]] = task["data"][ITEM_ID_FIELD]
                        time.sleep(float(rng.uniform(0.0, 0.5)))
                    finally:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(10)
            # A last run that is not killed: it catches up on everything.
            with open(tmp_path / "connector-last.log", "wb") as log:
                proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    started(tmp_path / "connector-last.log")
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline and len({i for i in annotated.values()} - {i for i in ids if queue.is_labeled(i)}) > 0:
                        time.sleep(0.5)
                    time.sleep(1.0)  # (a sync after the last label)
                    # One prediction per task once the connector has caught up: a task adopted after a crash
                    # gets a new prediction first and its old one is deleted by a later sync (a few seconds
                    # under load), never left behind.
                    settle = time.monotonic() + 60
                    while True:
                        listed = list(client.tasks.list(project=project, fields="all"))
                        doubled = [(t.id, t.predictions) for t in listed if len(t.predictions or []) > 1]
                        if not doubled or time.monotonic() > settle:
                            break
                        time.sleep(1.0)
                    tasks = [t.data[ITEM_ID_FIELD] for t in listed]
                    assert not doubled, doubled
                finally:
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(30) == 0
        finally:
            if project:
                client.projects.delete(project)
    assert len(annotated) == 16
    assert not [i for i, c in Counter(tasks).items() if c > 1], "an item got two Label Studio tasks"
    labels = [decode_label(m.value) for m in bus.consumer([topics.labels], None).read_to_end(30.0)]
    by_id = Counter(lab.label_id for lab in labels)
    assert sorted(by_id) == sorted(f"labelstudio:{project}:{a}" for a in annotated)  # every annotation, none lost
    training = TrainingSet()
    folded = Counter(training.add(lab) for lab in labels)
    assert folded["new"] == len(annotated) and folded["updated"] == 0  # each reaches the retrainer exactly once
    assert all(queue.is_labeled(i) for i in annotated.values())
