"""The CLI's settings and inputs as a user meets them: a bad or misspelt setting, an unreachable Redis, a campaign's own
topics, answers files, simulate's auto-accept lines (no services: pure logic, or a port nothing listens on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_up_refuses_a_bad_setting_before_it_starts_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.cli import main

    monkeypatch.setenv("ACTIVESTREAM_EXPLORE", "1.5")
    assert main(["up", "--state-dir", str(tmp_path / "state")]) == 2
    assert capsys.readouterr().err.strip() == "error: setting ACTIVESTREAM_EXPLORE=1.5: expected a share in [0, 1]"
    assert not (tmp_path / "state").exists()  # (no broker, no Redis, no service restarting on it in a log)


def test_up_refuses_an_estimator_the_retrainer_cannot_fit_before_it_starts_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # (it said "stack is up", then the retrainer exited with code 2 and was started again every few seconds, for good)
    from activestream.cli import main

    monkeypatch.setenv("ACTIVESTREAM_ESTIMATOR", "sklearn.svm:SVC")
    assert main(["up", "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: setting ACTIVESTREAM_ESTIMATOR: estimator 'sklearn.svm:SVC'") and "predict_proba" in err, err
    assert not (tmp_path / "state").exists()


def test_the_stack_stops_saying_why_when_a_service_refuses_to_start_instead_of_starting_it_again(tmp_path: Path,
                                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from activestream.supervisor import REFUSED, Supervised, stop_processes, supervise

    refuses = Supervised("retrainer", [sys.executable, "-c", "import sys; print('error: setting ACTIVESTREAM_X: bad'); sys.exit(2)"], {},
                         tmp_path / "retrainer.log")
    runs = Supervised("scorer", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "scorer.log")
    try:
        assert supervise([runs, refuses], lambda: False, restart=True, poll=0.05) == REFUSED
    finally:
        stop_processes([runs.proc, refuses.proc])
    out = capsys.readouterr().out
    assert "retrainer refused to start (exit code 2): error: setting ACTIVESTREAM_X: bad" in out and "stopping the stack" in out
    assert refuses.restarts == 0


def test_a_misspelt_setting_is_named_with_the_one_meant() -> None:
    from activestream.config import unknown_settings

    env = {"ACTIVESTREAM_BUGDET": "50", "ACTIVESTREAM_BUDGET": "50", "ACTIVESTREAM_KAFKA_SASL_USERNAME": "u",
           "ACTIVESTREAM_REQUIRE_SERVICES": "1", "ACTIVESTREAM_NONSENSE_THING": "x", "PATH": "/bin"}
    assert unknown_settings(env) == [
        "setting ACTIVESTREAM_BUGDET is not one activestream reads: ignored (did you mean ACTIVESTREAM_BUDGET?)",
        "setting ACTIVESTREAM_NONSENSE_THING is not one activestream reads: ignored"]


def test_a_command_against_a_redis_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from activestream.cli import main

    assert main(["queue", "info", "--redis-url", "redis://127.0.0.1:1"]) == 1  # (may pass: not a refusal, which up would not restart)
    err = capsys.readouterr().err
    assert err.startswith("error: Redis unreachable: ") and "127.0.0.1:1" in err and "Traceback" not in err


def test_an_answers_file_gives_label_sets_by_prefix_or_json_lists(tmp_path: Path) -> None:
    from activestream.commands.label import read_answers

    flags = tmp_path / "flags.csv"
    flags.write_text("id,tag_cat,tag_owl,x\n1,1,1,0.5\n2,0,0,0.1\n")
    assert read_answers(str(flags), "id", "tag_") == {"1": ("cat", "owl"), "2": ()}
    lists = tmp_path / "export.csv"  # (export writes a label set as a JSON list in CSV)
    lists.write_text('item_id,label\na,"[""cat"", ""owl""]"\nb,[]\nc,dog\n')
    assert read_answers(str(lists), "item_id", "label") == {"a": ("cat", "owl"), "b": (), "c": "dog"}
    with pytest.raises(SystemExit, match=r"--label-column 'lbl': no such column \(did you mean 'label'\?\)"):
        read_answers(str(lists), "item_id", "lbl")
    one = tmp_path / "one.csv"  # (the default --label-column "label" over a file whose column is "labels": a typo, not tags)
    one.write_text("id,labels\na,cat\nb,dog\n")
    with pytest.raises(SystemExit, match=r"column 'label': not found \(did you mean 'labels'\?\)"):
        read_answers(str(one), "id", "label")
    flags.write_text("id,tag_cat,tag_owl\n1,1,2\n")
    with pytest.raises(SystemExit, match=r"tag column 'tag_owl': must hold only 0/1"):
        read_answers(str(flags), "id", "tag_")


def test_a_campaign_started_with_only_its_namespace_gets_its_own_topics(monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    # (a second campaign with only ACTIVESTREAM_NAMESPACE set read half of the first one's items: one topic prefix, one group)
    import argparse

    from activestream.wiring import settings_from

    monkeypatch.delenv("ACTIVESTREAM_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("ACTIVESTREAM_NAMESPACE", raising=False)
    assert settings_from(argparse.Namespace()).topic_prefix == "activestream"  # (the default campaign keeps the default topics)
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", "camp-b")
    assert settings_from(argparse.Namespace()).topic_prefix == "camp-b"
    assert settings_from(argparse.Namespace(namespace="camp-c")).topic_prefix == "camp-c"  # (--namespace too: produce --namespace)
    assert settings_from(argparse.Namespace(topic_prefix="shared")).topic_prefix == "shared"  # (a prefix given is kept)
    monkeypatch.setenv("ACTIVESTREAM_TOPIC_PREFIX", "")  # (compose's empty default: unset)
    assert settings_from(argparse.Namespace()).topic_prefix == "camp-b"
    monkeypatch.setenv("ACTIVESTREAM_TOPIC_PREFIX", "activestream")
    assert settings_from(argparse.Namespace()).topic_prefix == "activestream"
    monkeypatch.delenv("ACTIVESTREAM_TOPIC_PREFIX")
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", "camp b/é")
    with caplog.at_level("WARNING"):
        assert settings_from(argparse.Namespace()).topic_prefix == "activestream"
    assert "namespace 'camp b/é' cannot name Kafka topics" in caplog.text
    monkeypatch.setenv("ACTIVESTREAM_NAMESPACE", "activestream")
    with caplog.at_level("WARNING"):
        assert settings_from(argparse.Namespace()).topic_prefix == "activestream"
    assert "namespace 'activestream' names the default campaign's topics" in caplog.text


@pytest.mark.parametrize(("env", "flags"), [({"ACTIVESTREAM_NAMESPACE": "team.dispatcher"}, {}),
                                            ({"ACTIVESTREAM_TOPIC_PREFIX": "team.labelers"}, {}), ({}, {"topic_prefix": "team.dispatcher"}),
                                            ({"ACTIVESTREAM_TOPIC_PREFIX": "team.labelers.x"}, {})])
def test_a_topic_prefix_that_names_another_campaigns_groups_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                                      flags: dict[str, str]) -> None:
    # (a multi-campaign audit: the groups of prefix 'team.dispatcher' (team.dispatcher.scorer, ...) are those of campaign
    # 'team''s dispatcher for a labeler group 'scorer': two campaigns' consumers would share partitions and offsets)
    import argparse

    from activestream.wiring import settings_from

    for name in ("ACTIVESTREAM_TOPIC_PREFIX", "ACTIVESTREAM_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        settings_from(argparse.Namespace(**flags))
    prefix = next(iter({**env, **flags}.values()))
    role = prefix.split(".")[1]
    assert str(exc.value).startswith(f"error: topic prefix {prefix!r} (ACTIVESTREAM_TOPIC_PREFIX or --topic-prefix; unset, the namespace's): ")
    assert f"those of campaign 'team''s {role} groups for some labeler group" in str(exc.value)
    monkeypatch.setenv("ACTIVESTREAM_TOPIC_PREFIX", "team.dispatchers")  # (only the roles themselves)
    assert settings_from(argparse.Namespace()).topic_prefix == "team.dispatchers"
    monkeypatch.setenv("ACTIVESTREAM_TOPIC_PREFIX", "dispatcher")  # (a last part with nothing before it names no other prefix's group)
    assert settings_from(argparse.Namespace()).topic_prefix == "dispatcher"


def test_auto_accept_by_class_thresholds_is_not_called_no_threshold() -> None:
    # (100% auto-accepted by the classes' own thresholds was printed beside "no threshold reached the target in 2 of 2 seeds")
    from activestream.simulation.summary import _auto_accept_lines

    deployed = {"share": 0.0, "thresholds": [None, None], "n_control": [13, 13], "labels_needed": [16, 16], "realized_precision": None,
                "class_thresholds": [{}, {}]}
    aa = {"share": 1.0, "shares": [1.0, 1.0], "thresholds": [None, None], "class_thresholds": [{"0": 0.61, "1": 0.54}, {}],
          "realized_precision": 0.996, "target_precision": 0.9, "deployed": deployed}
    text = _auto_accept_lines(aa)
    assert "no threshold reached the target in 1 of 2 seeds" in text and "at least 16, 16 more needed" in text


@pytest.mark.parametrize("command", ["scorer", "dispatcher"])
def test_the_scorer_and_the_dispatcher_bound_their_redis_calls(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # (a Redis that hangs, not one that refuses, blocked them while /healthz said all was well; the outage test checks the pause)
    import importlib

    from activestream.cli import main
    from activestream.streams.memory import InMemoryBus
    from activestream.streams.topics import Topics
    from activestream.wiring import REDIS_TIMEOUT, settings_from

    module = importlib.import_module(f"activestream.commands.{command}")
    asked: dict[str, object] = {}

    def make_queue(settings: object, **kw: object) -> None:
        asked.update(kw)
        raise SystemExit("error: (stopped by the test)")

    monkeypatch.setattr(module, "connect", lambda args, **kw: (settings_from(args), InMemoryBus(), Topics()))
    monkeypatch.setattr(module, "make_queue", make_queue)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main([command]) == 2
    assert asked["socket_timeout"] == REDIS_TIMEOUT


def test_a_misspelt_kafka_client_setting_is_one_line_and_up_refuses_it_before_it_starts_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # (a docs audit: a traceback from librdkafka, and `up` said "stack is up" and then restarted its services on it)
    from activestream.cli import main

    monkeypatch.setenv("ACTIVESTREAM_KAFKA_SECURITY_PROTOCAL", "SASL_SSL")
    want = 'error: a Kafka client setting (ACTIVESTREAM_KAFKA_SECURITY_PROTOCAL): No such configuration property: "security.protocal"'
    assert main(["up", "--state-dir", str(tmp_path / "state")]) == 2
    assert capsys.readouterr().err.strip() == want and not (tmp_path / "state").exists()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert main(["dead-letters"]) == 2
    assert capsys.readouterr().err.strip().endswith(want)


@pytest.mark.parametrize("buffered", [True, False])
def test_a_reader_that_left_the_pipe_ends_the_command_quietly(buffered: bool) -> None:
    # (`activestream dead-letters | head` printed a traceback: the handler for a reader that left came after `except
    # Exception`, which took the error first; and with stdout buffered, a short output met the closed pipe only at
    # Python's flush at exit, after main() returned: "Exception ignored ... BrokenPipeError", status 120)
    child = (
        "import argparse, sys\n"
        "import activestream.cli as cli\n"
        "def build_parser():\n"
        "    p = argparse.ArgumentParser(); p.add_argument('-v', '--verbose', action='store_true')\n"
        "    p.set_defaults(func=lambda args: print('a line of output\\n' * 10))\n"
        "    return p\n"
        "cli.build_parser = build_parser\n"
        "sys.exit(cli.main([]))\n"
    )
    read, write = os.pipe()
    os.close(read)  # (the reader is gone before the command writes)
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({} if buffered else {"PYTHONUNBUFFERED": "1"})
        done = subprocess.run([sys.executable, "-c", child], stdout=write, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(write)
    assert done.stderr.decode() == "" and done.returncode == 1


def test_another_pipe_that_broke_is_not_taken_for_stdouts_reader_leaving() -> None:
    child = (
        "import argparse, sys\n"
        "import activestream.cli as cli\n"
        "def fails(args):\n"
        "    raise BrokenPipeError(32, 'a pipe to a child process broke')\n"
        "def build_parser():\n"
        "    p = argparse.ArgumentParser(); p.add_argument('-v', '--verbose', action='store_true')\n"
        "    p.set_defaults(func=fails)\n"
        "    return p\n"
        "cli.build_parser = build_parser\n"
        "sys.exit(cli.main([]))\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60)
    assert done.returncode == 1 and "BrokenPipeError: [Errno 32] a pipe to a child process broke" in done.stderr.decode()


@pytest.mark.parametrize(("code", "status", "line"), [
    ("_TRANSPORT", 1, "error: Kafka: Local: Broker transport failure (KAFKA_BOOTSTRAP_SERVERS / --kafka-bootstrap-servers)"),
    ("SASL_AUTHENTICATION_FAILED", 2, "error: Kafka refused: Broker: SASL Authentication failed "
                                      "(the ACTIVESTREAM_KAFKA_SASL_* / SSL_* settings, or the principal's ACLs)"),
    ("TOPIC_AUTHORIZATION_FAILED", 2, "error: Kafka refused: Broker: Topic authorization failed "
                                      "(the ACTIVESTREAM_KAFKA_SASL_* / SSL_* settings, or the principal's ACLs)"),
])
def test_a_kafka_error_is_one_line_and_a_refusal_is_status_2(code: str, status: int, line: str, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # (a broker away may pass: status 1, and `up` starts the service again; credentials or rights refused would be refused
    # again: status 2, and `up` stops the stack saying why instead of restarting the service forever)
    import argparse

    from confluent_kafka import KafkaError, KafkaException

    import activestream.cli as cli

    def fails(args: argparse.Namespace) -> int:
        raise KafkaException(KafkaError(getattr(KafkaError, code)))

    def build_parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser()
        p.add_argument("-v", "--verbose", action="store_true")
        p.set_defaults(func=fails)
        return p

    monkeypatch.setattr(cli, "build_parser", build_parser)
    assert cli.main([]) == status
    assert capsys.readouterr().err.strip() == line


@pytest.mark.parametrize("labeler", ["auto", "baseline", "dispatch:default", "labelstudio:2"])
def test_the_terminal_labeler_refuses_a_reserved_labeler_id(labeler: str, capsys: pytest.CaptureFixture[str]) -> None:
    # (a labeler audit: `label --labeler-id baseline` published labels the export showed as imported ones)
    from activestream.cli import main

    assert main(["label", "--labeler-id", labeler]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: --labeler-id {labeler!r} is reserved for activestream's own components")
