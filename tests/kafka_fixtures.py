"""Pytest plugin: a real Apache Kafka broker for the tests marked ``kafka``.

The broker comes from, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` (CI starts one with ``python -m activestream.devstack.local_kafka``);
2. testcontainers' ``KafkaContainer``, only when testcontainers is installed and a
   Docker engine answers (image from ``ACTIVESTREAM_KAFKA_IMAGE`` when set);
3. :class:`activestream.devstack.local_kafka.LocalKafka` (Kafka 3.9.1 jars via Maven; needs java).

None possible: the tests skip, or fail with ``ACTIVESTREAM_REQUIRE_SERVICES=1``.
Enabled from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_fixtures"]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from activestream.streams.topics import Topics
from tests.availability import unavailable


def _answers(bootstrap: str, timeout: float = 10.0) -> str | None:
    """``None`` when a broker at ``bootstrap`` answers a metadata request, else why not."""
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    except Exception as exc:
        return str(exc)
    return None if md.brokers else "no brokers in metadata"


def _docker_container(reasons: list[str]) -> Any:
    """A started testcontainers KafkaContainer, or ``None`` (silently, if no testcontainers/Docker)."""
    with warnings.catch_warnings():
        # Third-party deprecations must not turn into errors under filterwarnings=error.
        warnings.simplefilter("ignore")
        try:
            import docker
            from testcontainers.kafka import KafkaContainer
        except ImportError:
            return None
        try:
            docker.from_env(timeout=3).ping()
        except Exception:
            return None
        image = os.environ.get("ACTIVESTREAM_KAFKA_IMAGE")
        container = KafkaContainer(image) if image else KafkaContainer()
        try:
            container.start()
        except Exception as exc:
            reasons.append(f"testcontainers KafkaContainer failed: {exc}")
            with contextlib.suppress(Exception):
                container.stop()
            return None
        return container


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of a real broker for the whole session."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        why = _answers(env)
        if why is not None:
            unavailable(f"KAFKA_BOOTSTRAP_SERVERS={env} does not answer: {why}")
        yield env
        return

    reasons: list[str] = []
    container = _docker_container(reasons)
    if container is not None:
        try:
            yield container.get_bootstrap_server()
        finally:
            container.stop()
        return

    if shutil.which("java") is None:
        reasons.append("no KAFKA_BOOTSTRAP_SERVERS, no Docker, and java is not on PATH for LocalKafka")
    else:
        from activestream.devstack.local_kafka import LocalKafka

        try:
            kafka = LocalKafka().start()
        except RuntimeError as exc:
            reasons.append(f"LocalKafka failed: {exc}")
        else:
            try:
                yield kafka.bootstrap_servers
            finally:
                kafka.stop()
            return
    unavailable("no Kafka broker: " + "; ".join(reasons))


@pytest.fixture
def kafka_bus(kafka_bootstrap: str) -> Iterator[tuple[Any, Topics]]:
    """A ``KafkaBus`` and ``Topics`` under a prefix unique to this test.

    No topic is created up front (tests call ``bus.ensure_topics`` for what they use);
    every topic under the prefix is deleted afterwards, so a shared broker stays tidy.
    """
    from activestream.streams.kafka import KafkaBus

    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}")
    bus = KafkaBus(kafka_bootstrap, partitions=2, client_id=f"test-{topics.prefix}")
    try:
        yield bus, topics
    finally:
        try:
            bus.close()
        finally:
            _delete_topics(bus, topics.prefix + ".")


@pytest.fixture
def kafka_bus_factory(kafka_bootstrap: str) -> Iterator[Callable[..., Any]]:
    """Make ``KafkaBus`` instances on the session broker; all are closed after the test.

    ``factory(prefix=None, partitions=2, **kwargs)``: ``prefix`` (the topic prefix the
    bus is used with) only names the client; topics are not created or deleted here,
    since they may belong to processes that outlive this fixture's teardown.
    """
    from activestream.streams.kafka import KafkaBus

    buses: list[Any] = []

    def factory(prefix: str | None = None, partitions: int = 2, **kwargs: Any) -> Any:
        kwargs.setdefault("client_id", f"test-{prefix or uuid.uuid4().hex[:10]}")
        bus = KafkaBus(kafka_bootstrap, partitions=partitions, **kwargs)
        buses.append(bus)
        return bus

    try:
        yield factory
    finally:
        # Close every bus even if one fails (e.g. undelivered records), then report the first failure.
        errors: list[Exception] = []
        for bus in buses:
            try:
                bus.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _delete_topics(bus: Any, prefix: str) -> None:
    # Best effort: a failed cleanup must not fail the test that used the topics.
    with contextlib.suppress(Exception):
        admin = bus._admin()
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for fut in admin.delete_topics(names, operation_timeout=10).values():
                with contextlib.suppress(Exception):
                    fut.result()
