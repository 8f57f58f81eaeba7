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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.auto_take import take_auto_accepted
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
    threshold : the live version's thresholds (:func:`activestream.scorer.autoaccept.thresholds`).
    live : the live version's facts.
    """

    bus: Bus
    queue: RankedQueue
    threshold: Threshold
    live: LiveFacts
    published: int = 0
    taken: int = 0

    def __call__(self, ids: Sequence[str], X: np.ndarray, probas: np.ndarray) -> None:
        """``ids : (n,)``, ``X : (n, n_features)``, ``probas : (n, k)`` of one chunk of the re-rank."""
        mask = accepted(probas, self.threshold)
        if not mask.any():
            return
        passed = item_thresholds(probas, self.threshold)
        rows = np.flatnonzero(mask).tolist()
        records = [auto_label_record(ids[j], X[j], probas[j], float(passed[j]), self.live) for j in rows]
        self.bus.publish_and_commit(None, records, [])  # first published (flushed) ...
        self.published += len(records)
        self.taken += len(take_auto_accepted(self.queue, [ids[j] for j in rows]))  # ... then out of the queue


def rerank_accept(bus: Bus, queue: RankedQueue, threshold: Threshold, live: LiveFacts) -> RerankAccept | None:
    """The re-rank's auto-accept, or ``None`` when the live version accepts nothing (no threshold, paused, not multi-class)."""
    if threshold is None or live.task != "multiclass" or not live.classes:
        return None
    return RerankAccept(bus, queue, threshold, live)
