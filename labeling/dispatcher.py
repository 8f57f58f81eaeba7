"""Dispatcher: feeds labelers who consume a topic from the top of the Redis queue.

It keeps at most ``max_outstanding`` items leased to the labeler group at once, so
what they see was ranked by a recent model, and (given ``readers``) only while someone is in
the consumer group the labelers read the queue topic with: a stack whose labelers all use the
page or Label Studio does not have the top of its queue held for a topic nobody reads; an item not labeled within
``ack_timeout`` returns to the queue (its lease expires) and is dispatched again.
Once a model has ranked the queue, an ``explore`` share of what it sends is drawn uniformly
from the whole queue, flagged ``"control": true`` in the entry's metadata (the labeler copies
the flag into its label): the random-control slice the API's leases have too.
Labels arriving on the labels topic acknowledge their items; a skip on the skips topic
hands its item back at once and counts towards ``max_skips`` for that labeler; the group is
sent other work first and gets the item again after ``ack_timeout``, so another of its
labelers may label it or skip it too.

Hidden audit items of auto-accept (:mod:`activestream.rankedqueue.auto_accept`) go out first after
the control picks, as ordinary entries. Queue-topic labelers publish their labels themselves, so the
dispatcher flags an answer to an audit item: it publishes a copy of the label with ``audit`` and the
auto-label's class set (the same label id: the retrainer trains on it once and counts the audit once).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry

from activestream.labeling.control_picks import ControlPicker, control_flagged
from activestream.labeling.control_share import Explore
from activestream.labeling.metrics import DispatcherMetrics
from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.auto_accept import audit_records, forget_audits
from activestream.rankedqueue.base import parse_declared
from activestream.rankedqueue.keys import (
    ANSWER_FIELDS,
    META_DECLARED_CLASSES,
    META_LABEL_FIELD,
    META_LABEL_KIND,
    META_N_FEATURES,
    task_of_field,
)
from activestream.retrainer.label_fit import fit_to_campaign
from activestream.schemas import DecodeError, Label, QueueEntry, decode_label, decode_skip
from activestream.streams.bus import Bus
from activestream.streams.topics import DISPATCHER_GROUP, LABELERS_GROUP, Topics

log = logging.getLogger(__name__)


def dispatch_owner(labeler_group: str) -> str:
    """The lease owner a dispatcher holds its labeler group's items as (``dispatch:<labeler group>``)."""
    return f"dispatch:{labeler_group}"


def consumer_group(topic_prefix: str, labeler_group: str) -> str:
    """The Kafka consumer group of the dispatchers serving ``labeler_group``.

    One per labeler group: a dispatcher must get the skips of its own labelers (it holds their
    leases; another group's dispatcher would refuse them). Every label reaches each group's
    dispatchers, and marking an item labeled twice is harmless.
    """
    return Topics(topic_prefix).group(DISPATCHER_GROUP, labeler_group)


