"""The live model for a process that reads the queue but does not rank it (the labeler API)."""

from __future__ import annotations

import logging
import threading

from activestream.scorer.versions import LiveVersion, label_cardinality, load_model_version, newest_model_version
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)


class LiveModel:
    """Follows the models topic and keeps the newest version loaded, for a process that reads
    the queue but does not rank it: the labeler API needs the live model's probabilities for
    ``+falcun`` batches. Bad model messages are the scorer's to dead-letter; here they are skipped.

    Thread-safe: the labeler API leases from several request threads.
    """

    def __init__(self, bus: Bus, topics: Topics) -> None:
        self._models = bus.consumer([topics.models], None)
        self._lock = threading.Lock()
        self.live: LiveVersion | None = None
        self._seen = 0  # newest version read, loaded or not: a version that failed to load is not retried

    @property
    def version(self) -> int:
        """The loaded version (0 before any)."""
        live = self.live
        return 0 if live is None else live.version

    def refresh(self, timeout: float = 0.0, *, to_end: bool = False) -> int:
        """Load the newest version published since the last call; returns the loaded version.

        ``to_end=True`` (at start-up) reads the whole models log as it stands first.
        """
        with self._lock:
            msgs = self._models.read_to_end(max(timeout, 30.0)) if to_end else self._models.consume(1000, timeout)
            newest, _ = newest_model_version(msgs, self._seen)
            if newest is not None:
                self._seen = newest.version
                try:
                    model = load_model_version(newest)
                except Exception as exc:  # the scorer rejects (and reports) it too
                    log.error("model v%s not loaded: %s", newest.version, exc)
                else:
                    self.live = LiveVersion(model, newest.version, newest.task, label_cardinality(newest), tuple(newest.classes))
            return self.version

    def close(self) -> None:
        self._models.close()
