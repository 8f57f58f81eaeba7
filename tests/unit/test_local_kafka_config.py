"""Pure helpers of the Kafka launcher: no JVM, no broker."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from activestream.devstack import local_kafka
from activestream.devstack.local_kafka import LOG4J_PROPERTIES, POM_XML, kafka_libs, random_cluster_id, server_properties

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kafka"


def parse(props: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in props.splitlines() if line and not line.startswith("#"))


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    p = parse(server_properties(9092, 9093, tmp_path / "logs"))
    assert p["process.roles"] == "broker,controller"
    assert p["node.id"] == "1"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert p["controller.listener.names"] == "CONTROLLER"
    assert set(p["listener.security.protocol.map"].split(",")) == {"PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"}
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor", "transaction.state.log.min.isr"):
        assert p[key] == "1"
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["auto.create.topics.enable"] == "false"
    assert p["log.dirs"] == str(tmp_path / "logs")


def test_server_properties_extra_overrides_defaults(tmp_path: Path) -> None:
    p = parse(server_properties(1, 2, tmp_path, {"num.partitions": "3", "message.max.bytes": "2000000"}))
    assert p["num.partitions"] == "3"
    assert p["message.max.bytes"] == "2000000"


def test_cluster_id_is_kafka_uuid_format() -> None:
    for _ in range(200):
        cid = random_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_deploy_files_match_embedded_copies() -> None:
    # The launcher embeds them so an installed package works without the repo checkout.
    assert (DEPLOY / "pom.xml").read_text() == POM_XML
    assert (DEPLOY / "log4j.properties").read_text() == LOG4J_PROPERTIES
    assert f"<kafka.version>{local_kafka.KAFKA_VERSION}</kafka.version>" in POM_XML
    assert f"<version>{local_kafka.SLF4J_VERSION}</version>" in POM_XML


def test_kafka_libs_uses_complete_cache_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / local_kafka.MARKER).write_text("done\n")
    monkeypatch.setattr(local_kafka.shutil, "which", lambda name: pytest.fail("mvn must not run"))
    assert kafka_libs(libs) == libs
    monkeypatch.setenv(local_kafka.LIBS_ENV, str(libs))
    assert kafka_libs() == libs


def test_kafka_libs_without_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_kafka.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="mvn"):
        kafka_libs(tmp_path / "libs")


def test_kafka_libs_reports_maven_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "mvn"
    fake.write_text("#!/bin/sh\necho 'Could not resolve dependencies: boom'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(local_kafka.shutil, "which", lambda name: str(fake))
    with pytest.raises(RuntimeError, match="boom"):
        kafka_libs(tmp_path / "libs")
    assert not (tmp_path / "libs" / local_kafka.MARKER).exists()
