"""The lease side of the ranked queue: what labeling calls.

A labeler (or a dispatcher, for a labeler group) claims the best pending items for a
while (a lease, which expires back into the queue at the score the item had), then labels
the item (it leaves for good), skips it (back in the queue, dropped after ``max_skips``
labelers passed) or returns it untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis.exceptions import NoScriptError

from activestream.rankedqueue.auto_accept import audit_pending, parse_audit
from activestream.rankedqueue.base import QueueBase, decode_features, members, parse_declared
from activestream.rankedqueue.keys import (
    EXPIRE_BATCH,
    META_DECLARED_CLASSES,
    META_LABEL_FIELD,
    META_LABEL_KIND,
    META_RANKED_VERSION,
    SUBMIT_HOLD_MS,
    TOP_FOR_PAGE,
)
from activestream.rankedqueue.scripts import queue_script, raise_unexpected

logger = logging.getLogger(__name__)


def holder_at(expiry: float | None, owner: bytes | None, now: float) -> str | None:
    """A lease's holder from its ``leased`` score and ``lease_owner`` entry: ``None`` when not leased or run out at ``now``."""
    if expiry is None or owner is None or expiry <= now:
        return None
    return owner.decode()


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest of ``keys`` (n,), smallest first (ties: the first index first), in O(n)."""
    if k >= len(keys):
        return np.argsort(keys, kind="stable")
    part = np.argpartition(keys, k - 1)[:k]
    return part[np.lexsort((part, keys[part]))]


@dataclass(frozen=True)
class Leased:
    """An item handed to a labeler.

    Parameters
    ----------
    id : item id.
    score : its score when leased.
    features : (n_features,) float32.
    expires_at : UNIX time the lease ends.
    metadata : the item's metadata.
    control : picked uniformly at random (the random-control slice).
    """

    id: str
    score: float
    features: np.ndarray | None
    expires_at: float
    metadata: dict[str, Any]
    control: bool = False  # picked uniformly at random (the random-control slice)


@dataclass(frozen=True)
class SubmitFacts:
    """What a label's checks read before the label is claimed (:meth:`QueueLeases.submit_facts`, one round trip).

    Parameters
    ----------
    now : the queue's clock (Redis ``TIME``) when read.
    label_id_known : the label id was accepted before (the label is a retry).
    control_holder : whom the item was last leased to as a random-control pick (``None``: not one).
    audit : the item's audit record ``(auto-accepted class, model version)``, ``None`` if it is not an audit item.
    lease_holder : who holds the item's lease at ``now`` (``None``: pending, unknown or run out).
    ranked_version : model version the queue was last re-ranked with (0: none yet).
    label_field, label_kind : the campaign's answer shape (``None`` until its first label fixes it).
    features : the item's stored features, (n_features,) float32 (``None``: not in the queue, or not asked for).
    declared_classes : the campaign's declared classes as recorded (``None``: none).
    """

    now: float
    label_id_known: bool
    control_holder: str | None
    audit: tuple[object, int] | None
    lease_holder: str | None
    ranked_version: int
    label_field: str | None
    label_kind: str | None
    features: np.ndarray | None
    declared_classes: tuple[str | int, ...] | None = None


class QueueLeases(QueueBase):
    """Leases of one queue namespace: claim, skip, label, return, expire, and who holds what."""

    # ----------------------------------------------------------------- choosing
    def top_for(self, labeler_id: str, n: int, offset: int = 0, *, passed_since: float | None = None) -> list[tuple[str, float]]:
        """The best ``n`` pending items from rank ``offset`` on that ``labeler_id`` has not skipped.

        Reads on past the ones they skipped, so a labeler who skipped the head of the queue
        still gets items while others are pending. With ``passed_since`` (for a labeler
        group: the dispatcher), it leaves out only what one of the group passed on since then:
        the group gets the item again later, so another of its labelers may label it or skip it.
        """
        out: list[tuple[str, float]] = []
        while len(out) < n:
            page = max(n - len(out), TOP_FOR_PAGE)
            cands = self.top(page, offset)
            offset += len(cands)
            skipped = self.passed_on(labeler_id, [c for c, _ in cands], passed_since)
            out += [c for c, s in zip(cands, skipped, strict=True) if not s]
            if len(cands) < page:  # the end of the queue
                break
        return out[:n]

    def control_walk(self, limit: int, rng: np.random.Generator, *, chunk: int = 256, max_pending_scan: int = 200_000) -> list[str]:
        """Up to ``limit`` ids the random-control walk takes next: the items of smallest sampling key not labeled yet.

        The sampling key (:func:`activestream.rankedqueue.pool.sampling_keys`) is a uniform hash of the id,
        so the items with the smallest keys are a uniform sample of the stream whatever the strategy picked.
        Walking them in key order and labeling each one not labeled yet keeps that sample complete: the
        ones the strategy labeled count as observed (see :func:`activestream.retrainer.estimates.walked_sample`).
        With a reservoir the walk runs over its members (they stay in it once labeled); a returned member
        may be missing from the queue (take it in with :meth:`promote`). Without one, over the pending
        items (every one hashed: past ``max_pending_scan`` pending items, a uniform draw of them by ``rng`` instead).
        Leased, labeled and dropped items are passed over.
        """
        if limit <= 0:
            return []
        pipe = self.r.pipeline(transaction=False)  # (one round trip for both: the pending depth matters only without a reservoir)
        pipe.exists(self.k.reservoir)
        pipe.zcard(self.k.pending)
        has_reservoir, depth = pipe.execute()
        if not has_reservoir:
            if depth > max_pending_scan:
                ranks = rng.choice(depth, size=min(limit, depth), replace=False)
                return self.members_at([int(r) for r in ranks])
            raw: list[bytes] = self.r.zrange(self.k.pending, 0, -1)  # type: ignore[assignment]
            return [raw[j].decode() for j in smallest(self.sampling_keys(raw), limit)]
        out: list[str] = []
        start = 0
        while len(out) < limit:
            ids = members(self.r.zrange(self.k.reservoir, start, start + chunk - 1))
            if not ids:
                break
            start += chunk
            pipe = self.r.pipeline(transaction=False)
            for item_id in ids:
                pipe.zscore(self.k.leased, item_id)
                pipe.sismember(self.k.labeled, item_id)
                pipe.sismember(self.k.dropped, item_id)
            flags = pipe.execute()
            out += [i for j, i in enumerate(ids) if not any(flags[3 * j : 3 * j + 3])][: limit - len(out)]
        return out

    def passed_on(self, labeler_id: str, ids: Sequence[str], passed_since: float | None = None) -> list[bool]:
        """Whether ``labeler_id`` skipped each of ``ids`` (for a labeler group, ``passed_since``: passed on since then)."""
        if passed_since is None:
            return self.skipped_by(labeler_id, ids)
        when = self.r.zmscore(self.k.passed(labeler_id), list(ids)) if ids else []
        return [w is not None and w >= passed_since for w in when]

    def audits_waiting(self, n: int, holder: str, passed_since: float | None = None) -> list[str]:
        """Up to ``n`` waiting audit items (:func:`~activestream.rankedqueue.auto_accept.audit_pending`) that ``holder``
        did not pass on (``passed_since`` as in :meth:`passed_on`): they wait for it like any other item."""
        return audit_pending(self, n, lambda ids: self.passed_on(holder, ids, passed_since))

    def mark_passed(self, holder: str, ids: Sequence[str], now: float) -> None:
        """Record that ``holder`` passed on ``ids`` at ``now`` (:meth:`top_for`'s ``passed_since`` leaves them out)."""
        if ids:
            self.r.zadd(self.k.passed(holder), dict.fromkeys(ids, now))

    def forget_passed(self, holder: str, before: float) -> None:
        """Drop the records of what ``holder``'s labelers passed on before ``before`` (see :meth:`top_for`)."""
        self.r.zremrangebyscore(self.k.passed(holder), "-inf", f"({before}")

    def skipped_by(self, labeler_id: str, ids: Sequence[str]) -> list[bool]:
        if not ids:
            return []
        return [bool(v) for v in self.r.smismember(self.k.skipped_by(labeler_id), list(ids))]

    # ----------------------------------------------------------------- leases
    def claim(
        self, ids: Sequence[str], labeler_id: str, ttl: float, now: float | None = None, *, control: bool = False, max_held: int | None = None
    ) -> list[tuple[str, float]]:
        """Atomically lease those of ``ids`` still pending; returns ``(id, score)`` claimed.

        ``control`` records them as random-control picks of ``labeler_id`` (see :meth:`control_holder`).
        ``max_held`` stops claiming once ``labeler_id`` holds that many leases, checked in the
        same script: two dispatchers of one labeler group cannot overshoot it together.
        """
        if not ids:
            return []
        now = self.now() if now is None else now
        keys = [self.k.pending, self.k.leased, self.k.lease_owner, self.k.last_score, self.k.owned(labeler_id), self.k.control]
        cap = -1 if max_held is None else max_held
        flat = self.scripts.claim(keys=keys, args=[now + ttl, labeler_id, "1" if control else "0", cap, *ids])
        return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def renew(self, ids: Sequence[str], holder: str, ttl: float, now: float | None = None) -> int:
        """Extend to ``now + ttl`` the leases of ``ids`` that ``holder`` still holds; returns how many.

        For a holder that keeps items out for long (a labeling tool's open tasks): a lease that
        ran out, or went to someone else, is left as it is.
        """
        if not ids:
            return 0
        now = self.now() if now is None else now
        return int(self.scripts.renew(keys=[self.k.leased, self.k.lease_owner], args=[now + ttl, holder, *ids]))

    def leased_by(self, owner: str) -> list[str]:
        """The items leased to ``owner`` (any order)."""
        return sorted(m.decode() for m in self.r.smembers(self.k.owned(owner)))  # type: ignore[union-attr]

    def held_by(self, owner: str, ids: Sequence[str]) -> list[bool]:
        """Whether each of ``ids`` is leased to ``owner`` now (one round trip)."""
        return [bool(x) for x in self.r.smismember(self.k.owned(owner), list(ids))] if ids else []  # type: ignore[union-attr]

    def lease_scores(self, ids: Sequence[str]) -> list[float | None]:
        """The scores leased ``ids`` return to the queue with (the live model's, after a re-rank); ``None`` if unknown."""
        if not ids:
            return []
        return [float(v) if v is not None else None for v in self.r.hmget(self.k.last_score, list(ids))]

    def unclaim(self, item_id: str, holder: str) -> bool:
        """Hand back ``holder``'s lease of ``item_id`` untouched (no skip counted). False if it is not theirs."""
        keys = [self.k.leased, self.k.pending, self.k.lease_owner, self.k.last_score, self.k.control]
        return bool(self.scripts.hand_back(keys=keys, args=[item_id, holder, self.k.owned_prefix]))

    def expire_leases(self, now: float | None = None) -> int:
        """Return every item whose lease has run out to the queue at its old score."""
        now = self.now() if now is None else now
        keys = [self.k.leased, self.k.pending, self.k.lease_owner, self.k.last_score]
        total = 0
        while True:  # bounded batches keep each script call short
            n = int(self.scripts.expire(keys=keys, args=[now, self.k.owned_prefix, EXPIRE_BATCH]))
            total += n
            if n < EXPIRE_BATCH:
                return total

    def lease_expiry(self, item_id: str) -> float | None:
        return self.r.zscore(self.k.leased, item_id)  # type: ignore[return-value]

    def lease_holder(self, item_id: str, now: float | None = None) -> str | None:
        """Who holds the item's lease, if it is leased and the lease has not run out at ``now``."""
        pipe = self.r.pipeline(transaction=True)
        pipe.zscore(self.k.leased, item_id)
        pipe.hget(self.k.lease_owner, item_id)
        expiry, owner = pipe.execute()
        return holder_at(expiry, owner, self.now() if now is None else now)

    def submit_facts(self, item_ids: Sequence[str], label_ids: Sequence[str], features: Sequence[bool]) -> list[SubmitFacts]:
        """The facts each label (``item_ids[j]``, ``label_ids[j]``) is checked against, read in one round trip.

        A non-transactional pipeline: the reads do not depend on each other, so a batch of
        labels costs one round trip, not one per read and label (issue 23). Lease holders are
        judged at the ``TIME`` read in the same pipeline, as :meth:`lease_holder` would after
        :meth:`expire_leases` at that time. ``features[j]``: read the item's stored features too.
        """
        k = self.k
        want = [i for i, f in zip(item_ids, features, strict=True) if f]
        pipe = self.r.pipeline(transaction=False)
        if want:
            queue_script(pipe, self.scripts.features, self._features_keys(), [k.segment_prefix, *want])
        pipe.time()
        pipe.hmget(k.meta, [META_RANKED_VERSION, META_LABEL_FIELD, META_LABEL_KIND, META_DECLARED_CLASSES])
        pipe.smismember(k.label_ids, list(label_ids))
        pipe.hmget(k.control, list(item_ids))
        pipe.hmget(k.audit, list(item_ids))
        pipe.zmscore(k.leased, list(item_ids))
        pipe.hmget(k.lease_owner, list(item_ids))
        replies = pipe.execute(raise_on_error=False)
        raise_unexpected(replies)
        rows = replies.pop(0) if want else None
        (sec, usec), (version, field, kind, declared), known, control, audit, expiry, owner = replies
        classes = parse_declared(declared.decode() if declared is not None else None)
        now = float(sec) + usec / 1e6
        if isinstance(rows, NoScriptError):  # (a restarted Redis: the call loads the script)
            rows = self.scripts.features(keys=self._features_keys(), args=[k.segment_prefix, *want])
        found = iter(decode_features(rows) if rows is not None else [])
        return [
            SubmitFacts(
                now=now,
                label_id_known=bool(known[j]),
                control_holder=control[j].decode() if control[j] is not None else None,
                audit=parse_audit(audit[j]) if audit[j] is not None else None,
                lease_holder=holder_at(expiry[j], owner[j], now),
                ranked_version=int(version or 0),
                label_field=field.decode() if field is not None else None,
                label_kind=kind.decode() if kind is not None else None,
                features=next(found) if features[j] else None,
                declared_classes=classes,
            )
            for j in range(len(item_ids))
        ]

    def claim_for_labels(self, item_ids: Sequence[str], holder: str, ttl: float, now: float,
                         label_ids: Sequence[str] | None = None, token: str = "") -> list[tuple[bool, str | None, bool]]:
        """Return the leases run out at ``now``, lease each of ``item_ids`` to ``holder`` if it is pending, read who holds
        it, and hold it for its label ``label_ids`` while that is published (:meth:`QueueKeys.submitting`; the hold holds
        ``token``, the request's own, so that only it ends them: :meth:`release_submissions` with ``(item id, token)``).

        :meth:`expire_leases`, :meth:`claim`, :meth:`lease_holder` and the holds in that order, in one round trip.
        Returns ``(claimed, holder of its lease at now, held)`` per item: not held when another label of it is being
        published (another API replica, at the same moment), or when its label id was accepted meanwhile (a twin sent
        at the same moment went first). ``label_ids=None``: no holds taken (every item counts as held).
        """
        k = self.k
        expire_keys = [k.leased, k.pending, k.lease_owner, k.last_score]
        claim_keys = [k.pending, k.leased, k.lease_owner, k.last_score, k.owned(holder), k.control]
        pipe = self.r.pipeline(transaction=False)
        queue_script(pipe, self.scripts.expire, expire_keys, [now, k.owned_prefix, EXPIRE_BATCH])
        queue_script(pipe, self.scripts.claim, claim_keys, [now + ttl, holder, "0", -1, *item_ids])
        pipe.zmscore(k.leased, list(item_ids))
        pipe.hmget(k.lease_owner, list(item_ids))
        for item_id in item_ids if label_ids is not None else ():
            pipe.set(k.submitting(item_id), token, nx=True, px=SUBMIT_HOLD_MS)
        if label_ids is not None:
            pipe.smismember(k.label_ids, list(label_ids))  # (after the holds: one that waited for its twin finds it accepted)
        replies = raise_unexpected(pipe.execute(raise_on_error=False))
        expired, flat, expiry, owner = replies[:4]
        held = [True] * len(item_ids)
        if label_ids is not None:
            # held: not when another label of the item goes out now, nor when this label id was accepted since its facts were read
            held = [bool(x) and not known for x, known in zip(replies[4:-1], replies[-1], strict=True)]
            self.release_submissions([(i, token) for i, x, h in zip(item_ids, replies[4:-1], held, strict=True) if x and not h])
        if isinstance(expired, NoScriptError) or isinstance(flat, NoScriptError) or int(expired) >= EXPIRE_BATCH:
            # (a restarted Redis, or more leases ran out than one batch: the same three steps one by one; the
            # script that did run is idempotent, or its claims are counted here)
            self.expire_leases(now)
            again = {c for c, _ in self.claim(item_ids, holder, ttl, now)}
            done = {flat[i].decode() for i in range(0, len(flat), 2)} if isinstance(flat, list) else set()
            return [(i in again or i in done, self.lease_holder(i, now), h) for i, h in zip(item_ids, held, strict=True)]
        claimed = {flat[i].decode() for i in range(0, len(flat), 2)}
        return [(i in claimed, holder_at(e, o, now), h) for i, e, o, h in zip(item_ids, expiry, owner, held, strict=True)]

    def release_submissions(self, pairs: Sequence[tuple[str, str]]) -> None:
        """End the holds :meth:`claim_for_labels` took for ``(item_id, token)`` pairs (published, or refused): each one
        that still holds its token (one that ran out and was taken since is the taker's)."""
        if pairs:
            self.scripts.release_submit(*self._release_keys_args(pairs))

    def _release_keys_args(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str | int | float]]:
        """``release_submit.lua``'s keys and args for ``(item_id, token)`` pairs."""
        return [self.k.submitting(i) for i, _ in pairs], [token for _, token in pairs]

    def control_holder(self, item_id: str) -> str | None:
        """The labeler ``item_id`` was last leased to as a control pick (``None`` if it was not one)."""
        holder = self.r.hget(self.k.control, item_id)
        return holder.decode() if holder is not None else None  # type: ignore[union-attr]

    # ----------------------------------------------------------------- answers
    def is_label_id_known(self, label_id: str) -> bool:
        return bool(self.r.sismember(self.k.label_ids, label_id))

    def mark_labeled(self, item_id: str, label_id: str) -> bool:
        """Take the item out of the queue for good. False if ``label_id`` was seen before."""
        return bool(self.scripts.mark_labeled(keys=self._mark_labeled_keys(), args=self._mark_labeled_args([(item_id, label_id)]))[0])

    def _mark_labeled_keys(self, release: Sequence[tuple[str, str]] = ()) -> list[str]:
        """The script's keys (``release``: the ``(item_id, token)`` holds it ends after the marks)."""
        k = self.k
        return [k.label_ids, k.pending, k.leased, k.lease_owner, k.last_score, k.labeled, k.featloc, k.metadata, k.skips,
                k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed, k.control, k.dropped,
                *(k.submitting(i) for i, _ in release)]

    def _mark_labeled_args(self, pairs: Sequence[tuple[str, str]], release: Sequence[tuple[str, str]] = ()) -> list[str | int | float]:
        """The script's arguments for ``(item_id, label_id)`` pairs: the key prefixes, the holds' tokens, then each label
        id and item id."""
        k = self.k
        return [k.owned_prefix, k.segment_prefix, k.skippers_prefix, k.skipped_by_prefix, len(release), *(t for _, t in release),
                *(x for item_id, label_id in pairs for x in (label_id, item_id))]

    def finish_labels(self, done: Sequence[tuple[str, str, bool]], labeler_id: str, last_payload: bytes,
                      release: Sequence[tuple[str, str]] = ()) -> None:
        """For each ``(item_id, label_id, audit)`` of ``done``: :meth:`mark_labeled` (all in one script call), and forget
        its audit record if it was an audit item; keep ``last_payload`` as the labeler's last label
        (:meth:`remember_label`); then end the holds ``release`` (:meth:`release_submissions`), in the marks' script call
        (a hold never ends before its marks). One round trip."""
        k = self.k
        pairs = [(item_id, label_id) for item_id, label_id, _ in done]
        pipe = self.r.pipeline(transaction=False)
        if pairs:
            queue_script(pipe, self.scripts.mark_labeled, self._mark_labeled_keys(release), self._mark_labeled_args(pairs, release))
        elif release:
            keys, tokens = self._release_keys_args(release)
            queue_script(pipe, self.scripts.release_submit, keys, tokens)
        pipe.hset(k.last_label, labeler_id, last_payload)
        audited = [item_id for item_id, _, audit in done if audit]
        if audited:
            pipe.hdel(k.audit, *audited)
        replies = raise_unexpected(pipe.execute(raise_on_error=False))
        if isinstance(replies[0], NoScriptError):  # (a restarted Redis: it did not run)
            if pairs:
                self.scripts.mark_labeled(keys=self._mark_labeled_keys(release), args=self._mark_labeled_args(pairs, release))
            else:
                self.release_submissions(release)

    def remember_label(self, labeler_id: str, payload: bytes) -> None:
        """Keep ``payload`` (an encoded label.v1) as ``labeler_id``'s last accepted label: what a correction reuses."""
        self.r.hset(self.k.last_label, labeler_id, payload)

    def last_label(self, labeler_id: str) -> bytes | None:
        """The encoded label.v1 :meth:`remember_label` kept for ``labeler_id`` (``None``: none yet)."""
        return self.r.hget(self.k.last_label, labeler_id)  # type: ignore[return-value]

    def skip(self, item_id: str, labeler_id: str, max_skips: int, *, holder: str | None = None, now: float | None = None) -> int:
        """Hand a leased item back (or pass on a pending one).

        ``holder`` is who must hold the lease of a leased item (default ``labeler_id``). A
        different holder, e.g. the dispatcher's lease for a labeler group, records when
        (``now``) one of its labelers passed on the item: see ``passed_since`` of :meth:`top_for`.

        Returns its skip count (each labeler counts once, so a retry changes nothing), 0 if
        it was dropped, -1 if unknown, -2 if it is leased to another labeler (left as it is).
        """
        return self.skip_outcome(item_id, labeler_id, max_skips, holder=holder, now=now)[0]

    def skip_outcome(self, item_id: str, labeler_id: str, max_skips: int, *, holder: str | None = None,
                     now: float | None = None, lease: float | None = None) -> tuple[int, bool]:
        """:meth:`skip`'s count, and whether the call changed anything (``False`` for a retried skip: a record read again).

        ``lease`` : the end of the lease the labeler passed on (a queue entry's ``lease_expires_at``): while ``holder``
        holds a later lease of the item, the skip changes nothing (a skip record read again after the group leased the
        item anew). ``None``: any lease of ``holder``'s."""
        k = self.k
        holder = labeler_id if holder is None else holder
        now = self.now() if now is None else now
        keys = [k.leased, k.pending, k.lease_owner, k.last_score, k.skips, k.skipped_by(labeler_id), k.dropped, k.featloc, k.metadata,
                k.segment_live, k.segment_time, k.segment_width, k.rerank_lock, k.rerank_removed, k.control, k.passed(holder)]
        n, changed = self.scripts.skip(keys=keys, args=[item_id, max_skips, k.owned_prefix, k.segment_prefix, labeler_id, holder, now,
                                                        k.skippers_prefix, k.skipped_by_prefix, "" if lease is None else lease])
        if int(n) == 0:
            logger.debug("item %s dropped after %d skips", item_id, max_skips)
        return int(n), bool(changed)
