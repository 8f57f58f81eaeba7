"""Where a scored item goes: the labeling queue, the auto-labeled output, or nowhere (over budget).

Pure decisions over a batch's probabilities; the scorer writes the results and only
then calls :meth:`Router.update` (the select / update split of scikit-activeml's budget
managers), so a redelivered batch is decided the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from activestream.scorer.autoaccept import Threshold, accepted
from activestream.scorer.budget import VariableUncertainty, admission_rate
from activestream.scorer.uncertainty import multilabel_mean_entropy


def confidence(probas: np.ndarray, task: str = "multiclass") -> np.ndarray:
    """How sure the model is of each item, in ``[0, 1]``: ``(n, k) -> (n,)``.

    The top class probability for a softmax model; for sigmoid heads ``1 -`` the mean binary
    entropy, so an item whose heads are all sure (near 0 or 1) is confident, whichever side.
    """
    if task == "multilabel":
        return 1.0 - multilabel_mean_entropy(probas)  # type: ignore[no-any-return]
    return probas.max(axis=1)  # type: ignore[no-any-return]


@dataclass
class Routes:
    """Masks over a batch, ``(n,)`` each; exactly one is true per item."""

    queue: np.ndarray
    auto: np.ndarray
    refused: np.ndarray


@dataclass
class Router:
    """Routes scored items.

    Parameters
    ----------
    auto_threshold : confidence at or above which a multi-class prediction needs no human (one for all classes,
        or ``(k,)`` one per output column: :func:`activestream.scorer.autoaccept.thresholds`)
        (calibrated by the retrainer to the target precision; ``None`` = never).
    budget : stream budget manager; ``None`` admits every other item to the queue.
    """

    auto_threshold: Threshold = None
    shadow_threshold: Threshold = None  # the live version's thresholds were auto-accept not paused (audits go on)
    budget: VariableUncertainty | None = None
    arrival_rate: float = 0.0  # items/s, exponentially weighted over batches
    last_batch_at: float | None = None

    def observe_arrivals(self, n: int, now: float, labels_per_hour: float) -> None:
        """Hold the stream budget to ``labels_per_hour`` over the arrival rate measured so far.

        Called once per scored batch of ``n`` items, at ``now`` (monotonic seconds).
        """
        if self.budget is None:
            return
        if self.last_batch_at is not None and now > self.last_batch_at:
            rate = n / (now - self.last_batch_at)
            self.arrival_rate = rate if self.arrival_rate == 0 else 0.9 * self.arrival_rate + 0.1 * rate
        self.last_batch_at = now
        self.budget.budget = admission_rate(labels_per_hour, self.arrival_rate * 3600.0)

    def route(self, probas: np.ndarray | None, task: str = "multiclass") -> Routes:
        """Decide for ``probas : (n, k)`` (``None`` before any model: everything to the queue)."""
        if probas is None or len(probas) == 0:
            n = 0 if probas is None else len(probas)
            return Routes(np.ones(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
        conf = confidence(probas, task)
        auto = accepted(probas, self.auto_threshold) if task == "multiclass" else np.zeros(len(conf), dtype=bool)
        queue = ~auto
        if self.budget is not None and queue.any():
            admit = np.zeros(len(conf), dtype=bool)
            admit[queue] = self.budget.query(conf[queue])
            queue = admit
        return Routes(queue, auto, ~queue & ~auto)

    def update(self, probas: np.ndarray | None, routes: Routes, task: str = "multiclass") -> None:
        """Advance the budget once the batch's writes succeeded."""
        if self.budget is None or probas is None or len(probas) == 0:
            return
        candidates = ~routes.auto
        self.budget.update(confidence(probas, task)[candidates], routes.queue[candidates])

