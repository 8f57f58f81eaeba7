"""The redis-server activestream starts itself (``activestream up``, ``demo``, ``simulate``): no password, so no admin commands."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from activestream.devstack.redis_server import LocalRedis
from activestream.rankedqueue import QueueKeys, RankedQueue

pytestmark = pytest.mark.integration


def test_a_local_user_cannot_make_the_embedded_redis_write_files_or_load_code(tmp_path) -> None:
    # A security audit: `activestream up`'s Redis (no password, loopback) let any local user run
    # CONFIG SET dir <dir>, CONFIG SET dbfilename authorized_keys, SET, SAVE: a file of their choosing written as the
    # user running the stack; MODULE LOAD would run their code in it.
    server = LocalRedis(appendonly=True, data_dir=str(tmp_path / "redis")).start()  # (as up.py starts it)
    try:
        other_user = redis.Redis.from_url(server.url)
        for command in (("CONFIG", "SET", "dir", str(tmp_path)), ("CONFIG", "GET", "dir"), ("MODULE", "LOAD", "/tmp/x.so"),
                        ("REPLICAOF", "127.0.0.1", "1"), ("SLAVEOF", "127.0.0.1", "1"), ("DEBUG", "SEGFAULT")):
            with pytest.raises(redis.ResponseError, match="unknown command"):
                other_user.execute_command(*command)
        assert not (tmp_path / "dump.rdb").exists()
        queue = RankedQueue(other_user, QueueKeys("embedded"))  # (what the services do still works)
        queue.add(["a", "b"], np.array([0.9, 0.1]), np.eye(2, dtype=np.float32))
        assert [i for i, _ in queue.top(2)] == ["a", "b"] and queue.claim(["a"], "ann", ttl=60) is not None
    finally:
        server.stop()


def test_tests_may_keep_the_admin_commands() -> None:
    server = LocalRedis(admin=True).start()
    try:
        assert redis.Redis.from_url(server.url).config_set("maxmemory", "0")
    finally:
        server.stop()
