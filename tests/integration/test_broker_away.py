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
from activestream.wiring import CONNECTING

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_an_idle_scorer_says_the_broker_is_away_in_a_few_log_lines(
        redis_client: redis.Redis, namespace: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # (an ops audit: librdkafka's own log callback wrote each failed reconnect to stderr, about 20 lines a second)
    kafka = LocalKafka().start()
    scorer = None
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
        assert trouble is not None and trouble.startswith("Kafka: ") and ("Connect to" in trouble or "brokers are down" in trouble), trouble
        away = time.monotonic()
        while time.monotonic() - away < 10:
            scorer.step(0.5)
        stderr = capfd.readouterr().err
        assert "%3|" not in stderr, stderr[:2000]  # (librdkafka's own format: nothing bypasses Python logging)
        refused = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME and "Connection refused" in r.getMessage()]
        assert 0 < len(refused) <= 4, refused  # (each kind of line at most once a minute: the broker's and the bootstrap's)
    finally:
        if scorer is not None:  # (a failure above must not leave its consumer polling a dead broker for the tests after it)
            scorer.close()
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
                if seen[1].get("problem") == CONNECTING:  # (its first answers, before it reached its broker: not yet Redis)
                    seen = None
                    time.sleep(0.3)
                continue
            except OSError:
                pass
            time.sleep(0.3)
        assert seen is not None and seen[0] == 503, seen
        assert seen[1]["problem"].startswith("scorer start-up: Redis unreachable"), seen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_retrainer_whose_version_the_broker_does_not_take_waits_and_delivers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # (an ops fault day: a broker stalled during a model publish; the flush's BrokerUnavailable went uncaught, the
    # retrainer exited with a double traceback and its version was dropped; /healthz said 200 meanwhile)
    import numpy as np

    from activestream.retrainer import service as retrainer_service
    from activestream.retrainer.service import Retrainer
    from activestream.schemas import Label, decode_model_version

    monkeypatch.setattr(retrainer_service, "PUBLISH_TIMEOUT", 2.0, raising=False)
    kafka = LocalKafka().start()
    try:
        bus, topics = KafkaBus(kafka.bootstrap_servers), Topics("stall")
        bus.ensure_topics(topics.all())
        rt = Retrainer(bus, topics, task="multiclass", retrain_every=1000, retrain_interval=3600.0, holdout_fraction=0.0)
        rng = np.random.default_rng(0)
        for i in range(20):
            lab = Label(f"i{i}", f"L{i}", "ann", label=i % 2, features=rng.normal(size=3).astype(np.float32))
            bus.publish(topics.labels, lab.encode(), key=lab.item_id.encode())
        bus.flush()
        deadline = time.monotonic() + 30
        while len(rt.training) < 20 and time.monotonic() < deadline:
            rt.step(0.2)
        assert rt.retrain() is not None and rt.version == 1
        assert kafka.proc is not None
        kafka.proc.send_signal(signal.SIGSTOP)  # (a stalled broker: connections open, nothing answered)
        try:
            assert rt.retrain() is None and rt.version == 1  # (not delivered in 2 s: pending, not raised)
            trouble = rt.trouble()
            assert trouble is not None and trouble.startswith("Kafka: model v2 not delivered yet"), trouble
            assert rt.step(0.1) == 0 and rt.retrain() is None and rt.version == 1  # (no v3 over an undelivered v2)
        finally:
            kafka.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 60
        while rt.version < 2 and time.monotonic() < deadline:
            rt.step(0.2)
        assert rt.version == 2 and rt.trouble() is None
        versions = [decode_model_version(m.value).version for m in bus.messages(topics.models)]
        assert sorted(set(versions)) == [1, 2], versions
        bus.close()
    finally:
        kafka.stop()


def test_a_dispatcher_watching_its_readers_keeps_stepping_with_the_broker_away(redis_client: redis.Redis, namespace: str) -> None:
    # (an ops restart day: with the broker SIGKILLed the dispatcher's loop hung in describe_consumer_groups' future,
    # which had no timeout: its /healthz tick grew past a minute, leases expired by no one)
    from activestream.labeling.dispatcher import Dispatcher

    kafka = LocalKafka().start()
    try:
        bus, topics = KafkaBus(kafka.bootstrap_servers), Topics("readers")
        bus.ensure_topics(topics.all())
        d = Dispatcher(RankedQueue(redis_client, QueueKeys(namespace)), bus, topics, readers=topics.labelers_group(), readers_every=0.0)
        d.step(0.1)
        assert d.n_readers() == 0
        assert kafka.proc is not None
        kafka.proc.send_signal(signal.SIGKILL)
        kafka.proc.wait()
        deadline = time.monotonic() + 60
        while d.trouble() is None:  # (the first steps may each wait out one request's timeout: 10 s)
            assert time.monotonic() < deadline, "the dispatcher never met the broker away"
            d.step(0.5)
        for _ in range(5):
            t0 = time.monotonic()
            d.step(0.1)
            assert time.monotonic() - t0 < 3.0  # (each step waited 10 s for the group's members before)
        assert d.n_readers() == 0  # (what was last seen stands)
        bus.close()
    finally:
        kafka.stop()


