"""Faults: the local stack under SIGKILLs, a Redis and a broker restart, fuzzed records and fuzzed API requests.

    activestream bench faults --json benchmarks/results/faults.json     # (= python -m benchmarks.faults ...)

Starts its own Kafka (KRaft, :class:`activestream.devstack.local_kafka.LocalKafka`) and a
redis-server with AOF (both restarted once, on the same ports and data), and the services as
``activestream up`` runs them (scorer, retrainer on the confluent engine, dispatcher, and the
labeler API; each with its ``ACTIVESTREAM_INSTANCE_ID``; restarted when they exit, as the
supervisor does). While a producer streams valid items and a labeler labels what the
dispatcher hands out (the queue topic), it SIGKILLs each service ``--kills`` times in turn,
restarts Redis and the broker once each, injects ``--bad-records`` fuzzed records into the
items and labels topics (:mod:`benchmarks.fuzz`) and sends ``--http-requests`` fuzzed requests
to the labeler API. Then it drains and counts:

- ``items_lost``: valid items produced that are neither in the queue (pending, leased, labeled),
  nor auto-accepted (the auto-labels topic), nor dead-lettered;
- ``labels_lost``: labels posted (flushed) that are not on the labels topic or not in the
  training set of the newest model; ``labels_double_counted``: the newest model's ``n_labels``
  beyond the distinct labels posted;
- ``service_exits`` (exits not caused by a kill), ``crash_loops`` (3 such exits in a row);
- ``bad_records_dead_lettered``: injected records found on the dead-letter topic (with a reason);
- ``http_5xx_non_503``; ``scorer_recovery_median_s``: from each scorer SIGKILL until the queue
  grows again (the supervisor's 1 s restart delay included).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import redis

from activestream.devstack.local_kafka import LocalKafka
from activestream.devstack.redis_server import LocalRedis, free_port
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import DecodeError, Item, Label, decode_dead_letter, decode_label, decode_queue_entry
from activestream.schemas.dead_letter import MAX_DEAD_LETTER_PAYLOAD
from activestream.streams.kafka import KafkaBus
from activestream.streams.topics import LABELERS_GROUP, SCORER_GROUP, Topics
from activestream.supervisor import Supervised, instance_id, stop_processes
from benchmarks.fuzz import bad_records, http_requests

N_FEATURES = 8
SERVICES = ("scorer", "retrainer", "dispatcher", "labeler-api")
KILL_SPACING = 3.0  # seconds between kills (each service runs >= 10 s between its kills: the supervisor's back-off resets)


class Stack:
    """Kafka, Redis and the services, each restartable; exits are recorded."""

    def __init__(self, state: Path, prefix: str) -> None:
        self.state = state
        self.kafka = LocalKafka(data_dir=state / "kafka").start()
        self.redis = LocalRedis(appendonly=True, data_dir=str(state / "redis")).start()
        self.api_port = free_port()
        self.ports = ports = {name: free_port() for name in SERVICES}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ACTIVESTREAM_")},
               "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers, "REDIS_URL": self.redis.url,
               "ACTIVESTREAM_TOPIC_PREFIX": prefix, "ACTIVESTREAM_NAMESPACE": prefix, "ACTIVESTREAM_PARTITIONS": "2",
               "ACTIVESTREAM_N_FEATURES": str(N_FEATURES), "ACTIVESTREAM_BATCH_SIZE": "200",
               "ACTIVESTREAM_RETRAIN_EVERY": "25", "ACTIVESTREAM_RETRAIN_INTERVAL": "5"}
        exe = [sys.executable, "-m", "activestream.cli"]
        argv = {"scorer": ["scorer"], "retrainer": ["retrainer", "--engine", "confluent"], "dispatcher": ["dispatcher"],
                "labeler-api": ["labeler-api", "--host", "127.0.0.1", "--port", str(self.api_port)]}
        self.services = {
            name: Supervised(name, [*exe, *argv[name], "--metrics-port", str(ports[name])],
                             {**env, "ACTIVESTREAM_INSTANCE_ID": instance_id(name)}, state / f"{name}.log")
            for name in SERVICES
        }
        self.killed: dict[str, int] = {}  # pid -> killed by us
        self.exits: list[tuple[str, int | None, float, bool]] = []  # (service, code, ran for, killed by us)
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._supervise, daemon=True)
        self._watch.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            for name, svc in self.services.items():
                if svc.start_at is None and svc.proc.poll() is not None:
                    self.exits.append((name, svc.proc.returncode, time.monotonic() - svc.started, svc.proc.pid in self.killed))
                svc.check(restart=True)
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        proc = self.services[name].proc
        if proc.poll() is None:
            self.killed[proc.pid] = 1
            os.kill(proc.pid, signal.SIGKILL)

    def restart_redis(self, down: float = 3.0) -> None:
        port = self.redis.port
        self.redis.stop()
        time.sleep(down)
        self.redis = LocalRedis(port, appendonly=True, data_dir=str(self.state / "redis")).start()

    def restart_kafka(self, down: float = 3.0) -> None:
        port, controller = self.kafka.port, self.kafka.controller_port
        self.kafka.stop()
        time.sleep(down)
        self.kafka = LocalKafka(port, controller_port=controller, data_dir=self.state / "kafka").start(timeout=120)

    def close(self) -> None:
        self._stop.set()
        self._watch.join(5)
        stop_processes([svc.proc for svc in self.services.values()])
        self.redis.stop()
        self.kafka.stop()


def retrying(fn: Any, what: str, timeout: float = 180.0) -> Any:
    """``fn()``, tried again while the broker or Redis is away (the harness itself must not lose what it sends)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {exc}") from exc
            time.sleep(0.5)


