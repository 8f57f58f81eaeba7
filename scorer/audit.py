"""The audit of auto-accept: a share of the auto-accepted items goes to labelers blind.

Which items: those whose id hashes below ``share`` (:func:`audit_pick`), so a redelivered record
is picked again (or not) the same way. After a micro-batch's auto-labels are committed, the picked
ones are recorded in the queue's ``audit`` hash (with the auto-label's class and version) and then queued as ordinary
items, with their metadata, past a full pool's cap, which does not evict them for their rank (:func:`send_audits`); leases serve waiting audit items first, the labeling
service flags their labels, and the retrainer's audited precision decides whether auto-accept pauses
(``retrainer.auto_accept_rule``). A crash between the commit and the queue write loses that audit
(it is a sample) but never the item: its auto-label went out with the commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import redis

from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.auto_accept import audit_room, record_audits
from activestream.schemas import decode_label
from activestream.streams.bus import Record

log = logging.getLogger(__name__)

#: Default share of auto-accepted items audited (ACTIVESTREAM_AUDIT_SHARE).
AUDIT_SHARE = 0.02


def audit_pick(item_id: str, share: float) -> bool:
    """Whether ``item_id`` is in the audited ``share`` (a fixed function of the id).

    >>> sum(audit_pick(str(i), 0.1) for i in range(10_000))
    967
    """
    if share <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(b"audit:" + item_id.encode()).digest()[:8], "big")
    return h < share * 2**64


# Metadata kept for audit picks not yet sent, at most (auto-labels a queued item turned out to have are never sent).
MAX_KEPT_METAS = 100_000


def keep_audit_metas(kept: dict[str, dict[str, Any]], metas: Mapping[str, dict[str, Any]], share: float) -> None:
    """Keep in ``kept`` the metadata of the auto-accepted items among ``metas`` that the audit will pick (what their
    labelers see: an image's URL, say; the auto-label record carries only the features)."""
    if len(kept) > MAX_KEPT_METAS:
        kept.clear()
    kept.update({i: md for i, md in metas.items() if audit_pick(i, share)})


def send_audits(queue: RankedQueue, records: Sequence[Record], topic: str, share: float,
                metas: dict[str, dict[str, Any]] | None = None) -> int:
    """Queue the audited share of the auto-labels among ``records`` (those on ``topic``), recorded as audits first.

    They enter the queue past a full pool's cap (their score, 0, outranks nothing; the pool does not evict them for
    it), with their metadata from ``metas`` (taken out of it); at most
    :func:`~activestream.rankedqueue.auto_accept.audit_room` wait at once."""
    picked = [decode_label(r.value) for r in records if r.topic == topic and r.key is not None and audit_pick(r.key.decode(), share)]
    picked = [lab for lab in picked if lab.features is not None and lab.label is not None]
    mds = {lab.item_id: (metas or {}).pop(lab.item_id, {}) for lab in picked}
    if not picked:
        return 0
    try:
        feats = {lab.item_id: lab.features for lab in picked if lab.features is not None}
        ids = record_audits(queue, {lab.item_id: (lab.label, int(lab.model_version or 0)) for lab in picked}, room=audit_room(queue.pool.capacity))
        added = queue.add_past_cap(ids, np.zeros(len(ids)), np.vstack([feats[i] for i in ids]), [mds[i] for i in ids]) if ids else 0
    except redis.RedisError as exc:  # (their batch is committed: an outage costs these audits, a sample, nothing else)
        log.warning("audit: %d auto-accepted item(s) not sent to labelers (%s: %s)", len(picked), type(exc).__name__, exc)
        return 0
    log.info("audit: %d auto-accepted item(s) sent to labelers blind (%d new in the queue)", len(ids), added)
    return len(ids)
