"""The live estimates off the publish path: one computation at a time, on a snapshot of the training set.

:func:`activestream.retrainer.estimates.estimate` refits the campaign's model some hundred times
(tens of seconds on a busy 2-core machine): run inline, it would hold back every model version by
that much. The retrainer instead hands it a snapshot and goes on; each version carries the newest
finished estimate, with ``est_version`` and ``est_n_labels`` saying which training set it was made
from. The cheap figures (hours spent, the budget) are the version's own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Run = Callable[[], dict[str, float]]
CHEAP = ("est_hours_spent", "est_budget")  # computed with the version itself


MODES = ("background", "inline", "off")


class EstimateRunner:
    """Runs estimates in a background thread, inline (offline simulation), or not at all.

    Parameters
    ----------
    mode : ``background`` (services); ``inline`` computes each version's estimate before it is
        published (``simulate --live-estimates`` compares every version's with its test score);
        ``off``: only the cheap figures (a simulation that does not look at the estimates).
    min_interval : background: seconds at least between the starts of two estimates, so a busy
        campaign does not keep a core refitting models (the figures move slowly).
    every : inline: estimate only the versions whose label count reaches the next multiple of ``every``
        (the others carry the cheap figures only; ``None``: every version). ``demo`` estimates its last one.
    """

    def __init__(self, mode: str = "background", min_interval: float = 30.0, every: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"estimate mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        # A daemon thread, not an executor: a stopping service must not wait for an estimate to finish.
        self._running: threading.Thread | None = None
        self._result: dict[str, float] | None = None
        self._latest: dict[str, float] = {}
        self.min_interval = min_interval
        self._started_at = -math.inf
        self.every = every
        self._done_step = 0  # inline with ``every``: the multiple of it the last estimate reached

    def on_version(self, version: int, n_labels: int, run: Run, cheap: dict[str, float]) -> dict[str, float]:
        """The ``est_*`` figures version ``version`` publishes; starts an estimate of its training set when none runs."""
        if self.mode == "off":
            return dict(cheap)
        if self.mode == "inline":
            if self.every:
                if n_labels // self.every <= self._done_step:
                    return dict(cheap)
                self._done_step = n_labels // self.every
            self._latest = {**run(), "est_version": float(version), "est_n_labels": float(n_labels)}
            return {**self._latest, **cheap}
        if self._running is not None and not self._running.is_alive():
            if self._result is not None:
                self._latest = self._result
            self._running = self._result = None
        if self._running is None and time.monotonic() - self._started_at >= self.min_interval:
            self._started_at = time.monotonic()
            self._running = threading.Thread(target=self._work, args=(run, version, n_labels), name="estimates", daemon=True)
            self._running.start()
        # (Until an estimate with figures is done, the version's own "how many more" is what it carries.)
        latest = {k: v for k, v in self._latest.items() if k not in CHEAP}
        return {**latest, **cheap}

    def _work(self, run: Run, version: int, n_labels: int) -> None:
        try:
            self._result = {**run(), "est_version": float(version), "est_n_labels": float(n_labels)}
        except Exception:  # a failed estimate must not stop the retrainer: the next version tries again
            log.exception("live estimates failed; the next version tries again")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running estimate (tests); its figures go out with the next version."""
        if self._running is not None:
            self._running.join(timeout)
