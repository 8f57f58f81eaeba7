"""Auto-accepted items in the queue: taken out at a re-rank, or kept as hidden audit items.

One script of its own (``lua/take_auto.lua`` after the ``fn_kill_row`` and ``fn_forget_skips`` fragments): an item still
waiting leaves the queue for good, as a labeled one does (its id is tombstoned, so a later record
of it is a duplicate); a leased one stays with its labeler. The scorer publishes the auto-labels
first and takes the items out after, so a crash between the two leaves an item queued *and*
auto-labeled (a human may label it too; a human label is final over an auto-label), never lost.

Audit items: a share of the auto-accepted items is queued for labelers anyway, recorded in the
``audit`` hash with the auto-label's class (at most :data:`AUDIT_MAX_WAITING` wait at once). They enter a full
capped pool past its cap (their score, 0, would outrank nothing), and the pool never evicts them for their rank
(``add.lua``; the age still does): the audit stays a sample of what was auto-accepted on an endless stream, whose
pool is always full. Leases serve waiting audit items first (:func:`audit_pending`);
the labeler sees an ordinary item (nothing in its metadata says audit); the labeling service flags the
label (``audit``, ``audited_label``: ``QueueLeases.submit_facts`` reads it, :func:`parse_audit`, with the label's
other facts, ``QueueLeases.finish_labels`` forgets it once answered) and the retrainer counts the answers. Labels that
come by the labels topic from queue-topic labelers are flagged by the dispatcher instead: it publishes a flagged copy
(the same label id) of an answer to an audit item (``activestream.labeling.dispatcher``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from activestream.rankedqueue.base import QueueBase

log = logging.getLogger(__name__)

TAKE_CHUNK = 2000
AUDIT_SETTLE_S = 60.0  # an audit entry neither waiting nor leased after this long is gone (see audit_pending)
# Audit items waiting at once, at most: what auto-accept on a fast stream would otherwise pile up faster than labelers
# answer (each holds a place in the pool the pool cannot evict); past it, new picks wait for room (the audit needs a
# sample, not every pick). A capped pool holds at most a tenth of its capacity of them (see audit_room).
AUDIT_MAX_WAITING = 1000


def audit_room(capacity: int | None) -> int:
    """The most audit items that may wait at once in a pool of ``capacity`` (``None``: no cap)."""
    return AUDIT_MAX_WAITING if capacity is None else max(1, min(AUDIT_MAX_WAITING, capacity // 10))


@cache
def _source() -> str:
    lua = files("activestream.rankedqueue") / "lua"
    return "\n".join((lua / f"{name}.lua").read_text(encoding="utf-8") for name in ("fn_kill_row", "fn_forget_skips", "take_auto"))


def take_auto_accepted(queue: QueueBase, ids: Sequence[str]) -> list[str]:
    """Take ``ids`` out of ``queue`` where they still wait (pending, not leased); returns those taken.

    Idempotent: an id taken, labeled or dropped already is left as it is.
    """
    k = queue.k
    script = queue.r.register_script(_source())
    keys = [k.pending, k.featloc, k.metadata, k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed,
            k.control, k.audit, k.skips]
    taken: list[str] = []
    for lo in range(0, len(ids), TAKE_CHUNK):
        got = script(keys=keys, args=[k.segment_prefix, k.skippers_prefix, k.skipped_by_prefix, *ids[lo : lo + TAKE_CHUNK]])
        taken += [g.decode() if isinstance(g, bytes) else str(g) for g in got]
    return taken


def record_audits(queue: QueueBase, audits: dict[str, tuple[object, int]], *, published: bool = True,
                  room: int = AUDIT_MAX_WAITING) -> list[str]:
    """Record ``item id -> (auto-accepted class, model version)`` as audit items (before they are queued).

    ``published``: their auto-labels went out (``False``: picked while the audit pauses auto-accept, by the class the
    version would have auto-accepted; nothing was published). At most ``room`` (:func:`audit_room`) wait at once: the
    ids recorded (those already recorded, and new ones while there is room)."""
    if not audits:
        return []
    pipe = queue.r.pipeline(transaction=False)
    pipe.hlen(queue.k.audit)
    pipe.hmget(queue.k.audit, list(audits))
    waiting, known = pipe.execute()
    room = max(0, room - int(waiting))
    ids = [i for i, k in zip(audits, known, strict=True) if k is not None or (room := room - 1) >= 0]
    if len(ids) < len(audits):
        log.info("audit: %d pick(s) not recorded: %d audit items wait already (the most at once)", len(audits) - len(ids), waiting)
    if ids:
        now = time.time()
        queue.r.hset(queue.k.audit, mapping={i: json.dumps({"label": audits[i][0], "version": audits[i][1], "at": now, "published": published})
                                             for i in ids})
    return ids


def parse_audit(raw: bytes | str) -> tuple[object, int]:
    """An ``audit`` hash value -> ``(auto-accepted class, model version)``."""
    obj = json.loads(raw)
    return obj["label"], int(obj["version"])


def audit_records(queue: QueueBase, ids: Sequence[str]) -> dict[str, tuple[object, int]]:
    """Those of ``ids`` recorded as audit items -> (auto-accepted class, model version) (one round trip)."""
    if not ids:
        return {}
    got = queue.r.hmget(queue.k.audit, list(ids))
    return {i: parse_audit(raw) for i, raw in zip(ids, got, strict=True) if raw is not None}  # type: ignore[union-attr]


def published_audits(queue: QueueBase, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` recorded as audit items whose auto-label went out (one round trip; a record without the flag,
    written before it existed, counts as published)."""
    if not ids:
        return set()
    got = queue.r.hmget(queue.k.audit, list(ids))
    return {i for i, raw in zip(ids, got, strict=True) if raw is not None and json.loads(raw).get("published", True)}  # type: ignore[arg-type]


