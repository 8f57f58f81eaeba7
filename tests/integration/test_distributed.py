"""Distributed mode: the services as separate processes on a real Kafka broker and a real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from sklearn.datasets import load_digits

from activestream.devstack.redis_server import free_port
from activestream.labeling.factory import FALCUN_CANDIDATES, make_label_service
from activestream.labeling.selection import falcun as select_falcun
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.retrainer.export import to_onnx
from activestream.retrainer.trainer import Trainer
from activestream.retrainer.training_set import TrainingSet
from activestream.schemas import Item, Label, ModelVersion, decode_dead_letter, decode_model_version
from activestream.scorer.model import OnnxClassifier
from activestream.scorer.strategies import Strategy
from activestream.scorer.uncertainty import margin
from activestream.streams.topics import MODEL_KEY, Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def wait_for(cond: Callable[[], object], timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Stack:
    """Service processes sharing one topic prefix and Redis namespace."""

    def __init__(self, bootstrap: str, redis_url: str, tmp: Path, **env: str) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.namespace = self.prefix
        self.topics = Topics(self.prefix)
        self.tmp = tmp
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_url,
            "ACTIVESTREAM_TOPIC_PREFIX": self.prefix,
            "ACTIVESTREAM_NAMESPACE": self.namespace,
            "ACTIVESTREAM_RETRAIN_EVERY": "10",
            "ACTIVESTREAM_RETRAIN_INTERVAL": "1",
            "ACTIVESTREAM_HOLDOUT_FRACTION": "0",
            "ACTIVESTREAM_PARTITIONS": "2",
            **env,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(self.namespace))

    def start(self, *args: str, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name or args[0]}-{len(self.procs)}.log").open("wb") as log:  # the child keeps its own handle
            p = subprocess.Popen([sys.executable, "-m", "activestream.cli", "-v", *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_scorers(self, n: int) -> list[int]:
        """Start ``n`` scorers (micro-batches of 50, a metrics port each); their ports once all are healthy and in the group."""
        ports = [free_port() for _ in range(n)]
        for port in ports:
            self.start("scorer", "--batch-size", "50", "--metrics-port", str(port))
        wait_for(lambda: all(healthz(p).get("ok") for p in ports), 60, 0.5, what=f"{n} scorers healthy")
        time.sleep(3.0)  # every member joined the group before the items arrive
        return ports

    def run(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run([sys.executable, "-m", "activestream.cli", *args], env=self.env, capture_output=True, timeout=timeout)
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
        return out.stdout.decode()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def stack(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(kafka_bootstrap, redis_url, tmp_path)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.data.astype(np.float32), d.target


def write_items_csv(path: Path, X: np.ndarray, y: np.ndarray, ids: list[str]) -> None:
    lines = ["id," + ",".join(f"f{j}" for j in range(X.shape[1])) + ",label"]
    lines += [f"{i}," + ",".join(f"{v:g}" for v in x) + f",{int(t)}" for i, x, t in zip(ids, X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def read_models(bus: object, topics: Topics) -> list[ModelVersion]:
    reader = bus.consumer([topics.models], None)  # type: ignore[attr-defined]
    out = []
    while msgs := reader.consume(100, 3.0):
        out += [decode_model_version(m.value) for m in msgs]
    reader.close()
    return out


def metric_value(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # noqa: S310 - loopback
    vals = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(vals)


def healthz(port: int) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())  # noqa: S310 - loopback
    except OSError:  # not listening yet
        return {}


def test_pipeline_end_to_end(stack: Stack, kafka_bus_factory: Callable[..., object], digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    ids = [f"d{i}" for i in range(600)]
    csv = stack.tmp / "items.csv"
    write_items_csv(csv, X[:600], y[:600], ids)
    stack.start("scorer", "--batch-size", "100")
    stack.start("retrainer")
    out = stack.run("produce", str(csv), "--exclude", "label", "--raw", "--no-progress")  # the raw layout, end to end
    assert "produced 600 items" in out
    try:
        wait_for(lambda: stack.queue.depth() == 600, 90, what="600 items in the queue")

        # Labels through the labeler API -> labels topic -> retrainer process -> models topic -> scorer re-ranks.
        bus = kafka_bus_factory()
        labeling = LabelService(stack.queue, bus, stack.topics)
        for e in labeling.lease(30, "ann"):
            assert labeling.submit(e.id, labeler_id="ann", label=int(y[int(e.id[1:])]), label_id=f"L-{e.id}")
        # The retrainer may publish intermediate versions while the 30 labels arrive.
        wait_for(lambda: any(m.n_labels == 30 for m in read_models(bus, stack.topics)), 90, what="a version trained on 30 labels")
        mv = max(read_models(bus, stack.topics), key=lambda m: m.version)
        assert mv.n_labels == 30
        wait_for(lambda: stack.queue.get_meta("model_version") == str(mv.version), 60, what=f"scorer on model v{mv.version}")
        model = OnnxClassifier(mv.onnx)

        def ranked_by_v1() -> bool:
            ranking = stack.queue.ranking()
            expected = margin(model.predict_proba_many(X[[int(i[1:]) for i, _ in ranking]]))
            return len(ranking) == 570 and bool(np.allclose([s for _, s in ranking], expected, atol=1e-5))

        wait_for(ranked_by_v1, 30, what="queue re-ranked by the newest model")

        # A +falcun labeler follows the models topic itself (the queue keeps no probabilities):
        # its first batch is FALCUN's seeded draw over the head under that model.
        falcun = make_label_service(Strategy("margin+falcun", 0), stack.queue, bus, stack.topics)
        head = stack.queue.top(10 * FALCUN_CANDIDATES + 16)
        Xh = np.vstack(stack.queue.features_of([i for i, _ in head]))
        P = model.predict_proba_many(Xh)
        first_draw = int(np.random.default_rng(0).integers(2**63))  # the service's first lease seed (strategy seed 0)
        expected = [head[j][0] for j in select_falcun(margin(P) / margin(P).max(), P, 10, seed=first_draw)]
        leased = falcun.lease(10, "falcun")
        assert sorted(e.id for e in leased) == sorted(expected)
        for e in leased:  # hand them back for the dispatcher below
            falcun.skip(e.id, "falcun")
        falcun.close()

        # Labelers that consume the queue topic: dispatcher + terminal labeler answering from a file.
        stack.start("dispatcher", "--max-outstanding", "10", "--ack-timeout", "60")
        out = stack.run("label", "--answers", str(csv), "--max-items", "20", "--labeler-id", "bot", timeout=120)
        assert "published 20 labels" in out
        wait_for(lambda: stack.queue.n_labeled() == 50, 60, what="dispatched items acknowledged")
        wait_for(lambda: any(m.n_labels == 50 for m in read_models(bus, stack.topics)), 90, what="a version trained on 50 labels")
        newest = max(read_models(bus, stack.topics), key=lambda m: m.version)
        wait_for(lambda: stack.queue.get_meta("model_version") == str(newest.version), 60, what="scorer on the newest model")

    except AssertionError:
        print(stack.logs())
        raise


def test_scorer_sigkill_loses_and_duplicates_nothing(
    stack: Stack, kafka_bus_factory: Callable[..., object], digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    n_good, bad_every = 15_000, 500  # (enough that the scorer is still at it when the kill lands, on a fast machine too)
    bus = kafka_bus_factory(prefix=stack.prefix)
    bus.ensure_topics(stack.topics.all())
    good: list[str] = []
    bad: list[str] = []
    for i in range(n_good):
        iid = f"g{i}"
        bus.publish(stack.topics.items, Item(iid, X[i % len(X)]).encode(), key=iid.encode())
        good.append(iid)
        if i % bad_every == 0:
            bid = f"b{i}"
            bus.publish(stack.topics.items, json.dumps({"id": bid, "features": [1.0, float("nan")] * 32}).encode(), key=bid.encode())
            bad.append(bid)
    bus.flush()
    try:
        p = stack.start("scorer", "--batch-size", "25")
        wait_for(lambda: stack.queue.depth() >= 300, 90, interval=0.01, what="scorer mid-stream")
        p.send_signal(signal.SIGKILL)
        p.wait()
        mid = stack.queue.depth()
        assert mid < n_good, "the scorer finished before it was killed: nothing tested"
        # Labelers keep working while the scorer is down.
        labeling = LabelService(stack.queue, bus, stack.topics)
        labeled = [e.id for e in labeling.lease(20, "ann")]
        for iid in labeled:
            labeling.submit(iid, labeler_id="ann", label=int(y[int(iid[1:]) % len(X)]), label_id=f"L-{iid}")
        stack.start("scorer", "--batch-size", "25")
        wait_for(lambda: stack.queue.depth() + stack.queue.n_labeled() + stack.queue.n_leased() >= n_good, 120, what="every good item placed")
        time.sleep(2.0)  # let any redelivered tail settle
        pending = {i for i, _ in stack.queue.ranking()}
        labeled_set = {m.decode() for m in stack.queue.r.smembers(stack.queue.k.labeled)}
        reader = bus.consumer([stack.topics.dead_letters], None)
        dls = []
        while msgs := reader.consume(500, 3.0):
            dls += [decode_dead_letter(m.value).item_id for m in msgs]
        reader.close()
        for iid in good:
            places = (iid in pending) + (iid in labeled_set)
            assert places == 1, f"{iid} is in {places} places"
        assert labeled_set == set(labeled)
        assert sorted(dls) == sorted(bad), "each bad item exactly once in the dead-letter topic"
        assert not (set(dls) & (pending | labeled_set))
    except AssertionError:
        print(stack.logs())
        raise


@pytest.mark.parametrize("engine", ["confluent", "faust"])
def test_retrainer_restart_keeps_every_label_once(
    engine: str, stack: Stack, kafka_bus_factory: Callable[..., object], digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    bus = kafka_bus_factory(prefix=stack.prefix)
    expected = TrainingSet()

    def send(lo: int, hi: int, dup: bool = False) -> None:
        for i in range(lo, hi):
            lab = Label(f"i{i}", f"L{i}", "ann", label=int(y[i]), features=X[i])
            bus.publish(stack.topics.labels, lab.encode(), key=lab.item_id.encode())
            if not dup:
                expected.add(lab)
        bus.flush()

    bus.ensure_topics(stack.topics.all())
    p = stack.start("retrainer", "--engine", engine)
    try:
        send(0, 25)
        wait_for(lambda: any(m.n_labels == 25 for m in read_models(bus, stack.topics)), 90, 1.0, what="a version on 25 labels")
        p.send_signal(signal.SIGKILL)
        p.wait()
        send(25, 40)
        send(0, 10, dup=True)  # replays of labels already counted
        stack.start("retrainer", "--engine", engine)
        v = wait_for(lambda: [m for m in read_models(bus, stack.topics) if m.n_labels >= 40], 120, 1.0, what="a version on 40 labels")
        newest = max(v, key=lambda m: m.version)  # type: ignore[arg-type, union-attr]
        assert newest.n_labels == 40
        assert newest.label_ids_digest == expected.digest()
        versions = sorted(m.version for m in read_models(bus, stack.topics))
        assert versions == list(range(1, len(versions) + 1)), "versions continue after the restart"
    except AssertionError:
        print(stack.logs())
        raise


@pytest.mark.parametrize("engine", ["confluent", "faust"])
def test_a_burst_retrainer_publishes_a_version_on_fewer_labels_than_retrain_every(
    engine: str, stack: Stack, kafka_bus_factory: Callable[..., object], digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    bus = kafka_bus_factory(prefix=stack.prefix)
    bus.ensure_topics(stack.topics.all())
    for i in range(6):  # retrain_every is 10: a drained log still goes into a version in burst mode
        bus.publish(stack.topics.labels, Label(f"i{i}", f"L{i}", "ann", label=int(y[i]), features=X[i]).encode(), key=f"i{i}".encode())
    bus.flush()
    p = stack.start("retrainer", "--engine", engine, "--burst")
    assert p.wait(180) == 0, stack.logs()
    assert [m.n_labels for m in read_models(bus, stack.topics)] == [6], stack.logs()


def test_two_scorers_share_partitions_and_converge(
    stack: Stack, kafka_bus_factory: Callable[..., object], digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = digits
    bus = kafka_bus_factory(prefix=stack.prefix, partitions=2)
    bus.ensure_topics(stack.topics.all())
    try:
        ports = stack.start_scorers(2)
        for i in range(1000):
            bus.publish(stack.topics.items, Item(f"s{i}", X[i]).encode(binary=True), key=f"s{i}".encode())
        bus.flush()
        wait_for(lambda: stack.queue.depth() == 1000, 90, what="1000 items queued")
        # The counter moves when a write is confirmed, which can trail the queue by one poll.
        # (a record redelivered by a rebalance, which its first read queued, counts as a duplicate)
        counted = ("activestream_items_scored_total", "activestream_items_duplicate_total")
        wait_for(lambda: sum(metric_value(p, name) for p in ports for name in counted) >= 1000, 30, what="scored counters")
        scored = [metric_value(p, "activestream_items_scored_total") for p in ports]
        assert all(s > 0 for s in scored), scored
        for version in (1, 2):
            heads = Trainer().fit(X[: 50 * version], list(y[: 50 * version]))
            blob = to_onnx(heads)
            mv = ModelVersion(version, blob, ModelVersion.digest(blob), heads.classes, n_labels=50 * version)
            bus.publish(stack.topics.models, mv.encode(), key=MODEL_KEY)
            bus.flush()
        wait_for(lambda: [healthz(p).get("model_version") for p in ports] == [2, 2], 60, 0.5, what="both scorers on v2")
    except AssertionError:
        print(stack.logs())
        raise


def test_dispatchers_of_two_labeler_groups_each_get_their_labelers_skips(
    kafka_bus_factory: Callable[..., object], redis_url: str, namespace: str
) -> None:
    from activestream.labeling.dispatcher import Dispatcher, consumer_group
    from activestream.rankedqueue import QueueKeys, RankedQueue
    from activestream.schemas import Skip

    prefix = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(prefix)
    bus = kafka_bus_factory(prefix=prefix, partitions=2)
    bus.ensure_topics(topics.all())  # type: ignore[attr-defined]
    queue = RankedQueue(redis.Redis.from_url(redis_url), QueueKeys(namespace))
    queue.add([f"i{k}" for k in range(16)], np.linspace(1, 0, 16), np.eye(16, dtype=np.float32))
    x, y = (Dispatcher(queue, bus, topics, labeler_group=g, max_outstanding=8, group=consumer_group(prefix, g)) for g in ("x", "y"))  # type: ignore[arg-type]
    assert x.dispatch() == 8 and y.dispatch() == 8
    for k in range(8):  # x's labelers pass on everything x sent them
        bus.publish(topics.skips, Skip(f"i{k}", f"ann{k}").encode(), key=f"i{k}".encode())  # type: ignore[attr-defined]
    bus.flush()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while queue.n_leased_by("dispatch:x") and time.monotonic() < deadline:
        x.acknowledge(0.5)
        y.acknowledge(0.5)
    assert queue.n_leased_by("dispatch:x") == 0 and queue.n_leased_by("dispatch:y") == 8 and queue.depth() == 8


def test_the_labeler_api_service_with_a_tokens_file(stack: Stack, kafka_bus_factory: Callable[..., object]) -> None:
    from activestream.schemas import decode_label

    stack.queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    (stack.tmp / "tokens.txt").write_text("ann-0123456789abcdef ann\n")
    port = free_port()
    stack.start("labeler-api", "--port", str(port), ACTIVESTREAM_LABELER_TOKENS=str(stack.tmp / "tokens.txt"))

    def lease(token: str | None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/lease?k=1", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError:  # not listening yet
            return 0, {}

    assert wait_for(lambda: lease(None)[0] == 401, 60, what="the labeler API to refuse a request without a token"), stack.logs()
    code, reply = lease("ann-0123456789abcdef")
    assert code == 200 and [i["id"] for i in reply["items"]] == ["a"] and stack.queue.lease_holder("a") == "ann"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/labels", data=json.dumps({"item_id": "a", "label": 3}).encode(), method="POST",
                                 headers={"Authorization": "Bearer ann-0123456789abcdef"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        assert json.loads(r.read()) == {"accepted": True}
    reader = kafka_bus_factory(prefix=stack.prefix).consumer([stack.topics.labels], None)  # type: ignore[attr-defined]
    labels = [decode_label(m.value) for m in reader.consume(1, 20.0) + reader.consume(10, 2.0)]
    reader.close()
    assert [(lab.item_id, lab.labeler_id, lab.label) for lab in labels] == [("a", "ann", 3)]
    assert "labeler API on http://127.0.0.1" in stack.logs() and "1 labeler token(s)" in stack.logs()
    # A labeler added to the file while the service runs gets in without a restart.
    assert lease("bob-0123456789abcdef")[0] == 401
    (stack.tmp / "tokens.txt").write_text("ann-0123456789abcdef ann\nbob-0123456789abcdef bob\n")
    code, reply = lease("bob-0123456789abcdef")
    assert code == 200 and [i["id"] for i in reply["items"]] == ["b"] and stack.queue.lease_holder("b") == "bob"
