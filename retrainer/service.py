"""The retrainer loop: labels topic -> training set -> fit -> ONNX -> validate -> models topic."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort
from prometheus_client import CollectorRegistry

from activestream.rankedqueue.pool import SamplingKeyCache
from activestream.retrainer.campaign import CampaignMonitor
from activestream.retrainer.control_log import ControlObservation, load_control_log
from activestream.retrainer.estimate_runner import EstimateRunner
from activestream.retrainer.estimates import Labeled, trainer_fit, walked_sample
from activestream.retrainer.estimator import EstimatorError, EstimatorFactory, EstimatorTrainer, FittedEstimator, make_trainer
from activestream.retrainer.export import model_to_onnx
from activestream.retrainer.label_fit import fit_to_campaign
from activestream.retrainer.logs import dead_lettered_labels, newest_versions
from activestream.retrainer.metrics import RetrainerMetrics
from activestream.retrainer.onnx_run import predict as _predict  # (the names the core always used)
from activestream.retrainer.onnx_run import session as _session
from activestream.retrainer.oof_control import score_out_of_fold
from activestream.retrainer.stopping import StopRules
from activestream.retrainer.trainer import LinearHeads, NotEnoughClasses, Trainer
from activestream.retrainer.training_set import TrainingSet, arrays
from activestream.retrainer.validate import check_outputs, holdout_accuracy, no_regression
from activestream.schemas import (
    FREE_SOURCES,
    MAX_DEAD_LETTER_PAYLOAD,
    DeadLetter,
    DecodeError,
    Label,
    ModelVersion,
    decode_label,
    decode_model_version,
)
from activestream.schemas.errors import show
from activestream.schemas.fields import LabelValue
from activestream.streams.bus import TROUBLE_SECONDS, BrokerUnavailable, Bus, Consumer, Message
from activestream.streams.topics import MODEL_KEY, Topics

log = logging.getLogger(__name__)

#: Model versions :attr:`Retrainer.published` keeps (the newest): what tests and ``simulate`` look at, not a history.
PUBLISHED_KEPT = 4

PUBLISH_TIMEOUT = 30.0  # seconds a new version waits for the broker's acknowledgement before the loop goes on
UNDELIVERED_WAIT = 2.0  # seconds each later step waits for it


class WidthConflict(ValueError):
    """The feature width a retrainer was given is not its campaign's (see :meth:`Retrainer.rebuild`): a refusal."""


