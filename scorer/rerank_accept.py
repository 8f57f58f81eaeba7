"""Auto-accept at a re-rank: pending items a new version is sure of leave the queue for the auto-labels topic.

A re-rank scores every pending item with the new version anyway (``rerank_scores``'s
``on_probas``); those its thresholds accept (not while the audit pauses auto-accept, and for
multi-class models only) are **published first** to the auto-labels topic, **then** taken out of
the queue (:func:`activestream.rankedqueue.auto_take.take_auto_accepted`, only items still
waiting: a leased one stays with its labeler). A crash between the two loses nothing: the item is
still queued and the re-rank (not recorded as done: ``ranked_version`` moves only at the swap)
runs again after a restart and publishes it again under the same label id
(``auto:{item}:v{version}``), which consumers deduplicate (the export keeps one auto-label per
item; a human label is final over it).

The audited share (:func:`activestream.scorer.audit.audit_pick`) of the accepted items stays queued,
recorded as audit items, for labelers to answer blind. While the audit pauses auto-accept, nothing is
published or taken, but the items the version would accept are still flagged as audits in that share,
so the evidence to resume keeps coming.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.auto_accept import audit_room, published_audits, record_audits, take_auto_accepted
from activestream.scorer.audit import audit_pick
from activestream.scorer.autoaccept import Threshold, accepted, item_thresholds
from activestream.scorer.planning import LiveFacts, auto_label_record
from activestream.streams.bus import Bus

log = logging.getLogger(__name__)


@dataclass
class RerankAccept:
    """``on_probas`` for one re-rank: publishes the auto-labels of the accepted pending items, then takes them out.

    Parameters
    ----------
    bus, queue : where the auto-labels go and the queue they leave.
    threshold : the live version's thresholds (:func:`activestream.scorer.autoaccept.thresholds`; ``None``: paused).
    shadow : its thresholds were it not paused (what the audits while paused are picked by).
    live : the live version's facts.
    audit_share : share of the accepted items kept queued as audits.
    counter : counts the items taken from the queue.
    """

    bus: Bus
    queue: RankedQueue
    threshold: Threshold
    shadow: Threshold
    live: LiveFacts
    audit_share: float
    counter: Counter
    published: int = 0
    taken: int = 0

    def __call__(self, ids: Sequence[str], X: np.ndarray, probas: np.ndarray) -> None:
        """``ids : (n,)``, ``X : (n, n_features)``, ``probas : (n, k)`` of one chunk of the re-rank."""
        threshold = self.threshold if self.threshold is not None else self.shadow
        mask = accepted(probas, threshold)
        if not mask.any():
            return
        passed = item_thresholds(probas, threshold)
        rows = np.flatnonzero(mask).tolist()
        # Audit items whose auto-label went out already (from the stream, or at an earlier re-rank) wait in the queue for a
        # labeler's answer: not published again (one more record per version they wait) nor recorded afresh (the answer is
        # checked against the auto-label that went out).
        out = published_audits(self.queue, [ids[j] for j in rows if audit_pick(ids[j], self.audit_share)])
        rows = [j for j in rows if ids[j] not in out]
        if not rows:
            return
        picks = [j for j in rows if audit_pick(ids[j], self.audit_share)]
        # (they stay queued: take_auto_accepted leaves audit items, and the capped pool does not evict them for their rank)
        audits = set(record_audits(self.queue, {ids[j]: (self.live.classes[int(probas[j].argmax())], self.live.version) for j in picks},
                                   published=self.threshold is not None, room=audit_room(self.queue.pool.capacity)))
        if self.threshold is None:  # paused: the audits only
            return
        records = [auto_label_record(ids[j], X[j], probas[j], float(passed[j]), self.live) for j in rows]
        self.bus.publish_and_commit(None, records, [])  # first published (flushed) ...
        self.published += len(records)
        taken = len(take_auto_accepted(self.queue, [ids[j] for j in rows if ids[j] not in audits]))  # ... then out of the queue
        self.taken += taken
        self.counter.inc(taken)
        log.info("re-rank with model v%d: %d pending item(s) auto-accepted (%d taken from the queue, %d kept as audits)",
                 self.live.version, len(records), taken, len(audits))


def rerank_accept(bus: Bus, queue: RankedQueue, threshold: Threshold, shadow: Threshold, live: LiveFacts, audit_share: float,
                  counter: Counter) -> RerankAccept | None:
    """The re-rank's auto-accept, or ``None`` when the live version accepts nothing even unpaused (no threshold, not multi-class)."""
    if (threshold is None and shadow is None) or live.task != "multiclass" or not live.classes:
        return None
    return RerankAccept(bus, queue, threshold, shadow, live, audit_share, counter)
