"""The scorer loop: items topic -> ONNX -> uncertainty -> Redis queue; models topic -> hot swap -> re-rank."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.keys import META_CAMPAIGN, META_STOP
from activestream.rankedqueue.outage import RedisPause
from activestream.schemas import NO_FEATURE_NAMES, DeadLetter, DecodeError, ItemBatch, ModelVersion, decode_items
from activestream.scorer import versions
from activestream.scorer.admission import Admission
from activestream.scorer.audit import AUDIT_SHARE, keep_audit_metas, send_audits
from activestream.scorer.autoaccept import thresholds
from activestream.scorer.batches import BatchCounts, InflightBatch, MessageKeys, confirmed_auto_labels
from activestream.scorer.budget import VariableUncertainty
from activestream.scorer.metrics import ScorerMetrics, refresh_queue_gauges
from activestream.scorer.model import OnnxClassifier
from activestream.scorer.planning import OUTAGES, LiveFacts, Planned, first_writes, plan_batch, plan_each
from activestream.scorer.pool_counts import PoolCounts
from activestream.scorer.rerank_accept import rerank_accept
from activestream.scorer.routing import Router
from activestream.scorer.scoring import rerank_scores, score_and_probas
from activestream.scorer.strategies import Strategy
from activestream.scorer.versions import ArtifactStore, label_cardinality, load_model_version, newest_model_version
from activestream.streams.bus import Bus, Columns, CommitAborted, Message, Record
from activestream.streams.topics import SCORER_GROUP, Topics

log = logging.getLogger(__name__)

# Pending rows a new model version is run on before it goes live (a model that cannot score them is rejected).
PROBE_ROWS = 64

# Longest a new model version waits on the models topic while the scorer idles for items.
MODEL_POLL_SECONDS = 0.05
# The reasons (DeadLetter.reason_code: the field, or the whole message) an item record is dead-lettered for.
ITEM_REASONS = ("message", "id", "schema", "features", "features_b64", "metadata")
IDLE_PING_SECONDS = 2.0  # an idle scorer asks Redis this often whether it is there (a PING), so an outage pauses it
# Micro-batch writes sent to Redis but not yet confirmed. They share one connection, so Redis
# runs them in the order sent (the first write of an id wins, as with one in flight).
MAX_INFLIGHT = 3
# Offsets are committed at most this often while items stream in (a commit is a broker round
# trip: one per 1000-item batch cost a third of the scorer's time). A crash redelivers at
# most this much, and every queue write is idempotent.
COMMIT_INTERVAL_SECONDS = 0.2
# onnxruntime threads for a re-rank (a whole queue at once, in ~8,000-row blocks).
RERANK_THREADS = 2


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
    group : consumer group shared by all scorer processes (they split the partitions); ``None``: ``{prefix}.scorer``.
    auto_accept : route items the live model is confident enough about (its version's ``auto_accept_threshold``, calibrated
        on random-control labels) to the auto-labels topic instead of the queue (unless the queue already has the item).
    labels_per_hour : stream budget: admit to the queue only as many items as labelers can
        label (variable uncertainty over the measured arrival rate); ``None`` admits all.
    rerank_threads : onnxruntime threads of the session a re-rank scores the whole queue in
        (the live session keeps one, which suits micro-batches).
    commit_interval : seconds between offset commits while items stream in. Offsets are committed only after the queue writes
        of every batch they cover succeeded; a batch with dead letters commits at once (with them, atomically on a
        transactional bus), and an idle stream, :meth:`flush` and :meth:`close` commit everything written.
    artifacts : where a model version's ``artifact_uri`` may be read (default: nowhere).
    audit_share : share of auto-accepted items also sent to labelers blind (:mod:`activestream.scorer.audit`).

    A Redis outage (unreachable, or full at ``maxmemory``) is no verdict on the records:
    :meth:`step` drops the writes in flight, goes back to the committed offsets and pauses
    (``pause.reason`` says why; bounded back-off) until Redis takes writes again.
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
        group: str | None = None,
        commit_interval: float = COMMIT_INTERVAL_SECONDS,
        auto_accept: bool = True,
        labels_per_hour: float | None = None,
        rerank_threads: int = RERANK_THREADS,
        artifacts: ArtifactStore | None = None,
        audit_share: float = AUDIT_SHARE,
    ) -> None:
        self.bus = bus
        self.queue = queue
        self.topics = topics
        self.strategy = strategy or Strategy()
        self.batch_size = batch_size
        if n_features is not None:
            versions.check_width(queue, n_features)
        self.n_features = n_features
        self.feature_names = list(feature_names) if feature_names else None
        self.metrics = ScorerMetrics.create(registry or CollectorRegistry(), queue.k.namespace)
        for reason in ITEM_REASONS:  # (at 0 from the start: a series born at N is no rate, and a burst went unalerted)
            self.metrics.dead_letters.labels(source=topics.items, reason=reason)
        self._items = bus.consumer([topics.items], group or topics.group(SCORER_GROUP))
        self._models = bus.consumer([topics.models], None)  # group-less: every scorer sees every model version
        self.model: OnnxClassifier | None = None
        self.model_version = 0
        self.task = "multiclass"
        self.label_cardinality: float | None = None  # multi-label models publish it; their default strategy uses it
        self.classes: tuple[object, ...] = ()
        self.dead_letters = 0
        self._rerank_due = False
        self._rerank_tried = 0.0
        self.rerank_threads = rerank_threads
        self._rerank_model: tuple[OnnxClassifier, OnnxClassifier] | None = None  # (live model, its re-rank session)
        self.commit_interval = commit_interval
        self._inflight: deque[InflightBatch] = deque()  # oldest first
        self._asked_redis = time.monotonic()  # when a step last had Redis answer (see IDLE_PING_SECONDS)
        self._write_failed = False  # set for good by a failed queue write or commit (see _abandon_inflight)
        self.rewinds = 0  # rolled-back commits recovered from by reading again (see _rewind)
        self._uncounted = BatchCounts()  # of the batches written but not yet committed
        self._writer: object | None = None  # the one Redis connection every queue write goes out on, in order
        self._uncommitted: dict[tuple[str, int], Message] = {}
        self._assignments = 0  # the consumer's assignments when it last read (see _reassigned)
        self._last_commit = time.monotonic()
        # Auto-accept (threshold from each model version) and the stream budget, if any.
        self.auto_accept = auto_accept
        self.labels_per_hour = labels_per_hour
        self.router = Router(budget=VariableUncertainty(budget=1.0) if labels_per_hour else None)
        self.auto_accepted = self.refused = 0
        self.artifacts, self.audit_share = artifacts or ArtifactStore(), audit_share
        self._audit_metas: dict[str, dict[str, Any]] = {}  # auto-accepted audit picks' metadata, until their audit is sent
        self._next_model: ModelVersion | None = None  # the newest version read, until it is live or dead-lettered
        self.pause = RedisPause(self.metrics.paused, self.metrics.pauses)  # .reason: why the last step waited for Redis (None: it did not)
        self.admission = Admission(queue, self.metrics)  # the capped pool: only items that can enter it go to Redis
        self.pool_counts = PoolCounts(queue, self.admission.active)  # its counters: each record once, crash or not

    def poll_models(self, timeout: float = 0.0, *, to_end: bool = False) -> bool:
        """Load the newest model version waiting on the models topic; re-rank if one was loaded.

        ``to_end=True`` (at start-up) reads the whole models log as it stands first. A Redis
        outage raises (the version is tried again on the next call), never dead-letters it.
        """
        msgs = self._models.read_to_end(max(timeout, 30.0)) if to_end else self._models.consume(1000, timeout)
        newest, bad = newest_model_version(msgs, self.model_version)
        for m, err in bad:
            self.bus.publish_and_commit(None, [self._dead_letter_raw(m.topic, m.value, err)], [])
        if self._next_model is not None and (newest is None or newest.version <= self._next_model.version):
            newest = self._next_model  # consumed before an outage stopped its swap: try it again
        if newest is None:
            return False
        self._next_model = newest
        known = self.n_features or self._queue_n_features()
        probe = self._probe_rows()  # (read before the verdict: a Redis outage here is no verdict on the model)
        try:
            model = load_model_version(newest, self.artifacts)
            mismatch = versions.feature_mismatch(model, known)
            if mismatch is not None:  # refused before anything of it (auto-accept threshold, cardinality) applies
                raise ValueError(mismatch)
            failed = versions.run_problem(model, probe, known)
            if failed is not None:  # (it would make the re-rank below raise: the scorer would exit, and again at each restart)
                raise ValueError(failed)
        except Exception as exc:  # a broken model must not stop scoring
            log.error("model v%s rejected: %s", newest.version, exc)
            rejected = exc if isinstance(exc, DecodeError) else DecodeError(f"model v{newest.version}", "onnx_b64", str(exc))
            self.bus.publish_and_commit(None, [self._dead_letter_raw(self.topics.models, newest.encode()[:4096], rejected)], [])
            self._next_model = None
            return False
        self.router.auto_threshold = thresholds(newest.metrics, newest.classes) if self.auto_accept else None
        self.router.shadow_threshold = thresholds({**newest.metrics, "auto_accept_paused": 0.0}, newest.classes) if self.auto_accept else None
        self.metrics.auto_accept_paused.set(float(bool(newest.metrics.get("auto_accept_paused"))))
        self.label_cardinality = label_cardinality(newest)
        self.swap(model, newest.version, newest.task, newest.classes)
        if self.model_version == newest.version:  # (the labeling page's stop banner; a user's version keeps the campaign's figures)
            record = versions.campaign_record(newest, self.queue.get_meta(META_CAMPAIGN))
            self.queue.set_meta(**{META_STOP: json.dumps(versions.stop_signal(newest.version, record["metrics"])),  # type: ignore[arg-type]
                                   META_CAMPAIGN: json.dumps(record)})
        self._next_model = None
        return True

    def swap(self, model: OnnxClassifier, version: int, task: str = "multiclass", classes: Sequence[object] = ()) -> int:
        """Make ``model`` live and re-rank every pending item with it. Returns items re-ranked."""
        mismatch = versions.feature_mismatch(model, self.n_features or self._queue_n_features())
        if mismatch is not None:
            log.error("model v%s %s: not loaded", version, mismatch)
            return 0
        self.flush()  # what was scored with the old model is in the queue before the re-rank reads it
        self.model, self.model_version, self.task, self.classes = model, version, task, tuple(classes)
        if model.n_features is not None and self.n_features is None:
            self.n_features = model.n_features
        self.metrics.model_version.set(version)
        # (the labeling page shows the live model's classes as answer buttons)
        self.queue.set_meta(model_version=version, classes=json.dumps(list(self.classes), default=str), task=task)
        return self.rerank()

    def rerank(self) -> int:
        """Re-score every pending item with the live model and swap the new ranking in.

        One bulk re-rank per queue at a time (:meth:`RankedQueue.rerank`): when another
        scorer already runs one, this one retries from :meth:`step` until the queue is
        ranked by a version at least as new as its own. A queue already ranked by the
        live version (e.g. after a restart) is left as it is. Returns items re-ranked.
        """
        if self.model is None or self.queue.ranked_version() >= self.model_version:
            self._rerank_due = False
            return 0
        t0 = time.perf_counter()
        # A session of its own with more threads: the re-rank scores the whole queue at once,
        # while the live session stays single-threaded for micro-batches.
        if self._rerank_model is None or self._rerank_model[0] is not self.model:
            self._rerank_model = (self.model, self.model.with_threads(self.rerank_threads))
        model = self._rerank_model[1]
        # The width the model reads: its input's, else (a symbolic input width) the namespace's.
        width = self.model.n_features or self.n_features or self._queue_n_features()
        live = LiveFacts(self.model_version, self.task, self.classes, self.topics.auto_labels, self.labels_per_hour)
        accept = rerank_accept(self.bus, self.queue, self.router.auto_threshold, self.router.shadow_threshold, live, self.audit_share,
                               self.metrics.items_auto_accepted_at_rerank)  # (sure of an item: it leaves the queue)
        def scores(ids: Sequence[str], X: np.ndarray) -> np.ndarray:
            return rerank_scores(X, ids, model, self.strategy, width=width, task=self.task, version=self.model_version,
                                 label_cardinality=self.label_cardinality, on_probas=accept)

        n = self.queue.rerank(scores, version=self.model_version)
        self._rerank_due, self._rerank_tried = n is None, time.monotonic()
        if n is None:
            log.info("another scorer is re-ranking the queue; model v%d will re-rank it later if still needed", self.model_version)
            return 0
        self.metrics.rerank_seconds.observe(time.perf_counter() - t0)
        self.admission.refresh()
        log.info("re-ranked %d pending items with model v%d in %.3fs", n, self.model_version, time.perf_counter() - t0)
        return n

    def score(self, X: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        """Scores for ``X : (n, n_features)`` under the live model and strategy -> ``(n,)``."""
        return self.score_and_probas(X, ids)[0]

    def score_and_probas(self, X: np.ndarray, ids: Sequence[str], model: OnnxClassifier | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(scores (n,), probas (n, k) or None before any model)``; ``model``: a session of the live model to run it in."""
        return score_and_probas(X, ids, model or self.model, self.strategy, task=self.task, version=self.model_version,
                                label_cardinality=self.label_cardinality)

    def _probe_rows(self, n: int = PROBE_ROWS) -> np.ndarray | None:
        """Up to ``n`` rows of the queue's top pending items, a new model is tried on before it goes live (``None``: none)."""
        ids = [item for item, _ in self.queue.top(n)]
        rows = [f for f in self.queue.features_of(ids) if f is not None]
        return np.stack(rows) if rows and len({len(r) for r in rows}) == 1 else None

    def _queue_n_features(self) -> int | None:
        v = self.queue.get_meta("n_features")
        return int(v) if v is not None else None

    def score_items(self, timeout: float = 0.1) -> int:
        """Consume one micro-batch of items, enqueue the valid ones, dead-letter the rest, commit.

        Returns the number of messages consumed.
        """
        if self._write_failed:
            raise RuntimeError("a queue write or commit failed earlier; restart the scorer (everything after the last commit is redelivered)")
        vb = self._items.consume_values(self.batch_size, timeout)  # columns: the Kafka adapter builds no Message per record
        if self._items.assignments != self._assignments and self._reassigned():
            return len(vb.values)  # (it may hold records read before the handover: it comes again)
        if not vb.values:
            self.flush()
            self.admission.idle()
            return 0
        rewinds = self.rewinds
        for part, counted in self.pool_counts.split(vb):
            if self.rewinds == rewinds:  # (a rewind while the first part was written: everything comes again)
                self._score_batch(part, counted)
        return len(vb.values)

    def _decode(self, values: Sequence[bytes], keys: MessageKeys) -> ItemBatch:
        """The batch's items; named-field ones met without names first read the names the campaign recorded since."""
        batch = decode_items(values, n_features=self.n_features, feature_names=self.feature_names, keys=keys)
        if self.feature_names is None and any(err.reason == NO_FEATURE_NAMES for _, err in batch.errors):
            self.feature_names = self.queue.feature_names()  # (a table's header given to produce after this scorer started)
            if self.feature_names is not None:
                batch = decode_items(values, n_features=self.n_features, feature_names=self.feature_names, keys=keys)
        return batch

    def _score_batch(self, vb: Columns, counted: bool) -> None:
        """Decode, score and plan one consumed batch, and send its queue write (``counted``: see :class:`PoolCounts`)."""
        values, commit_msgs, message_at, key_at = vb.values, vb.last, vb.message, vb.key
        rewinds = self.rewinds
        t0 = time.perf_counter()
        if self.n_features is None:
            self.n_features = self._queue_n_features()
        batch = self._decode(values, MessageKeys(key_at, len(values)))
        errors = batch.errors
        if self.n_features is None and batch.ids:  # the first items ever: they fix the dimension
            self.n_features = self.queue.ensure_n_features(batch.features.shape[1])
            if batch.features.shape[1] != self.n_features:
                got = batch.features.shape[1]
                errors = sorted(errors + [(i, DecodeError(item_id, "features", f"expected {self.n_features} values, got {got}"))
                                          for i, item_id in zip(batch.index, batch.ids, strict=True)], key=lambda e: e[0])
                batch.ids, batch.features, batch.metadata, batch.index = [], batch.features[:0], [], []
        ids, X, metas, index, repeated = first_writes(batch.ids, batch.features, batch.metadata, batch.index)  # (an id twice: the first wins)
        counts = BatchCounts(read=len(values), duplicate=repeated)
        plan = self._plan_guarded(ids, X, metas, index, t0)
        counts.add(plan.counts)
        errors = sorted(errors + plan.errors, key=lambda e: e[0])
        dead = [self._dead_letter_raw(self.topics.items, message_at(i).value, err, counts) for i, err in errors]
        ids, X, metas, scores, auto = plan.ids, plan.X, plan.metas, plan.scores, plan.auto
        keep_audit_metas(self._audit_metas, plan.auto_metas, self.audit_share)
        ids, scores, X, metas = self.admission.filter(ids, scores, X, metas, counts)
        # Pipelined: earlier batches' writes ran in Redis while this one was decoded and
        # scored. Up to MAX_INFLIGHT stay sent but unconfirmed, so Redis has the next one
        # queued when it finishes a batch instead of idling for the round trip; the oldest
        # are confirmed (and committed per the policy) first, in order.
        while len(self._inflight) >= MAX_INFLIGHT:
            self._finish_oldest()
        if self.rewinds != rewinds:  # a commit failed and the consumer went back: this batch comes again
            return
        if (ids or auto) and self._writer is None:
            self._writer = self.queue.writer()
        # The auto-accepted ids are looked up in the queue in the same round trip, after every
        # earlier write: one this batch's first read queued (before a rolled-back commit or a
        # crash, under a model that did not accept it) stays queued and is not auto-labeled too.
        pending = (self.queue.add_nowait(ids, scores, X, metas, conn=self._writer, check=list(auto), sampling=self.admission.kept_keys)
                   if ids or auto else None)
        self._inflight.append(InflightBatch(pending, dead, auto, commit_msgs, counts, t0, counted))
        if self.pause.reason is not None:  # paused for Redis: this batch probes it, confirmed before another is read
            self._finish_write()

    def _plan_guarded(self, ids: list[str], X: np.ndarray, metas: list[dict[str, object]], index: list[int], now: float) -> Planned:
        """:func:`plan_batch`; should it raise (not for an outage), the items are planned one at a time and those that fail are dead letters."""
        live = LiveFacts(self.model_version, self.task, self.classes, self.topics.auto_labels, self.labels_per_hour)
        def plan(ids: list[str], X: np.ndarray, metas: list[dict[str, object]], index: list[int]) -> Planned:
            return plan_batch(ids, X, metas, index, score=self.score_and_probas, router=self.router, live=live, now=now)

        try:
            return plan(ids, X, metas, index)
        except OUTAGES:
            raise
        except Exception as exc:
            log.warning("scoring a batch of %d items failed (%s: %s); scoring them one at a time", len(ids), type(exc).__name__, exc)
        return plan_each(ids, index, X.shape[1], lambda j: plan([ids[j]], X[j : j + 1], [metas[j]], [index[j]]))

    def _finish_write(self) -> None:
        while self._inflight:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        w = self._inflight[0]
        try:
            added = w.pending.result() if w.pending is not None else 0
        except BaseException:  # (an interrupt too: this batch is not known to be written)
            self._abandon_inflight()
            raise
        self._inflight.popleft()
        self.admission.confirmed(w.pending, w.counts)
        self.metrics.items_enqueued.inc(added)  # (a fact about Redis, whatever becomes of the offsets)
        # An id the queue already had makes its record a duplicate, whoever queued it: an earlier
        # record of that id, or this record's own earlier read whose commit did not happen (a
        # crash, a rollback), which was not counted. So each record read counts once.
        w.counts.duplicate += w.counts.scored - added
        w.counts.scored = added
        records = w.dead + confirmed_auto_labels(w)
        self._uncounted.add(w.counts)
        self.pool_counts.confirmed(w.counts.streamed, w.counts.rejected, w.counts.read, w.msgs, w.counted)
        for m in w.msgs:  # in order: the last one per partition carries its highest offset
            self._uncommitted[(m.topic, m.partition)] = m
        if records or time.monotonic() - self._last_commit >= self.commit_interval:
            self._commit(records)
        self.metrics.scoring_latency.observe(time.perf_counter() - w.t0)

    def _abandon_inflight(self) -> None:
        # A write failed: from here on nothing may commit, or offsets would move past the
        # failed batch's items (the consumer has already read beyond them). Forget every write
        # in flight first, then read their replies only to free the connections; a restart
        # redelivers everything after the last commit, and queue writes are idempotent.
        self._write_failed = True
        self._drop_inflight()

    def _drop_inflight(self) -> None:
        """Forget every write in flight (none of them will commit); read their replies to free the connections."""
        abandoned, self._inflight = self._inflight, deque()
        for w in abandoned:
            if w.pending is not None:
                with contextlib.suppress(Exception):
                    self.metrics.items_enqueued.inc(w.pending.result())  # what did land stays in the queue

    def _commit(self, dead: list[Record]) -> None:
        if self._write_failed:
            log.warning("not committing: a queue write or commit failed; a restarted scorer gets everything after the last commit again")
            return
        # The queue writes are idempotent and done; dead letters and offsets move together.
        if self._uncommitted or dead:
            if not self.pool_counts.flush():  # (before the commit: a crash between the two must not lose the counts)
                self._rewind(CommitAborted("another scorer counted some of these records first (a rebalance moved their partition)",
                                           rolled_back=True, group_moved=True))
                return
            try:
                self.bus.publish_and_commit(self._items, dead, list(self._uncommitted.values()))
            except CommitAborted as exc:
                if not (exc.rolled_back and exc.group_moved):  # anything else fails the same way on every retry
                    self._write_failed = True
                    raise
                self._rewind(exc)
                return
            except BaseException:
                # Its dead letters and offsets did not go out together: commit nothing more
                # (close() must not commit those offsets without the dead letters).
                self._write_failed = True
                raise
            self._uncommitted.clear()
            send_audits(self.queue, dead, self.topics.auto_labels, self.audit_share, self._audit_metas)  # (committed: the auto-labels went out)
        self._count(self._uncounted)
        self._uncounted = BatchCounts()
        self._last_commit = time.monotonic()

    def _count(self, c: BatchCounts) -> None:
        self.metrics.items_read.inc(c.read)
        self.metrics.items_scored.inc(c.scored)
        self.metrics.items_duplicate.inc(c.duplicate)
        self.metrics.items_auto_accepted.inc(c.auto_accepted)
        self.metrics.items_over_budget.inc(c.refused)
        self.auto_accepted, self.refused = self.auto_accepted + c.auto_accepted, self.refused + c.refused
        for source, reason in c.dead:
            self.metrics.dead_letters.labels(source=source, reason=reason).inc()
        self.dead_letters += len(c.dead)
        self.admission.committed(c)

    def _rewind(self, exc: CommitAborted) -> None:
        # The transaction was rolled back because the group rebalanced under it: none of its
        # dead letters, auto-labels or offsets took effect. Everything read since the last
        # commit is read again. score_items drops the batch it holds.
        log.warning("scorer commit rolled back (%s); reading again from the last committed offsets", exc)
        self._read_again()
        self.rewinds += 1
        self.metrics.commit_rewinds.inc()

    def _reassigned(self) -> bool:
        # The group handed the consumer its partitions again (a member joined or left): it went back to the
        # committed offset of each partition it kept, and another member reads the ones it lost. What was read
        # since the last commit comes again, so counting its first reading too would count it twice (the pool's
        # counters let it through: their mark in Redis is this scorer's own). Forget it all and read again from
        # the committed offsets, which also drops a batch that mixed records from before and after the handover.
        # Returns whether it read again (not at the first assignment: nothing was read before it).
        first, self._assignments = self._assignments == 0, self._items.assignments
        if first:
            return False
        log.info("scorer's partitions handed out again; reading again from the last committed offsets")
        self._read_again()
        return True

    def _read_again(self, drop_writer: bool = False) -> None:
        """Forget what waits to be committed, let the writes in flight finish without committing them (they are
        idempotent and will be redone) and send the consumer back to the committed offsets (``drop_writer``: and
        close the queue-write connection, whose half-read reply must not be read as the next one)."""
        self._uncommitted.clear()
        self._uncounted = BatchCounts()
        self._drop_inflight()
        self.pool_counts.read_again()
        self._audit_metas.clear()  # (their records come again)
        if drop_writer and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.disconnect()  # type: ignore[attr-defined]
            self.queue.release_writer(self._writer)
            self._writer = None
        try:
            self._items.rewind()  # (a broker away too raises: only a restart is safe then)
        except BaseException:
            self._write_failed = True  # still past the dropped batches: only a restart is safe
            raise
        self._last_commit = time.monotonic()

    def flush(self) -> None:
        """Confirm the micro-batch in flight and commit the offsets of everything written."""
        self._finish_write()
        self._commit([])

    def _dead_letter_raw(self, source: str, payload: bytes, err: DecodeError, counts: BatchCounts | None = None) -> Record:
        """The dead-letter record; it is counted in ``counts`` (its batch's, counted at commit) or at once."""
        dl = DeadLetter.from_error(source, payload, err)
        log.warning("dead letter from %s: %s", source, err)
        if counts is None:
            self._count(BatchCounts(dead=[(source, dl.reason_code)]))
        else:
            counts.dead.append((source, dl.reason_code))
        return Record(self.topics.dead_letters, dl.encode(), dl.key)

    def close(self) -> None:
        """Commit what was written, then leave the consumer group (the rest is redelivered to the others)."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self.queue.release_writer(self._writer)
                self._writer = None
            self._items.close()
            self._models.close()

    def lag(self) -> int:
        """Item records after this scorer's position on its partitions (the consumer-lag gauge)."""
        return self._items.lag()

    def trouble(self) -> str | None:
        """Why it cannot score now (``/healthz``): Redis away (paused), or the broker away (its lag gauge, read from the
        last fetch, would say nothing is unread); ``None`` when neither."""
        return self.pause.reason or self._items.trouble()

    def refresh_gauges(self) -> None:
        refresh_queue_gauges(self.metrics, self.queue)

    def recover(self) -> None:
        """After a Redis outage: drop what is in flight or uncommitted; read again from the committed offsets."""
        self._read_again(drop_writer=True)  # (a count sent as Redis went away may or may not have been applied: read the marks again)
        self._write_failed = False  # (the writes that failed were dropped: they come again)

    def step(self, timeout: float = 0.1) -> int:
        """Check for a new model, then score one micro-batch. Returns items consumed.

        While no item arrives the models topic is checked every ``MODEL_POLL_SECONDS``, so a new
        version goes live that fast on an idle stream too. A Redis outage: 0 after a wait (:class:`RedisPause`).
        """
        deadline = time.monotonic() + timeout

        def once() -> int:
            self.poll_models(0.0)
            if self._rerank_due and time.monotonic() - self._rerank_tried >= 1.0:
                self.rerank()
            n = self.score_items(max(0.0, min(MODEL_POLL_SECONDS, deadline - time.monotonic())))
            now = time.monotonic()
            if n == 0 and now - self._asked_redis >= IDLE_PING_SECONDS:
                # An idle stream asks Redis nothing: a Redis away went unseen (/healthz ok, the queue gauges frozen).
                self.queue.r.ping()
                self._asked_redis = now
            elif n:
                self._asked_redis = now
            return n

        while True:
            n = self.pause.run(once, self.recover, self.queue.r.ping)
            if n or time.monotonic() >= deadline or self.pause.reason is not None:
                return n

    def run(self, *, burst: bool = False, max_messages: int | None = None, should_stop: Callable[[], bool] | None = None,
            timeout: float = 0.2) -> int:
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
        self.flush()
        self.refresh_gauges()
        return total
