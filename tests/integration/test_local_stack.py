"""`activestream up`: the local stack starts every service, starts again one that dies, and stops them all cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from activestream.devstack.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def health(port: int) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3).read())  # noqa: S310 - loopback
    except OSError:
        return {}


def three_free_ports() -> int:
    import socket

    for _ in range(50):
        base = free_port()
        try:
            with socket.socket() as a, socket.socket() as b, socket.socket() as c:
                a.bind(("127.0.0.1", base))
                b.bind(("127.0.0.1", base + 1))
                c.bind(("127.0.0.1", base + 2))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def children_of(pid: int) -> dict[str, int]:
    """The service name (``activestream.cli <name>``) -> pid of each child of ``pid``."""
    out = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"activestream.cli" in argv:
            out[argv[argv.index(b"activestream.cli") + 1].decode()] = int(child)
    return out


def wait_for(cond, what: str, log: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{what}\n{log.read_text()}"
        time.sleep(0.5)


def printed_ports(log: Path) -> dict[str, int]:
    """The metrics port of each service, as `up` prints it ("scorer: http://127.0.0.1:PORT/metrics ...")."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+): http://127\.0\.0\.1:(\d+)/metrics", log.read_text(), re.MULTILINE)}


def test_up_starts_and_stops_the_stack(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> None:
    # (no --metrics-base-port: free ports, printed; fixed ones made a second stack on a host crash-loop)
    env_file = tmp_path / "stack.env"
    env_file.write_text("# an earlier stack's\n")
    env_file.chmod(0o644)  # (an existing file kept its mode: world-readable, and REDIS_URL may hold a password)
    tag = f"up{uuid.uuid4().hex[:8]}"  # (a campaign of its own on the Redis the tests share: one per set of topics)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url, "ACTIVESTREAM_NAMESPACE": tag,
           "ACTIVESTREAM_TOPIC_PREFIX": tag}
    with (tmp_path / "up.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "activestream.cli", "up", "--state-dir", str(tmp_path / "state"), "--env-file", str(env_file)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    up_log = tmp_path / "up.log"
    try:
        wait_for(lambda: "KAFKA_BOOTSTRAP_SERVERS" in env_file.read_text() and len(printed_ports(up_log)) == 3, "the stack never printed its ports",
                 up_log, proc)
        assert env_file.stat().st_mode & 0o777 == 0o600
        ports = printed_ports(up_log)
        base = ports["scorer"]
        wait_for(lambda: all(health(p).get("ok") for p in ports.values()), "the stack never came up", up_log, proc)
        assert f"KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}" in env_file.read_text()
        assert {name: health(p)["service"] for name, p in ports.items()} == {"scorer": "scorer", "retrainer": "retrainer", "dispatcher": "dispatcher"}

        # A service that dies is started again (Compose's restart: unless-stopped); the others keep running.
        before = children_of(proc.pid)
        assert set(before) == {"scorer", "retrainer", "dispatcher"}
        os.kill(before["scorer"], signal.SIGKILL)
        wait_for(lambda: "scorer started again (restart 1)" in up_log.read_text(), "the scorer was not started again", up_log, proc)
        wait_for(lambda: health(base).get("ok"), "the restarted scorer never became healthy", up_log, proc)
        after = children_of(proc.pid)
        assert after["scorer"] != before["scorer"]
        assert (after["retrainer"], after["dispatcher"]) == (before["retrainer"], before["dispatcher"])
        assert "scorer exited with code -9" in up_log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0
    assert "stack stopped" in up_log.read_text()
    assert all(health(p) == {} for p in ports.values())  # every service is gone


def test_up_started_again_on_its_state_dir_keeps_its_addresses(kafka_bootstrap: str, tmp_path: Path) -> None:
    # (audits: a restarted stack moved Redis and the broker to new ports; a labeler API started from the old env file
    # answered 503 "Redis unavailable" for good, and every shell had to source the env file again)
    env_file = tmp_path / "stack.env"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, ACTIVESTREAM_TOPIC_PREFIX=f"up{uuid.uuid4().hex[:8]}")
    urls = []
    for run in range(2):
        up_log = tmp_path / f"up{run}.log"
        env_file.unlink(missing_ok=True)
        with up_log.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "up", "--state-dir", str(tmp_path / "state"), "--env-file",
                                     str(env_file), "--without", "retrainer", "--without", "dispatcher", "--without", "scorer"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: env_file.exists(), "the stack never wrote its env file", up_log, proc)
            urls.append(re.search(r"REDIS_URL=(\S+)", env_file.read_text())[1])  # type: ignore[index]
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
    assert urls[0] == urls[1], urls