class Dispatcher:
    """Moves top-ranked items to the queue topic and acknowledges them from the labels topic.

    Parameters
    ----------
    queue : the ranked queue.
    bus, topics : the queue topic (out) and labels topic (acks in).
    labeler_group : the lease owner standing for every labeler consuming the queue topic.
    max_outstanding : most items out at once.
    ack_timeout : seconds before an unlabeled dispatched item returns to the queue.
    max_skips : an item skipped by this many different labelers leaves the queue.
    explore : share of dispatched items drawn uniformly at random as control picks (see module doc).
    seed : seed of those draws (None: fresh entropy, so dispatchers of one group draw differently).
    group : its consumer group on the labels and skips topics; ``None``: ``{prefix}.dispatcher.{labeler_group}``.
    readers : the consumer group of the labelers reading the queue topic (``activestream label --group``): items
        are sent only while it has members, checked every ``readers_every`` seconds; ``None``: always.
    """

    def __init__(
        self,
        queue: RankedQueue,
        bus: Bus,
        topics: Topics,
        *,
        labeler_group: str = LABELERS_GROUP,
        max_outstanding: int = 100,
        ack_timeout: float = 300.0,
        registry: CollectorRegistry | None = None,
        group: str | None = None,
        max_skips: int = 3,
        explore: Explore = 0.0,
        seed: int | None = None,
        readers: str | None = None,
        readers_every: float = 2.0,
    ) -> None:
        self.queue = queue
        self.bus = bus
        self.topics = topics
        self.owner = dispatch_owner(labeler_group)
        self.max_outstanding = max_outstanding
        self.ack_timeout = ack_timeout
        self.max_skips = max_skips
        self.control = ControlPicker(queue, explore, np.random.default_rng(seed))
        self._labels = bus.consumer([topics.labels, topics.skips], group or topics.group(DISPATCHER_GROUP, labeler_group))
        self.metrics = DispatcherMetrics.create(registry or CollectorRegistry(), queue.k.namespace)
        self.readers, self.readers_every = readers, readers_every
        self._readers_seen: tuple[float, int] | None = None  # (when checked, members then)
        self.metrics.readers.set(-1)

    def n_readers(self) -> int | None:
        """Members of the labelers' consumer group (checked at most every ``readers_every`` s); ``None`` if not watched."""
        if self.readers is None:
            return None
        t = time.monotonic()
        if self._readers_seen is not None and self.trouble() is not None:
            return self._readers_seen[1]  # (the broker away: asking would hold the loop, leases and acks, for its timeout)
        if self._readers_seen is None or t - self._readers_seen[0] >= self.readers_every:
            try:
                n = self.bus.group_members(self.readers)
            except Exception as exc:  # noqa: BLE001 - not allowed to describe groups (ACLs), broker away
                # Not allowed: dispatch as if watched (-1), for good. A broker away or slow: what was last seen stands,
                # none before it (the top of the queue is not sent to a topic nobody may read; a broker blip did).
                denied = "AUTHORIZATION" in str(exc).upper()
                n = -1 if denied else (self._readers_seen[1] if self._readers_seen is not None else 0)
                if self._readers_seen is None or self._readers_seen[1] != n:
                    log.warning("could not read the members of the consumer group %r (%s: %s); %s", self.readers, type(exc).__name__, exc,
                                "dispatching regardless" if denied else f"taking {n} member(s) until it can")
            if self._readers_seen is not None and (n > 0) != (self._readers_seen[1] > 0):
                log.info("%s in the queue topic's group %r: %s", f"{n} labeler(s)" if n else "no labeler", self.readers,
                         "dispatching" if n else "nothing more is sent until one joins")
            self._readers_seen = (t, n)
            self.metrics.readers.set(n)
        return self._readers_seen[1]

    def acknowledge(self, timeout: float = 0.1) -> int:
        """Mark items labeled (idempotent by label id) or skipped, from the labels and skips topics. Returns records read."""
        msgs = self._labels.consume(1000, timeout)
        labels: list[Label] = []
        for m in msgs:
            if m.topic == self.topics.skips:
                self._skipped(m.value)
                continue
            try:
                labels.append(decode_label(m.value))
            except DecodeError:
                continue  # the retrainer dead-letters bad labels; nothing to acknowledge here
        labels = self._fitting(labels)
        self._flag_audits(labels)
        held = self.queue.held_by(self.owner, [label.item_id for label in labels])
        for label, ours in zip(labels, held, strict=True):
            # (counted when the item was out with this dispatcher's labelers: a label from the API marks an item as well)
            if self.queue.mark_labeled(label.item_id, label.label_id) and ours:
                self.metrics.acked.inc()
        self._labels.commit(msgs)
        return len(msgs)

    def _fitting(self, labels: list[Label]) -> list[Label]:
        """``labels`` less those the retrainer will refuse (no features, another width, shape, type or an undeclared class),
        checked as the retrainer does against what the queue holds of the campaign: such an item stays queued, for a label
        it can take (a tool writing to the labels topic directly is checked by nobody else before)."""
        if not labels:
            return labels
        meta = self.queue.get_meta_fields(META_N_FEATURES, META_LABEL_FIELD, META_LABEL_KIND, META_DECLARED_CLASSES)
        width = int(w) if (w := meta[META_N_FEATURES]) else None
        task = task_of_field(meta[META_LABEL_FIELD]) or "auto"
        classes = parse_declared(meta[META_DECLARED_CLASSES])
        kind = meta[META_LABEL_KIND]
        kept = []
        for label in labels:
            if label.features is None:
                fit: Label | DecodeError = DecodeError(label.item_id, "features_b64", "missing: the retrainer needs the item's features")
            else:  # (the first label fixes the answer's shape and type for the next ones, as in the retrainer)
                fit, task, kind = fit_to_campaign(label, width, task, kind, classes)
            if isinstance(fit, DecodeError):
                log.warning("label %r not taken: %s (the retrainer dead-letters it; the item stays queued)", label.label_id, fit)
            else:
                kept.append(label)
        if kept and meta[META_LABEL_FIELD] is None and task != "auto":  # (labels that came another way fix them for every path)
            self.queue.agree_meta(META_LABEL_FIELD, ANSWER_FIELDS[task])
        if kept and meta[META_LABEL_KIND] is None and kind is not None:
            self.queue.agree_meta(META_LABEL_KIND, kind)
        return kept

    def _flag_audits(self, labels: list[Label]) -> None:
        """Publish a flagged copy of the first unflagged human answer to each audit item (before it is marked labeled: a
        crash in between publishes it again, which the retrainer counts once); then those items are audits no longer."""
        humans = [lab for lab in labels if not lab.audit and lab.source == "human"]  # (not baseline imports nor simulated answers)
        audits = audit_records(self.queue, [lab.item_id for lab in humans])
        first = {lab.item_id: lab for lab in reversed(humans) if lab.item_id in audits}  # (an item's first answer in the batch)
        answered = list(first.values())
        for lab in answered:
            flagged = dataclasses.replace(lab, audit=True, audited_label=audits[lab.item_id][0])  # type: ignore[arg-type]
            self.bus.publish(self.topics.labels, flagged.encode(), key=lab.item_id.encode())
        if answered:
            self.bus.flush()
            forget_audits(self.queue, [lab.item_id for lab in answered])

    def _skipped(self, payload: bytes) -> None:
        try:
            skip = decode_skip(payload)
        except DecodeError as err:
            log.warning("ignored a bad skip record: %s", err)
            return
        # Only while the group holds the lease: a stale skip (the lease expired and someone else
        # has the item) changes nothing (-2); a retried one (read again after an outage or a
        # rebalance) counts once, in the queue and here, also when the group leased the item anew
        # meanwhile (the skip names the lease it passed on).
        n, changed = self.queue.skip_outcome(skip.item_id, skip.labeler_id, self.max_skips, holder=self.owner, lease=skip.lease_expires_at)
        if n >= 0 and changed:
            self.metrics.skipped.inc()

    def dispatch(self, now: float | None = None) -> int:
        """Top up the labelers to ``max_outstanding``. Returns items sent."""
        now = self.queue.now() if now is None else now
        self.queue.expire_leases(now)
        room = self.max_outstanding - self.queue.n_leased_by(self.owner)
        readers = self.n_readers()  # (asked when full too: its gauge went stale while the leases held were at the most)
        if room <= 0 or readers == 0:  # (full; or nobody reads the queue topic: leave the top to the page and Label Studio)
            self.metrics.outstanding.set(self.max_outstanding - room)  # (what is out: the leases held)
            return 0
        # What the group passed on comes back after ack_timeout: other work first.
        passed_since = now - self.ack_timeout
        self.queue.forget_passed(self.owner, before=passed_since)
        n_control = 0 if self.queue.ranked_version() == 0 else self.control.count(room)  # (no ranking yet: no control slice)
        # (max_held: room may be stale, another dispatcher of the group may have claimed meanwhile)
        control = self.control.pick(n_control, self.owner, self.ack_timeout, now, max_held=self.max_outstanding, passed_since=passed_since)
        # Then waiting audit items, sent as any item (the labelers' answers are flagged in acknowledge()).
        waiting = self.queue.audits_waiting(room - len(control), self.owner, passed_since)
        audits = self.queue.claim(waiting, self.owner, self.ack_timeout, now, max_held=self.max_outstanding) if waiting else []
        rest = room - len(control) - len(audits)
        cands = [i for i, _ in self.queue.top_for(self.owner, rest, passed_since=passed_since)] if rest > 0 else []
        claimed = control + audits + self.queue.claim(cands, self.owner, self.ack_timeout, now, max_held=self.max_outstanding)
        if claimed:
            ids = [i for i, _ in claimed]
            version = int(self.queue.get_meta("model_version") or 0)
            for j, ((item_id, score), feats, md) in enumerate(zip(claimed, self.queue.features_of(ids), self.queue.metadata_of(ids), strict=True)):
                entry = QueueEntry(item_id, score, version, feats, now + self.ack_timeout, control_flagged(md, j < len(control)))
                self.bus.publish(self.topics.queue, entry.encode(), key=item_id.encode())
            self.bus.flush()
            self.metrics.dispatched.inc(len(claimed))
        self.metrics.outstanding.set(self.queue.n_leased_by(self.owner))
        return len(claimed)

    def step(self, timeout: float = 0.1) -> int:
        return self.acknowledge(timeout) + self.dispatch()

    def recover(self) -> None:
        """After a Redis outage: read again from the committed offsets what was consumed but not acknowledged."""
        self._labels.rewind()

    def trouble(self) -> str | None:
        """The broker away, as its labels consumer last met it (``/healthz``), else ``None``."""
        return self._labels.trouble()

    def run(self, *, burst: bool = False, should_stop: Callable[[], bool] | None = None, timeout: float = 0.2) -> None:
        """Dispatch until stopped; ``burst=True`` returns once nothing moved."""
        while not (should_stop is not None and should_stop()):
            if self.step(timeout) == 0 and burst:
                return