class Producer(threading.Thread):
    """Streams valid items (``rate`` per second); ``produced`` holds the ids flushed."""

    def __init__(self, bootstrap: str, topics: Topics, n: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.bus, self.topics, self.n, self.rate = KafkaBus(bootstrap, partitions=2, client_id="faults-producer"), topics, n, rate
        self.produced: list[str] = []

    def run(self) -> None:
        rng = np.random.default_rng(1)
        for start in range(0, self.n, 20):
            ids = [f"it{i}" for i in range(start, min(self.n, start + 20))]
            X = rng.standard_normal((len(ids), N_FEATURES)).astype(np.float32)
            for item_id, x in zip(ids, X, strict=True):
                self.bus.publish(self.topics.items, Item(item_id, x).encode(binary=True), key=item_id.encode())
            retrying(self.bus.flush, "producing items")
            self.produced += ids
            time.sleep(len(ids) / self.rate)


class Labeler(threading.Thread):
    """Labels what the dispatcher hands out on the queue topic (class: the sign of feature 0); one label id per item."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        super().__init__(daemon=True)
        self.bus, self.topics = KafkaBus(bootstrap, partitions=2, client_id="faults-labeler"), topics
        self.posted: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = self.bus.consumer([self.topics.queue], self.topics.group(LABELERS_GROUP))
        while not self.stop.is_set():
            try:
                msgs = consumer.consume(50, 0.5)
                ids = []
                for m in msgs:
                    entry = decode_queue_entry(m.value)
                    label = Label(entry.id, f"bench-{entry.id}", "bench", label=int(entry.features[0] > 0), features=entry.features)  # type: ignore[index]
                    self.bus.publish(self.topics.labels, label.encode(), key=entry.id.encode())
                    ids.append(label.label_id)
                if msgs:
                    self.bus.flush()
                    self.posted.update(ids)
                    consumer.commit(msgs)
            except Exception:  # noqa: BLE001 - the broker restarting: the entries come again
                time.sleep(0.5)


def wait_for_api(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/status")
            conn.getresponse().read()
            conn.close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.3)


def fuzz_http(port: int, n: int, seed: int) -> Counter[int]:
    """Send ``n`` fuzzed requests; status code -> count (0: no answer)."""
    codes: Counter[int] = Counter()
    for method, path, body in http_requests(n, seed):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            codes[conn.getresponse().status] += 1
            conn.close()
        except (OSError, http.client.HTTPException):
            codes[0] += 1
    return codes


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    bus = KafkaBus(bootstrap, client_id="faults-reader")
    try:
        reader = bus.consumer([topic], None)
        msgs = reader.read_to_end(120)
        reader.close()
        return msgs
    finally:
        bus.close()


def scrape(port: int, name: str, timeout: float = 30.0) -> float | None:
    """The value of series ``name`` on a service's ``/metrics`` (``None``: the service does not answer).

    The series is unlabeled or labeled only with the campaign (``{namespace="..."}``: every metric carries it).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except (OSError, http.client.HTTPException):
            time.sleep(1)
            continue
        for line in text.splitlines():
            if line.startswith((name + " ", name + "{namespace=")):
                return float(line.rsplit(" ", 1)[1])
        time.sleep(1)
    return None


def scorer_lag(bootstrap: str, topics: Topics) -> int:
    bus = KafkaBus(bootstrap, client_id="faults-lag")
    try:
        return bus.lag(topics.items, topics.group(SCORER_GROUP))
    finally:
        bus.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"faults{uuid.uuid4().hex[:6]}"
    topics = Topics(prefix)
    state = Path(tempfile.mkdtemp(prefix="activestream-faults-"))
    t_start = time.monotonic()
    stack = Stack(state, prefix)
    bad = bad_records(args.bad_records, N_FEATURES, args.seed)
    http_codes: Counter[int] = Counter()
    recoveries: list[float] = []
    try:
        queue = RankedQueue(redis.Redis.from_url(stack.redis.url, socket_timeout=5), QueueKeys(prefix))

        def taken() -> int:
            return int(retrying(lambda: queue.r.hlen(queue.k.featloc), "reading the queue"))

        deadline = time.monotonic() + 120
        while not all(stack.services[n].proc.poll() is None for n in SERVICES) or taken() < 0:
            assert time.monotonic() < deadline, "the stack did not start"
            time.sleep(0.5)
        bootstrap = stack.kafka.bootstrap_servers
        setup = KafkaBus(bootstrap, partitions=2, client_id="faults-setup")
        setup.ensure_topics(topics.all())
        producer, labeler = Producer(bootstrap, topics, args.items, args.rate), Labeler(bootstrap, topics)
        producer.start()
        labeler.start()
        while taken() < 100:
            time.sleep(0.5)
        # Faults: kill the services in turn; Redis and the broker restart once each, a third and two thirds in.
        rounds = args.kills
        chunks = [bad[i::max(1, rounds)] for i in range(max(1, rounds))]
        http_per_round = args.http_requests // max(1, rounds)
        for r in range(rounds):
            for name in SERVICES:
                before = taken()
                t_kill = time.monotonic()
                stack.kill(name)
                if name == "scorer":
                    while taken() <= before and time.monotonic() - t_kill < 60:
                        time.sleep(0.05)
                    recoveries.append(time.monotonic() - t_kill)
                time.sleep(max(0.0, KILL_SPACING - (time.monotonic() - t_kill)))
            for topic, value in chunks[r]:
                setup.publish(getattr(topics, topic), value)
            retrying(setup.flush, "injecting bad records")
            wait_for_api(stack.api_port)  # (it was killed last: the requests go to the restarted one)
            http_codes += fuzz_http(stack.api_port, http_per_round, args.seed + r)
            if r == rounds // 3:
                stack.restart_redis()
            if r == (2 * rounds) // 3:
                setup.close()
                stack.restart_kafka()
                setup = KafkaBus(stack.kafka.bootstrap_servers, partitions=2, client_id="faults-setup2")
            print(f"round {r + 1}/{rounds}: {taken()} items taken, {len(labeler.posted)} labels, {len(stack.exits)} exits", flush=True)
        producer.join()
        # Drain: every item scored, every handed-out item labeled, a model trained on every label.
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and retrying(lambda: scorer_lag(stack.kafka.bootstrap_servers, topics), "lag") > 0:
            time.sleep(2)
        time.sleep(15)  # the last labels reach the retrainer, which retrains within its 5 s interval
        labeler.stop.set()
        labeler.join(10)
        setup.close()
        return tally(args, stack, topics, queue, producer, labeler, bad, http_codes, recoveries, time.monotonic() - t_start)
    finally:
        stack.close()


def tally(args: argparse.Namespace, stack: Stack, topics: Topics, queue: RankedQueue, producer: Producer, labeler: Labeler,
          bad: list[tuple[str, bytes]], http_codes: Counter[int], recoveries: list[float], seconds: float) -> dict[str, Any]:
    bootstrap = stack.kafka.bootstrap_servers
    produced = producer.produced
    queued = queue.r.hmget(queue.k.featloc, produced) if produced else []
    auto = {m.key.decode() for m in read_topic(bootstrap, topics.auto_labels) if m.key}
    dead = [decode_dead_letter(m.value) for m in read_topic(bootstrap, topics.dead_letters)]
    dead_items = {d.item_id for d in dead if d.source == topics.items}
    lost = [i for i, q in zip(produced, queued, strict=True) if q is None and i not in auto and i not in dead_items]
    on_topic = set()
    for m in read_topic(bootstrap, topics.labels):
        try:
            on_topic.add(decode_label(m.value).label_id)
        except (DecodeError, Exception):  # noqa: BLE001 - the injected bad labels
            continue
    ours = {lab for lab in on_topic if lab.startswith("bench-")}
    size = scrape(stack.ports["retrainer"], "activestream_training_set_size")  # the retrainer's training set (one label per item)
    trained = int(size) if size is not None else None
    injected = {(getattr(topics, t), v[:MAX_DEAD_LETTER_PAYLOAD]) for t, v in bad}
    dead_lettered = {(d.source, d.payload) for d in dead if d.reason} & injected
    unplanned = [e for e in stack.exits if not e[3]]
    crash_loops = 0
    for name in SERVICES:
        run_ = 0
        for e in (x for x in stack.exits if x[0] == name):
            run_ = run_ + 1 if not e[3] else 0
            crash_loops += run_ == 3
    return {
        "items_produced": len(produced),
        "items_queued_or_labeled": sum(q is not None for q in queued),
        "items_auto_accepted": len(auto & set(produced)),
        "items_dead_lettered": len(dead_items & set(produced)),
        "items_lost": len(lost),
        "labels_posted": len(labeler.posted),
        "labels_on_topic": len(labeler.posted & ours),
        "labels_trained_on": trained,  # (None: the retrainer did not answer at the end)
        "labels_lost": len(labeler.posted - ours) + (max(0, len(ours) - trained) if trained is not None else 0),
        "labels_double_counted": max(0, trained - len(ours)) if trained is not None else None,
        "service_kills": len(stack.killed),
        "service_exits": len(unplanned),
        "service_exit_codes": dict(Counter(f"{e[0]}:{e[1]}" for e in unplanned)),
        "crash_loops": crash_loops,
        "redis_restarts": 1,
        "broker_restarts": 1,
        "bad_records_injected": len(bad),
        "bad_records_dead_lettered": len(dead_lettered),
        # The fuzzer repeats payloads (its triggers, a field dropped or mistyped): the dead letters are matched
        # to distinct (topic, payload) pairs, and the retrainer dead-letters a repeated bad label once.
        "bad_records_distinct": len(injected),
        "http_requests": sum(http_codes.values()),
        "http_status_counts": {str(k): v for k, v in sorted(http_codes.items())},
        "http_5xx_non_503": sum(v for k, v in http_codes.items() if k >= 500 and k != 503),
        "scorer_recovery_s": [round(r, 3) for r in recoveries],
        "scorer_recovery_median_s": round(statistics.median(recoveries), 3) if recoveries else None,
        "kills_per_service": args.kills,
        "seconds": round(seconds, 1),
        "env": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="activestream bench faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per service (default: %(default)s)")
    ap.add_argument("--items", type=int, default=20_000, help="valid items produced (default: %(default)s)")
    ap.add_argument("--rate", type=float, default=100.0, help="items per second (default: %(default)s)")
    ap.add_argument("--bad-records", type=int, default=10_000, help="fuzzed records injected (default: %(default)s)")
    ap.add_argument("--http-requests", type=int, default=10_000, help="fuzzed labeler API requests (default: %(default)s)")
    ap.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the scorers to catch up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the report here")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