def healthz(port: int) -> tuple[int, dict[str, object]] | None:
    """``/healthz``'s status and body, ``None`` while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


@pytest.mark.parametrize("service", ["scorer", "retrainer", "retrainer --engine faust", "dispatcher"])
def test_a_service_started_before_its_broker_waits_for_it_and_says_so(service: str, redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (an ops restart day: a service started while the broker was away served no /healthz for ~30 s, then exited with
    # "error: Kafka: ... (KAFKA_BOOTSTRAP_SERVERS ...)", a setting that was right, and was started again in a loop)
    kafka_port, port = free_port(), free_port()
    prefix = f"early-{service.replace(' --engine ', '-')}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", "REDIS_URL": redis_url,
           "ACTIVESTREAM_NAMESPACE": prefix, "ACTIVESTREAM_TOPIC_PREFIX": prefix}
    log = tmp_path / "service.log"
    argv = [sys.executable, "-m", "activestream.cli", *service.split(), "--metrics-port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    kafka = None
    try:
        started, seen = time.monotonic(), None
        while seen is None:
            assert proc.poll() is None and time.monotonic() - started < 30, log.read_text()
            seen = healthz(port)
            time.sleep(0.1)
        assert seen[0] == 503 and str(seen[1]["problem"]).startswith("waiting for Kafka: "), seen  # (from its first answer)
        time.sleep(6.0)  # (past a first try)
        seen = healthz(port)
        assert seen is not None and seen[0] == 503 and "Broker transport failure" in str(seen[1]["problem"]), seen
        kafka = LocalKafka(kafka_port).start()
        deadline = time.monotonic() + 90
        while (seen := healthz(port)) is None or seen[0] != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (seen, log.read_text()[-3000:])
            time.sleep(0.5)
        assert KafkaBus(kafka.bootstrap_servers).partitions_of(f"{prefix}.items")  # (its topics were created)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if kafka is not None:
            kafka.stop()


def test_a_service_stopped_while_it_waits_for_its_broker_exits_cleanly(redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (a review: stopped while waiting, it re-raised the broker's error: exit 1 and the hint at KAFKA_BOOTSTRAP_SERVERS)
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "REDIS_URL": redis_url, "ACTIVESTREAM_NAMESPACE": "early-stop"}
    proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "dispatcher", "--metrics-port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while healthz(port) is None:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "error:" not in out, out
    assert time.monotonic() - t0 < 10  # (within a try of 5 s)


def test_a_taken_metrics_port_is_one_error_line_and_a_refusal(kafka_bootstrap: str, redis_url: str) -> None:
    # (an ops restart day: a traceback ending in "OSError: [Errno 98] Address already in use", naming neither the port
    # nor the setting, and `up` starting the service again every 30 s for ever)
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url, "ACTIVESTREAM_NAMESPACE": "taken"}
    try:
        p = subprocess.run([sys.executable, "-m", "activestream.cli", "retrainer", "--metrics-port", str(port)], env=env,
                           capture_output=True, text=True, timeout=120)
    finally:
        taken.close()
    assert p.returncode == 2, p.stderr  # (a refusal: `up` stops the stack saying why instead of restarting it)
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (f"error: retrainer: cannot serve /metrics on 127.0.0.1:{port}: Address already in use "
                                                 "(ACTIVESTREAM_METRICS_PORT / --metrics-port, ACTIVESTREAM_METRICS_HOST)"), p.stderr


def test_the_labeler_apis_healthz_says_when_its_broker_is_away(redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (an ops restart day: its /healthz said ok, 200, while every label was a 503 "backend: Kafka unavailable")
    kafka = LocalKafka().start()
    port, api_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "REDIS_URL": redis_url, "ACTIVESTREAM_NAMESPACE": "api-away"}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "labeler-api", "--port", str(api_port), "--metrics-port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while (seen := healthz(port)) is None or seen[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (seen, log.read_text())
            time.sleep(0.3)
        assert kafka.proc is not None
        kafka.proc.send_signal(signal.SIGKILL)
        kafka.proc.wait()
        deadline = time.monotonic() + 60
        while (seen := healthz(port)) is None or seen[0] != 503:
            assert proc.poll() is None and time.monotonic() < deadline, (seen, log.read_text())
            time.sleep(0.5)
        assert str(seen[1]["problem"]).startswith("Kafka: "), seen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        kafka.stop()
