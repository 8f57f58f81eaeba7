"""The scorer loop: items topic -> ONNX -> uncertainty -> Redis queue; models topic -> hot swap -> re-rank."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from schemas import DeadLetter, DecodeError, ModelVersion, decode_item, decode_model_version
from scorer.metrics import ScorerMetrics
from scorer.model import OnnxClassifier
from scorer.queue import RankedQueue
from scorer.strategies import Strategy
from streams.bus import Bus, Message, Record
from streams.topics import SCORER_GROUP, Topics

log = logging.getLogger("activestream.scorer")


def load_model_version(mv: ModelVersion) -> OnnxClassifier:
    """Open a model version's ONNX bytes (inline or from its artifact path)."""
    data = mv.onnx
    if data is None:
        assert mv.artifact_uri is not None
        data = Path(mv.artifact_uri.removeprefix("file://")).read_bytes()
        if ModelVersion.digest(data) != mv.sha256:
            raise ValueError(f"model v{mv.version}: artifact sha256 does not match")
    kind = "sigmoid" if mv.task == "multilabel" else "probabilities"
    return OnnxClassifier(data, output_kind=kind)


class Scorer:
    """Scores items as they stream in and keeps the queue ranked by the live model.

    Parameters
    ----------
    bus : where items, models and dead letters flow.
    queue : the Redis ranked queue.
    topics : topic names.
    strategy : how probabilities become scores.
    batch_size : items per micro-batch.
    n_features : expected feature dimension (else taken from the model or the first item).
    feature_names : order for named-field items.
    registry : Prometheus registry for this process's metrics.
    group : consumer group shared by all scorer processes (they split the partitions).
    """

    def __init__(
        self,
        bus: Bus,
        queue: RankedQueue,
        topics: Topics,
        *,
        strategy: Strategy | None = None,
        batch_size: int = 1000,
        n_features: int | None = None,
        feature_names: Sequence[str] | None = None,
        registry: CollectorRegistry | None = None,
        group: str = SCORER_GROUP,
    ) -> None:
        self.bus = bus
        self.queue = queue
        self.topics = topics
        self.strategy = strategy or Strategy()
        self.batch_size = batch_size
        self.n_features = n_features
        self.feature_names = list(feature_names) if feature_names else None
        self.metrics = ScorerMetrics.create(registry or CollectorRegistry())
        self._items = bus.consumer([topics.items], group)
        # Group-less: every scorer sees every model version, from the first.
        self._models = bus.consumer([topics.models], None)
        self.model: OnnxClassifier | None = None
        self.model_version = 0
        self.task = "multiclass"
        self.classes: tuple[object, ...] = ()
        self.dead_letters = 0

    # ------------------------------------------------------------------ models
    def poll_models(self, timeout: float = 0.0, *, to_end: bool = False) -> bool:
        """Load the newest model version waiting on the models topic; re-rank if one was loaded.

        ``to_end=True`` (at start-up) reads the whole models log as it stands first.
        """
        msgs = self._models.read_to_end(max(timeout, 30.0)) if to_end else self._models.consume(1000, timeout)
        newest: ModelVersion | None = None
        for m in msgs:
            try:
                mv = decode_model_version(m.value)
            except DecodeError as err:
                self.bus.publish_and_commit(None, [self._dead_letter(m, err)], [])
                continue
            if mv.version > self.model_version and (newest is None or mv.version > newest.version):
                newest = mv
        if newest is None:
            return False
        try:
            model = load_model_version(newest)
        except Exception as exc:  # a broken model must not stop scoring
            log.error("model v%s rejected: %s", newest.version, exc)
            err = DecodeError(f"model v{newest.version}", "onnx_b64", str(exc))
            self.bus.publish_and_commit(None, [self._dead_letter_raw(self.topics.models, newest.encode()[:4096], err)], [])
            return False
        self.swap(model, newest.version, newest.task, newest.classes)
        return True

    def swap(self, model: OnnxClassifier, version: int, task: str = "multiclass", classes: Sequence[object] = ()) -> int:
        """Make ``model`` live and re-rank every pending item with it. Returns items re-ranked."""
        known = self.n_features or self._queue_n_features()
        if model.n_features is not None and known is not None and model.n_features != known:
            log.error("model v%s expects %s features, items have %s: not loaded", version, model.n_features, known)
            return 0
        self.model, self.model_version, self.task, self.classes = model, version, task, tuple(classes)
        if model.n_features is not None and self.n_features is None:
            self.n_features = model.n_features
        self.metrics.model_version.set(version)
        self.queue.set_meta(model_version=version)
        return self.rerank()

    def rerank(self) -> int:
        """Re-score every pending item with the live model (leased items keep their lease)."""
        t0 = time.perf_counter()
        n = 0
        for ids, X in self.queue.iter_pending():
            self.queue.rescore(ids, self.score(X, ids))
            n += len(ids)
        self.metrics.rerank_seconds.observe(time.perf_counter() - t0)
        log.info("re-ranked %d pending items with model v%d in %.3fs", n, self.model_version, time.perf_counter() - t0)
        return n

    def score(self, X: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        """Scores for ``X : (n, n_features)`` under the live model and strategy -> ``(n,)``."""
        probas = self.model.predict_proba_many(X) if self.model is not None else None
        return self.strategy.score(probas, ids, task=self.task, version=self.model_version)

    # ------------------------------------------------------------------ items
    def _queue_n_features(self) -> int | None:
        v = self.queue.get_meta("n_features")
        return int(v) if v is not None else None

    def score_items(self, timeout: float = 0.1) -> int:
        """Consume one micro-batch of items, enqueue the valid ones, dead-letter the rest, commit.

        Returns the number of messages consumed.
        """
        msgs = self._items.consume(self.batch_size, timeout)
        if not msgs:
            return 0
        t0 = time.perf_counter()
        ids: list[str] = []
        vecs: list[np.ndarray] = []
        metas: list[dict[str, object]] = []
        dead: list[Record] = []
        seen: set[str] = set()
        for m in msgs:
            key = m.key.decode(errors="replace") if m.key is not None else None
            try:
                if self.n_features is None:
                    self.n_features = self._queue_n_features()
                item = decode_item(m.value, n_features=self.n_features, feature_names=self.feature_names, key=key)
            except DecodeError as err:
                dead.append(self._dead_letter(m, err))
                continue
            if self.n_features is None:
                self.n_features = self.queue.ensure_n_features(item.features.size)
                if item.features.size != self.n_features:
                    dead.append(self._dead_letter(m, DecodeError(item.id, "features", f"expected {self.n_features} values, got {item.features.size}")))
                    continue
            if item.id in seen:  # the same id twice in one batch: the first wins, like the queue
                continue
            seen.add(item.id)
            ids.append(item.id)
            vecs.append(item.features)
            metas.append(item.metadata)
        if ids:
            X = np.vstack(vecs)
            added = self.queue.add(ids, self.score(X, ids), X, metas)
            self.metrics.items_enqueued.inc(added)
            self.metrics.items_scored.inc(len(ids))
        # The queue write above is idempotent; dead letters and offsets move together.
        self.bus.publish_and_commit(self._items, dead, msgs)
        self.metrics.scoring_latency.observe(time.perf_counter() - t0)
        return len(msgs)

    def _dead_letter(self, m: Message, err: DecodeError) -> Record:
        return self._dead_letter_raw(m.topic, m.value, err)

    def _dead_letter_raw(self, source: str, payload: bytes, err: DecodeError) -> Record:
        dl = DeadLetter.from_error(source, payload, err)
        log.warning("dead letter from %s: %s", source, err)
        self.metrics.dead_letters.labels(source=source, reason=dl.reason_code).inc()
        self.dead_letters += 1
        return Record(self.topics.dead_letters, dl.encode(), (err.item_id or "").encode() or None)

    def close(self) -> None:
        """Leave the consumer group (uncommitted work is redelivered to the others)."""
        self._items.close()
        self._models.close()

    # ------------------------------------------------------------------ loop
    def refresh_gauges(self) -> None:
        self.metrics.queue_depth.set(self.queue.depth())
        self.metrics.leased.set(self.queue.n_leased())
        self.metrics.oldest_pending_age.set(self.queue.oldest_age())

    def step(self, timeout: float = 0.1) -> int:
        """Check for a new model, then score one micro-batch. Returns items consumed."""
        self.poll_models(0.0)
        return self.score_items(timeout)

    def run(
        self,
        *,
        burst: bool = False,
        max_messages: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        timeout: float = 0.2,
    ) -> int:
        """Score until stopped; ``burst=True`` drains what is there and returns (arq's ``burst``)."""
        total = 0
        last_gauges = 0.0
        while True:
            if should_stop is not None and should_stop():
                break
            n = self.step(timeout)
            total += n
            now = time.monotonic()
            if now - last_gauges > 1.0:
                self.refresh_gauges()
                last_gauges = now
            if burst and n == 0:
                break
            if max_messages is not None and total >= max_messages:
                break
        self.refresh_gauges()
        return total