class Retrainer:
    """Turns labels into validated model versions.

    Its training set is rebuilt from the labels topic on every start (a group-less
    reader from the beginning), so a restart neither loses a label nor counts one twice.

    Parameters
    ----------
    bus, topics : where labels come from and model versions go.
    task : ``"multiclass"``, ``"multilabel"`` or ``"auto"`` (from the first label).
    retrain_every : retrain after this many new labels ...
    retrain_interval : ... or this many seconds after an unused label arrived.
    full_refit_every : every N-th version is fitted from scratch instead of warm-started.
    holdout_fraction : share of labeled items kept for the no-regression check.
    tolerance : largest held-out accuracy drop a new version may have.
    min_holdout : the regression check needs at least this many held-out items.
    n_members : ensemble heads per version (see :class:`retrainer.trainer.Trainer`).
    n_features : feature vector length every label must have; ``None`` takes the first
        accepted label's (a label of another length is dead-lettered, like an item the
        scorer refuses).
    estimator : a factory of the classifier to fit (``--estimator``); ``None``: the default
        standardized logistic regression heads.
    estimates : where the live estimates run: ``background`` (a thread: versions never wait for them),
        ``inline`` or ``off`` (:class:`~activestream.retrainer.estimate_runner.EstimateRunner`).
    estimates_every : inline: estimate a version only when its labels reach the next multiple of this (``None``: every version).
    classes : the campaign's declared classes (``ACTIVESTREAM_CLASSES``): a label outside them is dead-lettered; ``None``: any.
    resume : when the newest version at start is a user's (``publish-model``), publish own
        versions over it; else (the default) hold until started with ``--resume``. A user version
        published while running always holds.
    """

    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        *,
        task: str = "auto",
        retrain_every: int = 10,
        retrain_interval: float = 30.0,
        full_refit_every: int = 10,
        holdout_fraction: float = 0.1,
        tolerance: float = 0.05,
        min_holdout: int = 20,
        C: float = 1.0,
        registry: CollectorRegistry | None = None,
        stop_rules: StopRules | None = None,
        auto_accept_precision: float = 0.99,
        stop_set_size: int = 1000,
        n_members: int = 1,
        n_features: int | None = None,
        namespace: str = "default",
        estimator: EstimatorFactory | None = None,
        resume: bool = False,
        budget: int | None = None,
        estimates: str = "background",
        estimates_every: int | None = None,
        classes: Sequence[LabelValue] | None = None,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.task = task
        self.classes = classes  # (declared: a label outside them is dead-lettered)
        self.retrain_every = retrain_every
        self.retrain_interval = retrain_interval
        self.tolerance = tolerance
        self.min_holdout = min_holdout
        self.metrics = RetrainerMetrics.create(registry or CollectorRegistry(), namespace)
        self.training = TrainingSet(holdout_fraction)
        self._sampling_keys = SamplingKeyCache()  # (of every label in use, at every version: each id hashed once)
        self._full_refit_every = full_refit_every
        self._C = C
        self._n_members = n_members
        self._trainer: Trainer | EstimatorTrainer | None = None
        self._estimator = estimator
        self.resume = resume
        self.holding: int | None = None  # the user version held: no own version goes over it
        self._own_sha: str | None = None  # of the version this process published last (while it is the newest)
        self._labels = bus.consumer([topics.labels], None)
        self._unused = 0
        self._first_unused_at: float | None = None
        self.version = 0
        self._live: ort.InferenceSession | None = None
        self._live_classes: tuple[object, ...] = ()
        # The newest versions this process published (each holds its whole ONNX graph: a long-running retrainer publishes
        # one every few labels, so all of them would grow its memory with the campaign's age); n_published counts them all.
        self.published: deque[ModelVersion] = deque(maxlen=PUBLISHED_KEPT)
        self.n_published = 0
        self.last_error: str | None = None
        # A version published but not acknowledged yet (the broker away): delivered, or sent again, before anything else.
        self._undelivered: tuple[ModelVersion, ort.InferenceSession, tuple[object, ...], float] | None = None
        self._broker_trouble: tuple[float, str] | None = None  # (monotonic, text) of the last publish the broker did not take
        rules = stop_rules or StopRules(budget=budget)  # (the budget is a stop rule too, as in simulate)
        self.campaign = CampaignMonitor(rules, auto_accept_precision, stop_set_size, budget=budget,
                                        estimate_runner=EstimateRunner(estimates, every=estimates_every))
        self._replaying = False
        self._dead_lettered: set[bytes] = set()  # digests of the label payloads dead-lettered (see _dead_letter)
        self._latest_digest = ""
        self._stop_items: Consumer | None = bus.consumer([topics.items], None)
        self._live_published_at = 0.0  # when the live version was published (see _fold)
        self._observed: dict[str, ControlObservation] = {}  # label id -> first observation (control log)
        self._audited: set[str] = set()  # items whose audit answer counted: the first (the dispatcher's flagged copy comes after)
        self._unscored: dict[str, Label] = {}  # item id -> its control label that came before any model (see oof_control)
        self._control_of_item: dict[str, ControlObservation] = {}  # item id -> its first control observation (corrections reuse it)
        self._label_kind: str | None = None  # "integers" or "strings", fixed by the first label
        self.n_features = n_features  # else fixed by the first label
        self._load_latest_version()
        self._observed.update(load_control_log(self.bus, self.topics.control))
        # Group-less, from the start: versions published by others (a user) while this one runs.
        self._models = bus.consumer([topics.models], None)

    def _load_latest_version(self) -> None:
        newest, own = newest_versions(self.bus, self.topics)
        if newest is not None:
            self.version = newest.version
            self._latest_digest = newest.label_ids_digest
            campaign = own.metrics if own is not None else {}  # (a user's version has no stop rules or auto-accept record)
            self.campaign.restore(campaign)
            self.metrics.campaign.show(campaign)
            self._take_live(newest)
            self.metrics.model_version.set(self.version)
            if newest.source == "user":
                if self.resume:
                    log.warning("resuming over user model v%d (--resume): own versions from v%d on, once they pass the "
                                "no-regression check against it", newest.version, newest.version + 1)
                else:
                    self._hold(newest.version)

    def _take_live(self, mv: ModelVersion) -> None:
        """Make ``mv`` the live model new candidates are checked against (kept as it is when it cannot be opened)."""
        if mv.onnx is None:
            return
        try:
            sess = _session(mv.onnx)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors have no common base; a user model may be anything
            log.error("model v%d cannot be opened here (%s): candidates are checked against the previous one", mv.version, exc)
            return
        self._live, self._live_classes, self._live_published_at = sess, mv.classes, mv.created_at

    def _hold(self, version: int) -> None:
        self.holding = version
        self.metrics.holding_user_version.set(version)
        log.warning("user model v%d is live: holding (labels are still read and kept, no version is published) "
                    "until restarted with `activestream retrainer --resume` or ACTIVESTREAM_RETRAINER_RESUME=1", version)

    def watch_models(self, timeout: float = 0.0) -> int:
        """Take in versions published by others since the last call: the version number moves up to
        theirs (own versions never go below a user's), and a user's version is held. Returns how many."""
        n = 0
        for m in self._models.consume(1000, timeout):
            try:
                mv = decode_model_version(m.value)
            except DecodeError:
                continue
            # A user's version numbered like the one this process just published (both took the next
            # number at once) counts as newer: scorers may serve either, and publish-model renumbers it.
            clash = mv.version == self.version and self._own_sha is not None and mv.sha256 != self._own_sha and mv.source == "user"
            if mv.version < self.version or (mv.version == self.version and not clash):
                continue  # own versions, and those read at start
            self._own_sha = None
            n += 1
            self.version = mv.version
            self.metrics.model_version.set(self.version)
            self._latest_digest = mv.label_ids_digest
            self._take_live(mv)
            if mv.source == "user":
                self._hold(mv.version)
            else:
                log.info("model v%d published by another retrainer", mv.version)
        return n

    # ------------------------------------------------------------------ labels
    def ingest(self, timeout: float = 0.1, max_messages: int = 10_000) -> int:
        """Fold waiting labels into the training set. Returns messages consumed."""
        msgs = self._labels.consume(max_messages, timeout)
        for m in msgs:
            self.fold_payload(m.value, m.key)
        return len(msgs)

    def fold_payload(self, value: bytes, key: bytes | None = None) -> bool:
        """Decode one labels-topic message and fold it in; bad ones go to the dead letters.

        Used by :meth:`ingest` and by the faust-streaming agent. Returns whether it was valid.
        """
        try:
            label = decode_label(value, key=key.decode(errors="replace") if key is not None else None)
            if label.features is None:
                raise DecodeError(label.item_id, "features_b64", "missing: the retrainer needs the item's features")
        except DecodeError as err:
            self._dead_letter(value, err)
            return False
        observed: list[ControlObservation] = []
        try:  # (no I/O in _fold: an exception there is this label's doing, not an outage's)
            rejected = self._fold(label, observed)
        except Exception as exc:  # a label that passed decoding must still never stop the retrainer
            log.exception("training on label %r failed", label.label_id)
            rejected = DecodeError(label.item_id, None, f"training on it failed: {type(exc).__name__}: {show(str(exc))}")
        for obs in observed:
            self.bus.publish(self.topics.control, obs.encode(), key=obs.label_id.encode())
            self.bus.flush()
        if rejected is not None:  # (the bytes as read, not the label encoded again: export and a restart match them)
            self._dead_letter(value, rejected)
            return False
        return True

    def trouble(self) -> str | None:
        """The broker away, as the labels reader last met it or a publish it did not take (``/healthz``), else ``None``."""
        if self._undelivered is not None and self._broker_trouble is not None:
            return self._broker_trouble[1]
        if self._broker_trouble is not None and time.monotonic() - self._broker_trouble[0] < TROUBLE_SECONDS:
            return self._broker_trouble[1]
        return self._labels.trouble()

    def close_labels_reader(self) -> None:
        """Close the group-less labels reader: called by an engine that reads new labels
        another way once :meth:`rebuild` is done (the faust agent), so the idle reader does
        not keep prefetching the labels log."""
        self._labels.close()

    def rebuild(self, timeout: float = 120.0) -> int:
        """Fold the labels log up to its current end (start-up); returns messages read.

        A bad label is dead-lettered here unless the dead-letters topic holds it already
        (it was read before the restart): one that arrived while no retrainer ran gets
        its dead letter, and none is sent twice. When the newest published version was
        trained on exactly these labels, no retrain is due.
        """
        msgs = self._labels.read_to_end(timeout)
        self._dead_lettered |= dead_lettered_labels(self.bus, self.topics, timeout)
        self._check_width(msgs)
        self._replaying = True
        try:
            for m in msgs:
                self.fold_payload(m.value, m.key)
        finally:
            self._replaying = False
        if self._latest_digest and self.training.digest() == self._latest_digest:
            self._unused, self._first_unused_at = 0, None
        return len(msgs)

    def _check_width(self, msgs: Sequence[Message]) -> None:
        """Refuse a feature width set for the campaign (``ACTIVESTREAM_N_FEATURES``) that none of its labels log's labels has
        (those dead-lettered before aside: a stray label of another campaign): every label would be dead-lettered, and
        ``export`` leaves out what the retrainer refused (a multi-campaign audit: a retrainer started for 20 s with another
        campaign's width emptied its export)."""
        if self.n_features is None:
            return
        widths: dict[int, int] = {}
        first: dict[int, str] = {}
        for m in msgs:
            if hashlib.sha256(m.value[:MAX_DEAD_LETTER_PAYLOAD]).digest() in self._dead_lettered:
                continue
            try:
                label = decode_label(m.value)
            except DecodeError:
                continue
            if label.features is not None:
                if label.features.size == self.n_features:
                    return
                widths[label.features.size] = widths.get(label.features.size, 0) + 1
                first.setdefault(label.features.size, label.item_id)
        if widths:
            common = max(widths, key=lambda w: widths[w])
            raise WidthConflict(f"n_features={self.n_features}, but none of the labels log's labels has that width ({widths[common]} "
                                f"have {common} features, the first: item {first[common]!r}): unset ACTIVESTREAM_N_FEATURES, or use "
                                "the campaign's own settings")

    def _fold(self, label: Label, observed: list[ControlObservation]) -> DecodeError | None:
        """Fold a decoded label in; why it does not fit the campaign (its dead letter's reason), else ``None``.

        Control observations to publish are appended to ``observed`` (the caller publishes: no I/O here).
        """
        fitted, self.task, self._label_kind = fit_to_campaign(label, self.n_features, self.task, self._label_kind, self.classes)
        if isinstance(fitted, DecodeError):
            return fitted
        label = fitted
        if self.n_features is None:
            self.n_features = label.features.size if label.features is not None else 0
        if label.control and self.task == "multiclass" and label.label_id not in self.training.label_ids:
            self._observe_control(label, observed)
        if label.audit and label.item_id not in self._audited:  # (a blind answer on an auto-accepted item)
            self._audited.add(label.item_id)
            self.campaign.record_audit(label.audited_label == label.label)
        status = self.training.add(label)
        if status == "duplicate":
            self.metrics.labels_duplicate.inc()
            return None
        self.metrics.labels_received.inc()
        self.metrics.labels_by_source.labels(source=label.source).inc()  # (imported baseline labels apart from the campaign's)
        self.metrics.training_set_size.set(len(self.training))
        self._unused += 1
        if self._first_unused_at is None:
            self._first_unused_at = time.monotonic()
        return None

    def _observe_control(self, label: Label, observed: list[ControlObservation]) -> None:
        """Calibration data: how the live model did on a control label it has not trained on.

        The first observation of each label is logged (``topics.control``); a replay after a
        restart takes it from there, because the live model may have trained on the label
        since. A replayed label without one is observed now only if it was made after the live
        version was published (so that version cannot have trained on it).
        """
        seen = self._observed.get(label.label_id)
        if seen is not None:
            self.campaign.record_control(seen.confidence, seen.correct, seen.predicted, item_id=label.item_id)
            self._control_of_item.setdefault(label.item_id, seen)
            return
        first = self._control_of_item.get(label.item_id)
        if first is not None and first.predicted is not None:
            # A corrected answer to a control pick: the pick counts once, as its newest answer, judged against what the
            # model predicted before it trained on the item (the first observation's: the live one may have since).
            obs = ControlObservation(label.label_id, first.confidence, bool(first.predicted == label.label), first.version, first.predicted)
            self.campaign.record_control(obs.confidence, obs.correct, obs.predicted, item_id=label.item_id)
            self._observed[label.label_id] = obs
            observed.append(obs)
            return
        live = self._live
        if live is None and self.version == 0:  # (no model yet: scored out of fold at the first retrain; the newest answer)
            self._unscored[label.item_id] = label
        if live is None or (self._replaying and label.ts <= self._live_published_at):
            return
        pair = self.campaign.observe_control(label, lambda X: _predict(live, X), self._live_classes)
        if pair is None:
            return
        obs = ControlObservation(label.label_id, pair[0], pair[1], self.version, pair[2])  # type: ignore[arg-type]
        self._observed[label.label_id] = obs
        self._control_of_item[label.item_id] = obs
        observed.append(obs)

    def _score_unscored(self, train: list[Label]) -> None:
        """The control labels no model could score, out of fold (:mod:`activestream.retrainer.oof_control`); logged as first observations."""
        pending = [lab for lab in self._unscored.values() if lab.label_id not in self._observed and lab.label_id in self.training.label_ids]
        self._unscored.clear()
        item_of = {lab.label_id: lab.item_id for lab in pending}
        for obs in score_out_of_fold(pending, train, self._estimator) if self.task == "multiclass" else []:
            self.campaign.record_control(obs.confidence, obs.correct, obs.predicted, item_id=item_of[obs.label_id])
            self._observed[obs.label_id] = obs
            self._control_of_item[item_of[obs.label_id]] = obs
            self.bus.publish(self.topics.control, obs.encode(), key=obs.label_id.encode())
        self.bus.flush()

    def _dead_letter(self, payload: bytes, err: DecodeError) -> None:
        # One dead letter per bad payload: the log is read again by a rebuild after a restart, by the faust engine's
        # agent after its rebuild (from the group's committed offset), and in a batch a rebalance redelivers.
        digest = hashlib.sha256(payload[:MAX_DEAD_LETTER_PAYLOAD]).digest()  # (what a dead letter keeps of it)
        if digest in self._dead_lettered:
            log.info("bad label met again (dead-lettered when first read): %s", err)
            return
        self._dead_lettered.add(digest)
        dl = DeadLetter.from_error(self.topics.labels, payload, err)
        log.warning("dead letter from %s: %s", self.topics.labels, err)
        self.bus.publish(self.topics.dead_letters, dl.encode(), key=dl.key)
        self.bus.flush()
        self.metrics.dead_letters.labels(reason=dl.reason_code).inc()

    # ------------------------------------------------------------------ training
    @property
    def unused(self) -> int:
        """Labels folded in since the last retrain (or since a start whose labels no version was trained on)."""
        return self._unused

    def due(self) -> bool:
        """A retrain is due after ``retrain_every`` new labels or ``retrain_interval`` seconds."""
        if self._unused == 0 or self.holding is not None:
            return False
        if self._unused >= self.retrain_every:
            return True
        return self._first_unused_at is not None and time.monotonic() - self._first_unused_at >= self.retrain_interval

    def _fit_export(self, X: np.ndarray, y: list[object], n_train: int) -> tuple[LinearHeads | FittedEstimator, bytes] | None:
        """The fitted candidate and its ONNX bytes, or ``None`` (saying why in ``last_error``)."""
        assert self._trainer is not None
        try:
            if n_train < 2:
                raise NotEnoughClasses(f"{n_train} training label(s) so far")
            heads = self._trainer.fit(X, y)
        except NotEnoughClasses as exc:
            self.last_error = str(exc)
            log.info("not retraining yet: %s", exc)
            return None
        try:
            return heads, model_to_onnx(heads)
        except EstimatorError as exc:
            self.last_error = str(exc)
            self.metrics.models_rejected.labels(reason="export").inc()
            log.error("candidate not exported: %s", exc)
            return None

    def retrain(self) -> ModelVersion | None:
        """Fit, export, validate and publish a new version; ``None`` when it cannot or must not go live."""
        t0 = time.perf_counter()
        if self._undelivered is not None:  # (the last version first: its number is not reused, see _deliver)
            return self._deliver(UNDELIVERED_WAIT)
        if self.holding is not None:  # a user's version is live: keep its labels for later, publish nothing
            log.info("holding for user model v%d: not retraining on %d labels", self.holding, len(self.training))
            return None
        self._unused, self._first_unused_at = 0, None
        train, hold = self.training.split()
        task = self.task if self.task != "auto" else "multiclass"
        if self._trainer is None:
            self._trainer = make_trainer(task, self._estimator, C=self._C, full_refit_every=self._full_refit_every,
                                         n_members=self._n_members)
        X, y = arrays(train, task)
        fitted = self._fit_export(X, y, len(train))
        if fitted is None:
            return None
        heads, onnx_bytes = fitted
        sess = _session(onnx_bytes, optimize=False)  # (a candidate's checks; it becomes the retrainer's live session too)
        X_check = X[: min(len(X), 256)]
        problem = check_outputs(_predict(sess, X_check), len(X_check), len(heads.classes), task)
        metrics: dict[str, float] = {"n_train": float(len(train)), "n_holdout": float(len(hold))}
        metrics.update({f"n_labels_{source}": float(n) for source, n in self.training.count_by_source().items()})
        if task == "multilabel":  # the scorer's multi-label strategy weighs atypical label counts
            metrics["label_cardinality"] = float(np.mean([len(labels) for labels in y]))  # type: ignore[arg-type]
        if problem is None and hold:
            Xh, yh = arrays(hold, task)
            cand = holdout_accuracy(_predict(sess, Xh), heads.classes, yh, task)
            metrics["holdout_accuracy"] = cand
            if self._live is not None and len(hold) >= self.min_holdout:
                live = self._live_accuracy(Xh, yh, task)
                metrics["live_holdout_accuracy"] = live
                if not no_regression(cand, live, self.tolerance):
                    problem = f"held-out accuracy {cand:.3f} is below the live model's {live:.3f} by more than {self.tolerance}"
        if problem is not None:
            self.last_error = problem
            reason = problem.split(" ")[0]
            self.metrics.models_rejected.labels(reason=reason).inc()
            log.warning("candidate rejected: %s", problem)
            return None
        version = self.version + 1  # taken only once the version is published
        self._fill_stop_set(X.shape[1])
        score: float | None
        if "holdout_accuracy" in metrics:
            score, score_items = metrics["holdout_accuracy"], len(hold)
        else:
            score, score_items = self.campaign.control_accuracy, len(self.campaign.control_correct)
        self._score_unscored(train)
        facts = self.campaign.on_version(version, len(self.training), lambda Z: _predict(sess, Z), score, task, heads.classes,
                                         score_items=score_items, labeled=self._labeled(task),
                                         seconds=None if task == "multiclass" else np.array(self.training.answer_seconds),
                                         spent=sum(lab.source not in FREE_SOURCES for lab in self.training.items.values()))
        metrics.update(self.campaign.version_metrics(facts))
        metrics.update(self.campaign.auto_accept_metrics())
        metrics["train_seconds"] = time.perf_counter() - t0
        mv = ModelVersion(
            version=version,
            onnx=onnx_bytes,
            sha256=ModelVersion.digest(onnx_bytes),
            classes=heads.classes,
            task=task,
            metrics=metrics,
            n_labels=len(self.training),
            label_ids_digest=self.training.digest(),
        )
        self.bus.publish(self.topics.models, mv.encode(), key=MODEL_KEY)
        self._undelivered = (mv, sess, heads.classes, t0)
        return self._deliver(PUBLISH_TIMEOUT)

    def _deliver(self, timeout: float) -> ModelVersion | None:
        """Wait up to ``timeout`` for the version published last to be acknowledged, then make it this process's live one.

        With the broker away it stays undelivered (``None``): :meth:`step` tries again before anything else, and
        :meth:`trouble` says so (``/healthz``); a record the client gave up on goes again. The version number is not
        reused meanwhile (a second version of the same number could follow the first once the broker is back).
        """
        assert self._undelivered is not None
        mv, sess, classes, t0 = self._undelivered
        try:
            self.bus.flush(timeout)
        except BrokerUnavailable as exc:
            if exc.lost:  # (the client gave up on it: published again; a copy delivered after all is the same version)
                self.bus.publish(self.topics.models, mv.encode(), key=MODEL_KEY)
            if self._broker_trouble is None:
                log.warning("model v%d not delivered yet (%s): the retrainer waits for the broker before it trains again", mv.version, exc)
            self._broker_trouble = (time.monotonic(), f"Kafka: model v{mv.version} not delivered yet ({exc})")
            return None
        if self._broker_trouble is not None:
            log.warning("model v%d delivered: the broker takes records again", mv.version)
        self._undelivered, self._broker_trouble = None, None
        self.version = mv.version
        self._own_sha = mv.sha256
        self._live, self._live_classes, self._live_published_at = sess, classes, mv.created_at
        self.published.append(mv)
        self.n_published += 1
        self.last_error = None
        self.metrics.model_version.set(self.version)
        self.metrics.campaign.show(mv.metrics)
        self.metrics.retrain_duration.observe(time.perf_counter() - t0)
        log.info("published model v%d (%d labels, %.3fs)", self.version, len(self.training), time.perf_counter() - t0)
        return mv

    def _labeled(self, task: str) -> Labeled | None:
        """Every label in use, for the live estimates (multi-class campaigns: control labels are scored as one class)."""
        if task != "multiclass":
            return None
        labels = list(self.training.items.values())
        _, codes = np.unique(np.array([lab.label for lab in labels], dtype=object).astype(str), return_inverse=True)
        # The control walk's whole sample, the strategy's labels below its frontier with the walk's own picks.
        sample = walked_sample(self._sampling_keys([lab.item_id.encode() for lab in labels]), np.array([lab.control for lab in labels], dtype=bool),
                               drawn=np.array([lab.source == "baseline" for lab in labels], dtype=bool))  # (a random-sample import)
        return Labeled(lambda: arrays(labels, task)[0], codes, sample, np.array(self.training.answer_seconds),
                       trainer_fit(self._estimator, self._C))

    def _fill_stop_set(self, n_features: int) -> None:
        if self._stop_items is not None:
            self.campaign.add_stop_items([m.value for m in self._stop_items.consume(self.campaign.stop_set_size, 0.0)], n_features=n_features)
            if len(self.campaign.stop_set) >= self.campaign.stop_set_size:
                self._stop_items.close()  # full: stop prefetching the items topic
                self._stop_items = None

    def _live_accuracy(self, Xh: np.ndarray, yh: list[object], task: str) -> float:
        assert self._live is not None
        return holdout_accuracy(_predict(self._live, Xh), self._live_classes, yh, task)

    # ------------------------------------------------------------------ loop
    def step(self, timeout: float = 0.1) -> int:
        """Take in others' versions, ingest waiting labels and retrain when due. Returns label messages consumed.

        A version the broker has not acknowledged is delivered first (nothing else until it is). A control observation
        or dead letter the broker does not take in time stays queued in the client (delivered once it is back): said
        in :meth:`trouble`, and the loop goes on.
        """
        if self._undelivered is not None and self._deliver(UNDELIVERED_WAIT) is None:
            return 0
        try:
            self.watch_models()
            n = self.ingest(timeout)
            if self.due():
                self.retrain()
        except BrokerUnavailable as exc:
            if self._broker_trouble is None:
                log.warning("Kafka did not take the retrainer's records in time (%s): they stay queued; going on", exc)
            self._broker_trouble = (time.monotonic(), f"Kafka: {exc}")
            return 0
        return n

    def run(
        self,
        *,
        burst: bool = False,
        max_messages: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        timeout: float = 0.2,
    ) -> int:
        """Retrain until stopped; ``burst=True`` drains the labels, retrains if any are unused, returns."""
        total = 0
        while True:
            if should_stop is not None and should_stop():
                break
            n = self.step(timeout)
            total += n
            if burst and n == 0:
                if self._unused and self.holding is None:
                    self.retrain()
                break
            if max_messages is not None and total >= max_messages:
                break
        return total
