"""A broker that refuses the client's SASL login: one ``error: Kafka refused`` line and status 2, soon, not a wait and a
retry forever. A real broker with a SASL_PLAINTEXT listener beside its plain one (PLAIN mechanism, one user).

(librdkafka reports a refused login as an error event; the metadata request itself ended in "Broker transport
failure" after the whole 30 s timeout, status 1, and `up` started the service again on it, again and again.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from activestream.cli import main
from activestream.devstack.local_kafka import LocalKafka
from activestream.devstack.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret" user_alice="alice-secret";'


@pytest.fixture(scope="module")
def sasl_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of a broker's SASL_PLAINTEXT listener (user alice, password alice-secret)."""
    kafka, sasl = LocalKafka(port=free_port(), controller_port=free_port()), free_port()
    kafka.properties = {
        "listeners": f"PLAINTEXT://127.0.0.1:{kafka.port},SASL_PLAINTEXT://127.0.0.1:{sasl},CONTROLLER://127.0.0.1:{kafka.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{kafka.port},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
    }
    kafka.start()
    try:
        yield f"127.0.0.1:{sasl}"
    finally:
        kafka.stop()


def sasl_env(password: str) -> dict[str, str]:
    return {"ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ACTIVESTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
            "ACTIVESTREAM_KAFKA_SASL_USERNAME": "alice", "ACTIVESTREAM_KAFKA_SASL_PASSWORD": password}


def test_a_command_with_the_wrong_password_is_refused_at_once_and_the_right_one_works(
    sasl_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    for name, value in sasl_env("wrong").items():
        monkeypatch.setenv(name, value)
    t0 = time.monotonic()
    assert main(["dead-letters", "--kafka-bootstrap-servers", sasl_bootstrap, "--namespace", "refusal", "--timeout", "5"]) == 2
    took = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Kafka refused: ") and "Authentication failed" in err and "ACTIVESTREAM_KAFKA_SASL_*" in err, err
    assert took < 15, took  # (not the metadata request's whole 30 s)
    monkeypatch.setenv("ACTIVESTREAM_KAFKA_SASL_PASSWORD", "alice-secret")
    assert main(["dead-letters", "--kafka-bootstrap-servers", sasl_bootstrap, "--namespace", "refusal", "--timeout", "5"]) == 0
    assert "0 dead letter(s) on refusal.deadletter" in capsys.readouterr().out


def test_a_service_refused_by_the_broker_exits_as_refused(sasl_bootstrap: str, redis_url: str) -> None:
    # (status 2: the stack of `up` stops saying why instead of starting the service again)
    env = {**os.environ, "REDIS_URL": redis_url, "KAFKA_BOOTSTRAP_SERVERS": sasl_bootstrap, "ACTIVESTREAM_NAMESPACE": "refused-scorer",
           **sasl_env("wrong")}
    done = subprocess.run([sys.executable, "-m", "activestream.cli", "scorer"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: Kafka refused: " in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