def forget_audits(queue: QueueBase, ids: Sequence[str]) -> None:
    """``ids`` are audit items no longer (answered)."""
    if ids:
        queue.r.hdel(queue.k.audit, *ids)


def audit_pending(queue: QueueBase, n: int, passed: Callable[[list[str]], list[bool]] | None = None) -> list[str]:
    """Up to ``n`` audit items still waiting (pending, not leased); with ``passed`` (whether the holder passed on each
    of a list of ids: a labeler's skips, a group's recent passes), not those it passed on, as ``top_for`` leaves them."""
    if n <= 0:
        return []
    entries = {i.decode(): v for i, v in queue.r.hgetall(queue.k.audit).items()}  # type: ignore[union-attr]
    ids = list(entries)
    if not ids:
        return []
    got = _where(queue, ids)
    pending = [i for i, score in zip(ids, got[0::2], strict=True) if score is not None]
    # Neither waiting nor leased: aged out, dropped, or labeled and its answer flagged already: no longer an audit,
    # so the hash stays as small as the queue. (Recorded a minute ago at least: an audit is recorded just before its
    # item is queued.)
    settled = time.time() - AUDIT_SETTLE_S
    gone = [i for i, p, lease in zip(ids, got[0::2], got[1::2], strict=True)
            if p is None and lease is None and json.loads(entries[i]).get("at", 0.0) < settled]
    forget_audits(queue, gone)
    if passed is not None and pending:
        pending = [i for i, p in zip(pending, passed(pending), strict=True) if not p]
    return pending[:n]


def _where(queue: QueueBase, ids: Sequence[str]) -> list[Any]:
    """Each of ``ids``' pending score and lease expiry, interleaved (``None`` where it is not): two commands."""
    pipe = queue.r.pipeline(transaction=False)
    pipe.zmscore(queue.k.pending, list(ids))
    pipe.zmscore(queue.k.leased, list(ids))
    pending, leased = pipe.execute()
    return [x for pair in zip(pending, leased, strict=True) for x in pair]
