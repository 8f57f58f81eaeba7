"""The queue's Lua scripts, loaded from ``lua/*.lua`` (package data).

Like arq's ``ArqRedis.enqueue_job``, every write is a small server-side script so it is
atomic and idempotent. Some scripts share helper functions: those live in ``fn_*.lua``
fragments, and :data:`COMPOSITION` says which fragments go (in order) before a script's own
file, so each script's full source is a plain concatenation, as Redis runs it.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

# script -> the fragments defined before its own text (a fragment may call only those listed before it)
COMPOSITION: dict[str, tuple[str, ...]] = {
    "add": ("fn_segment_ids", "fn_forget_skips", "fn_evict", "fn_segment_write"),
    "evict_old": ("fn_segment_ids", "fn_forget_skips", "fn_evict"),
    "features": (),
    "claim": (),
    "renew": (),
    "expire": ("fn_release_owner", "fn_hand_back"),
    "return": ("fn_release_owner", "fn_hand_back"),
    "mark_labeled": ("fn_release_owner", "fn_kill_row", "fn_forget_skips", "fn_end_holds"),
    "skip": ("fn_release_owner", "fn_kill_row", "fn_forget_skips"),
    "rerank_begin": (),
    "rerank_swap": ("fn_segment_ids",),
    "rerank_abort": (),
    "count_streamed": (),
    "release_submit": ("fn_end_holds",),
}


def _read(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script_source(name: str) -> str:
    """The full Lua source of script ``name``: its fragments, then its own file.

    Parameters
    ----------
    name : a key of :data:`COMPOSITION` (a file stem in ``lua/``).

    Returns
    -------
    The text sent to ``EVAL`` / ``SCRIPT LOAD``.
    """
    return "\n".join(_read(part) for part in (*COMPOSITION[name], name))


class Scripts:
    """Every queue script registered on one client (``EVALSHA``, loaded again after ``NOSCRIPT``).

    Parameters
    ----------
    client : the redis-py client the scripts run on.
    """

    def __init__(self, client: redis.Redis) -> None:
        def reg(name: str) -> Script:
            return client.register_script(script_source(name))

        self.add = reg("add")  # sent with EVAL by the writer (see QueueWriter.add_nowait): its .script is the text
        self.evict_old = reg("evict_old")
        self.features = reg("features")
        self.claim = reg("claim")
        self.renew = reg("renew")
        self.expire = reg("expire")
        self.hand_back = reg("return")
        self.mark_labeled = reg("mark_labeled")
        self.skip = reg("skip")
        self.rerank_begin = reg("rerank_begin")
        self.rerank_swap = reg("rerank_swap")
        self.rerank_abort = reg("rerank_abort")
        self.count_streamed = reg("count_streamed")
        self.release_submit = reg("release_submit")


def queue_script(pipe: Pipeline, script: Script, keys: list[str], args: list[str | int | float]) -> None:
    """Queue ``script`` in ``pipe`` as a bare ``EVALSHA``.

    redis-py's own way (calling the script on the pipeline) sends ``SCRIPT EXISTS`` first: one
    more round trip per pipeline. A bare one instead replies :class:`redis.exceptions.NoScriptError`
    (with ``pipe.execute(raise_on_error=False)``) when the server lacks the script (restarted or
    flushed): it did not run, and the caller runs it again by calling the script, which loads it.
    """
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def raise_unexpected(replies: list[Any]) -> list[Any]:
    """A pipeline's replies (``raise_on_error=False``), raising the first error but a missing script's (see :func:`queue_script`)."""
    for reply in replies:
        if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
            raise reply
    return replies