def test_up_after_a_kill_9_names_what_still_runs_and_a_sourced_env_file_starts_its_own_redis(kafka_bootstrap: str, tmp_path: Path) -> None:
    # (an ops fault day: after `kill -9` of up, the next up crashed with a traceback on the broker's folder lock while the
    # old broker and Redis ran on; and up started from a shell that sourced the stack's env file took that file's Redis
    # (down) for an external one: it started none, and wiped the recorded ports)
    env_file, state = tmp_path / "stack.env", tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, ACTIVESTREAM_TOPIC_PREFIX=f"up{uuid.uuid4().hex[:8]}")
    argv = [sys.executable, "-m", "activestream.cli", "up", "--state-dir", str(state), "--env-file", str(env_file),
            "--without", "retrainer", "--without", "dispatcher", "--without", "scorer"]
    up_log = tmp_path / "up0.log"
    with up_log.open("wb") as log:  # (with a scorer: the services of a killed up run on too, and were not named)
        proc = subprocess.Popen(argv[:-2], env=env, stdout=log, stderr=subprocess.STDOUT)  # (argv ends with --without scorer)
    try:
        wait_for(lambda: env_file.exists() and (state / "scorer.pid").exists(), "the stack never wrote its env file", up_log, proc)
    except BaseException:
        proc.send_signal(signal.SIGINT)  # (it stops what it started)
        proc.wait(60)
        raise
    url = re.search(r"REDIS_URL=(\S+)", env_file.read_text())[1]  # type: ignore[index]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    redis_pid = json.loads((state / "ports.json").read_text())["redis_pid"]
    scorer_pid = int((state / "scorer.pid").read_text()) if (state / "scorer.pid").exists() else None
    try:
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "Traceback" not in again.stderr, again.stdout + again.stderr
        assert again.stderr.strip() == (f"error: processes of an earlier stack on {state} still run (redis pid {redis_pid}, scorer pid {scorer_pid}): "
                                        f"an `up` stopped with Ctrl-C or SIGTERM stops them; after a kill -9 of it, stop them first: "
                                        f"kill {redis_pid} {scorer_pid}"), again.stderr
    finally:
        for pid in (redis_pid, scorer_pid):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    time.sleep(0.5)
    sourced = {**env, "REDIS_URL": url}  # (`set -a; . stack.env`: the stack's own Redis, down now)
    up_log = tmp_path / "up1.log"
    env_file.unlink()
    with up_log.open("wb") as log:
        proc = subprocess.Popen(argv, env=sourced, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: env_file.exists(), "the stack never wrote its env file", up_log, proc)
        assert re.search(r"REDIS_URL=(\S+)", env_file.read_text())[1] == url  # type: ignore[index]
        out = up_log.read_text()
        assert "using REDIS_URL" not in out and f"using KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap} from the environment" in out, out
        assert json.loads((state / "ports.json").read_text())["redis"] == int(url.rsplit(":", 1)[1].split("/")[0])
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_a_local_broker_on_a_data_dir_keeps_its_topics_across_a_restart(tmp_path: Path) -> None:
    """What `up --state-dir` relies on: started again on its folder (new ports), the broker still has the topics."""
    from activestream.devstack.local_kafka import LocalKafka
    from activestream.streams.kafka import KafkaBus
    from activestream.streams.topics import Topics

    topics = Topics("kept")
    with LocalKafka(data_dir=tmp_path / "kafka") as kafka:
        bus = KafkaBus(kafka.bootstrap_servers)
        bus.ensure_topics([topics.items])
        bus.publish(topics.items, b"item 1", key=b"1")
        bus.flush()
        bus.close()
    with LocalKafka(data_dir=tmp_path / "kafka") as kafka:
        bus = KafkaBus(kafka.bootstrap_servers)
        reader = bus.consumer([topics.items], None)
        try:
            assert [m.value for m in reader.read_to_end(30.0)] == [b"item 1"]
        finally:
            reader.close()
            bus.close()


def test_up_starts_its_redis_again_when_it_dies(kafka_bootstrap: str, tmp_path: Path) -> None:
    # (an ops fault day: a redis-server SIGKILLed under `up` went unsaid, and nothing came back until a person restarted the
    # stack; its services said Redis was away for good)
    import redis

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ACTIVESTREAM_TOPIC_PREFIX": f"up{uuid.uuid4().hex[:8]}"}
    env.pop("REDIS_URL", None)
    env.pop("ACTIVESTREAM_REDIS_URL", None)
    env_file = tmp_path / "stack.env"
    up_log = tmp_path / "up.log"
    with up_log.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "activestream.cli", "up", "--state-dir", str(tmp_path / "state"), "--env-file", str(env_file),
                                 "--without", "scorer", "--without", "retrainer", "--without", "dispatcher"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: env_file.exists() and "stack is up" in up_log.read_text(), "the stack never came up", up_log, proc)
        ports = json.loads((tmp_path / "state" / "ports.json").read_text())
        client = redis.Redis(port=ports["redis"])
        client.set("kept", "yes")
        time.sleep(1.5)  # (the append-only file is written every second)
        os.kill(ports["redis_pid"], signal.SIGKILL)
        wait_for(lambda: "redis-server exited with code -9: started again on port" in up_log.read_text(), "Redis was not started again",
                 up_log, proc)
        assert client.get("kept") == b"yes"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
