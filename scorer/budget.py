"""Stream budgets: admit only as many items to the queue as labelers can label.

Variable uncertainty (Žliobaitė et al., 2014, "Active learning with drifting streaming
data"): an item is admitted when its confidence is below a threshold ``theta``; the
threshold tightens after each admission and loosens after each refusal, so admissions
track the budget while always preferring the least confident items. Split like
scikit-activeml's budget managers: ``query`` decides without side effects, ``update``
records what was actually admitted once the queue write succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def admission_rate(labels_per_hour: float, items_per_hour: float) -> float:
    """Share of arriving items the labelers can keep up with, in ``(0, 1]``."""
    if items_per_hour <= 0:
        return 1.0
    return float(min(1.0, max(1e-6, labels_per_hour / items_per_hour)))


@dataclass
class VariableUncertainty:
    """Budget manager over a stream of confidences.

    Parameters
    ----------
    budget : target share of items to admit, in ``(0, 1]``.
    step : relative threshold adjustment per decision (``s`` in the paper).
    theta : starting confidence threshold.
    window : the spent share is measured over roughly this many recent items.
    """

    budget: float
    step: float = 0.01
    theta: float = 1.0
    window: int = 1000
    spent: float = 0.0  # exponentially weighted share admitted recently

    def query(self, confidence: np.ndarray) -> np.ndarray:
        """Which of ``confidence : (n,)`` (max class probability) to admit, without updating state.

        Replays the threshold dynamics over the batch so a large batch is not admitted
        whole on a stale threshold.
        """
        admit, _, _ = self._run(np.asarray(confidence, dtype=np.float64))
        return admit

    def update(self, confidence: np.ndarray, admitted: np.ndarray) -> None:
        """Advance the state after ``admitted`` were written (same order as ``query``)."""
        conf = np.asarray(confidence, dtype=np.float64)
        adm = np.asarray(admitted, dtype=bool)
        decay = 1.0 / self.window
        for _c, a in zip(conf, adm, strict=True):
            within = self.spent < self.budget
            self.spent = (1 - decay) * self.spent + decay * float(a)
            # The threshold only moves while there is budget: a refusal for lack of
            # budget says nothing about how uncertain the stream is.
            if a:
                self.theta *= 1 - self.step
            elif within:
                self.theta = min(1.0, self.theta * (1 + self.step))

    def _run(self, conf: np.ndarray) -> tuple[np.ndarray, float, float]:
        theta, spent = self.theta, self.spent
        decay = 1.0 / self.window
        admit = np.zeros(len(conf), dtype=bool)
        for i, c in enumerate(conf):
            within = spent < self.budget
            ok = within and c < theta
            admit[i] = ok
            spent = (1 - decay) * spent + decay * float(ok)
            if ok:
                theta *= 1 - self.step
            elif within:
                theta = min(1.0, theta * (1 + self.step))
        return admit, theta, spent
