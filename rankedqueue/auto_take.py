"""Taking auto-accepted items out of the queue (the scorer's re-rank auto-accept).

One script of its own (``lua/take_auto.lua`` after the ``fn_kill_row`` fragment): an item still
waiting leaves the queue for good, as a labeled one does (its id is tombstoned, so a later record
of it is a duplicate); a leased one stays with its labeler. The scorer publishes the auto-labels
first and takes the items out after, so a crash between the two leaves an item queued *and*
auto-labeled (a human may label it too; a human label is final over an auto-label), never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from activestream.rankedqueue.base import QueueBase

TAKE_CHUNK = 2000


@cache
def _source() -> str:
    lua = files("activestream.rankedqueue") / "lua"
    return "\n".join((lua / f"{name}.lua").read_text(encoding="utf-8") for name in ("fn_kill_row", "take_auto"))


def take_auto_accepted(queue: QueueBase, ids: Sequence[str]) -> list[str]:
    """Take ``ids`` out of ``queue`` where they still wait (pending, not leased); returns those taken.

    Idempotent: an id taken, labeled or dropped already is left as it is.
    """
    k = queue.k
    script = queue.r.register_script(_source())
    keys = [k.pending, k.featloc, k.metadata, k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed,
            k.control]
    taken: list[str] = []
    for lo in range(0, len(ids), TAKE_CHUNK):
        got = script(keys=keys, args=[k.segment_prefix, *ids[lo : lo + TAKE_CHUNK]])
        taken += [g.decode() if isinstance(g, bytes) else str(g) for g in got]
    return taken
