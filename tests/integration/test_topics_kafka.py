"""Campaign topics on a real broker: names the broker refuses for good are one error line and a refusal."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_a_namespace_whose_topics_collide_with_anothers_is_refused_in_one_line(
    kafka_bootstrap: str, redis_url: str, kafka_bus_factory: Callable[..., object], tmp_path: Path
) -> None:
    # (a multi-campaign audit: `team.x` then `team_x` on one broker: a traceback ending "Topic 'team_x.items' collides with
    # existing topic: team.x.items", status 1, and `up` starting the scorer again for ever)
    tag = uuid.uuid4().hex[:8]
    bus = kafka_bus_factory(prefix=f"team.{tag}")
    bus.ensure_topics([f"team.{tag}.items"])  # type: ignore[attr-defined]
    items = tmp_path / "items.csv"
    items.write_text("id,a,b\nx1,1.0,2.0\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url, "ACTIVESTREAM_NAMESPACE": f"team_{tag}"}
    p = subprocess.run([sys.executable, "-m", "activestream.cli", "produce", str(items)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot create Kafka topic team_{tag}.") and "collides" in last, last
    assert last.endswith("(ACTIVESTREAM_NAMESPACE / ACTIVESTREAM_TOPIC_PREFIX name the topics)"), last
