"""Lease / submit / skip over the ranked queue; accepted labels go to the labels topic."""

from __future__ import annotations

import logging
import math
import numbers
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from activestream.labeling.control_picks import ControlPicker
from activestream.labeling.control_share import Explore
from activestream.rankedqueue import Leased, RankedQueue
from activestream.rankedqueue.keys import META_LABEL_FIELD, META_LABEL_KIND
from activestream.rankedqueue.leases import SubmitFacts
from activestream.schemas import DecodeError, Label, coerce_label_value, decode_label, distinct_labels, label_kinds, not_a_class
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

# (ids, scores (m,), features (m, d), k) -> indices of the k to lease
BatchSelector = Callable[[list[str], np.ndarray, np.ndarray, int], Sequence[int]]

COLD_STARTS = ("random", "representative")
COLD_START_SAMPLE = 2000  # queue items clustered for a representative cold-start batch


@dataclass(frozen=True)
class Answer:
    """One answer for :meth:`LabelService.submit_many` (the arguments of :meth:`LabelService.submit` that vary per item)."""

    item_id: str
    label: str | int | None = None
    labels: Sequence[str | int] | None = None
    seconds: float = 0.0
    label_id: str | None = None  # (None: a new one)
    features: np.ndarray | None = None  # (None: the queue's)


class UnknownItem(KeyError):
    """A label for an item the queue does not hold and that came without features."""


class InvalidLabel(ValueError):
    """A label the retrainer would refuse (its message names the item, the field and the reason)."""


class LeasedToAnother(ValueError):
    """A label or skip for an item whose lease another labeler holds (nothing changes)."""


class BeingSubmitted(LeasedToAnother):
    """A label for an item another label of which is being published at this moment (another API replica): a 409, retry."""


def _fields_error(a: Answer) -> InvalidLabel | None:
    """What is wrong with an answer's fields alone (no round trip needed to tell), or ``None``."""
    if (a.label is None) == (a.labels is None):
        return InvalidLabel(f"item {a.item_id!r}: field 'label': give exactly one of 'label' or 'labels'")
    if not isinstance(a.seconds, numbers.Real) or not math.isfinite(a.seconds) or a.seconds < 0:
        return InvalidLabel(f"item {a.item_id!r}: field 'seconds': expected a non-negative finite number, got {a.seconds!r}")
    return None


def _refuse_other_holder(item_id: str, labeler_id: str, holder: str | None) -> None:
    """Raise :class:`LeasedToAnother` when ``holder`` (whoever holds the item's lease now, ``None``: no one) is not ``labeler_id``."""
    if holder is not None and holder != labeler_id:
        raise LeasedToAnother(f"item {item_id!r}: field 'labeler_id': {labeler_id!r} does not hold its lease (another labeler does, "
                              f"until it is labeled, skipped or runs out)")


def top_k(ids: list[str], scores: np.ndarray, features: np.ndarray, k: int) -> list[int]:
    """The default batch: the ``k`` best-scored candidates (they arrive best first)."""
    return list(range(min(k, len(ids))))


class LabelService:
    """What a labeler (person, UI, API or simulator) does with the queue.

    Parameters
    ----------
    queue : the ranked queue.
    bus, topics : where accepted labels are published.
    lease_ttl : seconds before an unlabeled leased item returns to the queue.
    max_skips : an item skipped this often leaves the queue (counted as dropped).
    select_batch : picks which of the top candidates form a leased batch.
    oversample : candidates considered per leased item (for diversity-aware selectors).
    explore : share of leased items (once a model has ranked the queue) drawn uniformly at
        random from the whole queue. They are flagged ``control``: an unbiased sample that
        keeps exploring and lets the system measure, live, how good the model really is
        (and calibrate auto-accept).
    curriculum_labels : easy-to-hard schedule: the first leases after the cold start come
        from the confident end of the queue, moving to its uncertain head linearly over
        this many labels.
    cold_start : what is leased until a first model has ranked the queue (no control slice,
        batch selection or curriculum then: there is no ranking yet): ``"random"`` (the head
        of the queue's seeded random order, as it is: an unbiased sample) or
        ``"representative"`` (the items nearest the k-means centroids of a sample of the
        queue: one per region of feature space).
    seed : seed of the exploration draws.
    max_candidates : cap on the candidates fetched for ``select_batch`` per lease (the cost
        of a selector can grow with their number times ``k``).
    on_close : releases what ``select_batch`` holds (e.g. a consumer of the models topic).
    plan_random : called with ``k`` before each ranked lease: how many of the ``k`` to lease as
        random-control picks at least (a strategy bandit's ``random`` arm takes the whole batch).
    on_label : called with ``(features, answer, control)`` for each accepted label (the
        bandit's reward); its errors are logged, never raised to the labeler.
    classes : the declared classes (``ACTIVESTREAM_CLASSES``): any other answer is refused; ``None``: any.
    """

    def __init__(
        self,
        queue: RankedQueue,
        bus: Bus,
        topics: Topics,
        *,
        lease_ttl: float = 300.0,
        max_skips: int = 3,
        select_batch: BatchSelector = top_k,
        oversample: int = 1,
        explore: Explore = 0.0,
        curriculum_labels: int | None = None,
        cold_start: str = "random",
        seed: int = 0,
        max_candidates: int | None = None,
        on_close: Callable[[], None] | None = None,
        plan_random: Callable[[int], int] | None = None,
        on_label: Callable[[np.ndarray | None, object, bool], None] | None = None,
        classes: Sequence[str | int] | None = None,
    ) -> None:
        self.queue, self.bus, self.topics = queue, bus, topics
        self.classes = tuple(classes) if classes is not None else None
        self.lease_ttl, self.max_skips = lease_ttl, max_skips
        self.flush_timeout = 30.0  # the longest a submit waits for the broker to take its labels (the API's is shorter)
        self.select_batch = select_batch
        self.oversample = max(1, oversample)
        self.curriculum_labels = curriculum_labels
        if cold_start not in COLD_STARTS:
            raise ValueError(f"cold_start must be one of {', '.join(COLD_STARTS)}, got {cold_start!r}")
        self.cold_start = cold_start
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.control = ControlPicker(queue, explore, self._rng)
        self.max_candidates = max_candidates
        self._on_close = on_close
        self._plan_random = plan_random
        self._on_label = on_label
        self.settings: dict[str, object] = {}  # what it leases by, as GET /campaign shows it (set by make_label_service)

    def close(self) -> None:
        """Release what the batch selector holds."""
        if self._on_close is not None:
            self._on_close()

    def lease(self, k: int, labeler_id: str, *, now: float | None = None) -> list[Leased]:
        """Lease up to ``k`` of the best pending items to ``labeler_id``."""
        if now is None:
            now, ranked = self.queue.now_and_ranked_version()  # (one round trip)
        else:
            ranked = self.queue.ranked_version()
        self.queue.expire_leases(now)
        # Before the first model the queue is in a seeded random order, not ranked: there is
        # nothing to explore against, select among or schedule, so a cold lease takes its head
        # as it is (or the representative picks). Every strategy then starts from the same
        # unbiased first labels, the seed labels the benchmark gives the peers too.
        # (ranked_version, not model_version: it is set by the same atomic swap that installs
        # the first model's ranking, so a lease during that re-rank still counts as cold.)
        cold = ranked == 0
        n_control = 0
        if not cold:
            n_control = self.control.count(k)
            if self._plan_random is not None:
                n_control = max(n_control, min(k, self._plan_random(k)))
        out = [] if cold else self._leased(self.control.pick(n_control, labeler_id, self.lease_ttl, now), now, control=True)
        out += [] if cold else self._claim(self.queue.audits_waiting(k - len(out), labeler_id), labeler_id, now)  # (audits: served as any item)
        if cold and self.cold_start == "representative" and k > 0:
            out += self._lease_representative(k, labeler_id, now)
        offset = 0 if cold else self._curriculum_offset(k)
        oversample = 1 if cold else self.oversample
        for _ in range(3):  # another labeler may claim some candidates first: retry
            want = k - len(out)
            if want <= 0:
                break
            n = want * oversample + 16 * (oversample > 1)
            if self.max_candidates is not None:
                n = min(n, max(self.max_candidates, want))
            cands = self.queue.top_for(labeler_id, n, offset)
            if not cands:
                break
            ids = [c for c, _ in cands]
            scores = np.array([s for _, s in cands])
            if oversample > 1:
                feats = self.queue.features_of(ids)
                X = np.vstack([f if f is not None else np.zeros_like(next(x for x in feats if x is not None)) for f in feats])
                chosen = [ids[i] for i in self.select_batch(ids, scores, X, want)]
            else:
                chosen = ids[:want]
            out += self._claim(chosen, labeler_id, now)
        return out

    def _claim(self, ids: list[str], labeler_id: str, now: float) -> list[Leased]:
        """Lease those of ``ids`` still pending, with their features and metadata."""
        return self._leased(self.queue.claim(ids, labeler_id, self.lease_ttl, now), now)

    def _leased(self, claimed: list[tuple[str, float]], now: float, *, control: bool = False) -> list[Leased]:
        # The server, not the client, records which leases are control picks (see submit).
        cids = [c for c, _ in claimed]
        feats, metas = self.queue.features_and_metadata(cids)
        return [Leased(cid, score, f, now + self.lease_ttl, md, control=control)
                for (cid, score), f, md in zip(claimed, feats, metas, strict=True)]

    def _check_campaign_shape(
        self, item_id: str, label: str | int | None, labels: Sequence[str | int] | None, facts: SubmitFacts
    ) -> SubmitFacts:
        """One campaign takes one kind of answer: ``label`` or ``labels``, integers or strings.

        The first accepted label fixes both (kept with the queue). A value of the other type
        that converts (``"3"`` for 3) is accepted, and the retrainer converts it; one that
        does not (``"cat"`` where labels are integers) would be dead-lettered there, so it
        is refused here, while the item is still queued. Once fixed, a shape never changes:
        the one ``facts`` read stands (no round trip); until then it is agreed in Redis.
        Returns ``facts`` with the shape as it stands now (for the next label of a batch).
        """
        field = "labels" if labels is not None else "label"
        values = list(labels) if labels is not None else [label]
        kinds = label_kinds(values)  # type: ignore[arg-type]
        if len(kinds) > 1:
            raise InvalidLabel(f"item {item_id!r}: field 'labels': mixes integers and strings ({values!r})")
        held = facts.label_field or self.queue.agree_meta(META_LABEL_FIELD, field)
        if held != field:
            raise InvalidLabel(f"item {item_id!r}: field {field!r}: this campaign's answers come as {held!r}")
        if not kinds:
            return replace(facts, label_field=held)
        kind = kinds.pop()
        held_kind = facts.label_kind or self.queue.agree_meta(META_LABEL_KIND, kind)
        # "3" in an integer campaign is the class 3 (the retrainer converts it); "cat" is refused.
        if held_kind != kind and any(coerce_label_value(v, held_kind) is None for v in values):  # type: ignore[arg-type]
            raise InvalidLabel(f"item {item_id!r}: field {field!r}: this campaign's labels are {held_kind}; got {values!r}")
        return replace(facts, label_field=held, label_kind=held_kind)

    def _lease_representative(self, n: int, labeler_id: str, now: float) -> list[Leased]:
        """Cold start: the ``n`` items nearest the k-means centroids of a seeded sample of the queue."""
        from activestream.labeling.selection import weighted_kmeans

        ids, X = self.queue.sample(COLD_START_SAMPLE, self._rng)
        keep = [j for j, skipped in enumerate(self.queue.skipped_by(labeler_id, ids)) if not skipped]
        ids, X = [ids[j] for j in keep], X[keep]
        if not ids:
            return []
        # Equal scores: plain k-means over the whole sample (prefilter covers every row).
        picks = weighted_kmeans(np.ones(len(ids)), X, n, seed=self.seed, prefilter=-(-len(ids) // max(1, n)))
        return self._claim([ids[i] for i in picks], labeler_id, now)

    def _curriculum_offset(self, k: int) -> int:
        """Rank to start leasing from: the confident tail first, the uncertain head at the end."""
        if not self.curriculum_labels:
            return 0
        # Counted from the first ranking: the cold start's labels were not picked by difficulty.
        done = self.queue.n_labeled() - int(self.queue.get_meta("cold_start_labels") or 0)
        progress = min(1.0, max(0, done) / self.curriculum_labels)
        # Ranks among the scored items only: the ones no model could score sit below them
        # at -1 and are neither easy nor hard, so the easy end starts above them.
        return int((1.0 - progress) * max(0, self.queue.n_scored() - k * self.oversample))

    def submit(
        self,
        item_id: str,
        *,
        labeler_id: str,
        label: str | int | None = None,
        labels: Sequence[str | int] | None = None,
        seconds: float = 0.0,
        label_id: str | None = None,
        features: np.ndarray | None = None,
        source: str = "human",
        holder: str | None = None,
        hold: bool = True,
    ) -> bool:
        """Accept a label. Returns ``False`` (and changes nothing) for a label id already accepted.

        ``holder`` is whose lease the label comes through (default ``labeler_id``): a
        connector to a labeling tool leases items under its own name (``labelstudio:<project>``)
        and submits its labelers' answers through that lease. ``hold``: hold the item while its label
        is published, against a twin sent to another API replica at once (see :class:`BeingSubmitted`);
        a connector that is the one submitter of its leased items passes ``False`` and never waits.

        The label is published (with the item's features, so the retrainer needs no
        other store) before the item leaves the queue: a crash in between leaves the
        item leased, its lease expires, and nothing is lost.

        Raises
        ------
        InvalidLabel
            When neither or both of ``label`` and ``labels`` are given, or the label would
            not pass the retrainer's checks (e.g. negative ``seconds``, an empty labeler id,
            a label that is neither a string nor an integer); nothing is published then.
        UnknownItem
            When the queue does not know the item and no ``features`` were given.
        LeasedToAnother
            When another labeler (or labeler group) holds the item's lease and it has not run
            out: their work would be thrown away. A pending item takes anyone's label.
        """
        answer = Answer(item_id, label=label, labels=labels, seconds=seconds, label_id=label_id, features=features)
        outcome = self.submit_many([answer], labeler_id=labeler_id, source=source, holder=holder, hold=hold)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def submit_many(
        self, answers: Sequence[Answer], *, labeler_id: str, source: str = "human", holder: str | None = None, hold: bool = True
    ) -> list[bool | InvalidLabel | UnknownItem | LeasedToAnother]:
        """Accept a batch of one labeler's answers, as :meth:`submit` would one after the other, in a few round trips.

        Returns per answer what :meth:`submit` returns (``True``: accepted, ``False``: a label id
        already accepted) or the error it would raise (nothing of that answer changed). A run of
        answers costs three round trips to Redis (the facts, the claims, the marks) where one answer
        at a time cost three each (issue 23: a simulated campaign's labels); a campaign's first batch
        adds two (agreeing its answer shape), a correction and a label refused after its claim one
        each. An item or label id repeated in the batch, and a correction after an answer that may be
        taken (it corrects that answer), start a new run, so the order of the answers holds.
        """
        out: list[bool | InvalidLabel | UnknownItem | LeasedToAnother] = []
        while len(out) < len(answers):
            out += self._submit_run(answers[len(out):], labeler_id, source, labeler_id if holder is None else holder, hold)
        return out

    def _next_run(self, answers: Sequence[Answer]) -> list[tuple[Answer, str, InvalidLabel | SubmitFacts]]:
        """The leading run of ``answers`` (at least one) decided together: each one's label id, and its facts, or the
        error its fields alone make it (those checks need no round trip: such an answer reads nothing; see :meth:`submit_many`)."""
        run: list[tuple[Answer, str, InvalidLabel | None]] = []  # (answer, its label id, its fields' error)
        seen: set[str] = set()
        for a in answers:
            lid = a.label_id or uuid.uuid4().hex
            error = _fields_error(a)
            if error is None:
                if run and (a.item_id in seen or lid in seen):
                    break
                seen.update((a.item_id, lid))
            run.append((a, lid, error))
        read = [(a, lid) for a, lid, error in run if error is None]
        facts = iter(self.queue.submit_facts([a.item_id for a, _ in read], [lid for _, lid in read], [a.features is None for a, _ in read])
                     if read else [])
        out: list[tuple[Answer, str, InvalidLabel | SubmitFacts]] = []
        for a, lid, error in run:
            f = error or next(facts)
            if isinstance(f, SubmitFacts):  # (the declared classes: this service's, else as another service of the campaign recorded them)
                classes = self.classes if self.classes is not None else f.declared_classes
                if classes and (outside := not_a_class(list(a.labels) if a.labels is not None else [a.label], classes)):  # type: ignore[list-item]
                    f = InvalidLabel(f"item {a.item_id!r}: field {'labels' if a.labels is not None else 'label'!r}: {outside}")
            if isinstance(f, SubmitFacts) and a.features is None and f.features is None and not f.label_id_known and any(
                    isinstance(x, SubmitFacts) for _, _, x in out):  # a correction after an answer that may be taken: of that answer
                break
            out.append((a, lid, f))
        return out

    def _submit_run(
        self, answers: Sequence[Answer], labeler_id: str, source: str, holder: str, hold: bool = True
    ) -> list[bool | InvalidLabel | UnknownItem | LeasedToAnother]:
        """Decide the leading run of ``answers`` (:meth:`_next_run`); one outcome per answer of it.

        An unexpected error (not one :meth:`submit` raises by design) is raised once the answers before it are
        decided, as :meth:`submit` one after another would have; the answers after it are left as they were.
        """
        outcome: list[bool | InvalidLabel | UnknownItem | LeasedToAnother] = []
        ready: list[tuple[int, Label, bytes, SubmitFacts]] = []  # (index in run, record, its payload, facts): to claim
        failure: Exception | None = None
        for j, (a, lid, f) in enumerate(self._next_run(answers)):
            if isinstance(f, InvalidLabel):  # (its fields, or a class outside the declared ones: nothing is claimed for it)
                outcome.append(f)
                continue
            try:
                made = self._record(a, lid, f, labeler_id, source, holder)
            except (InvalidLabel, UnknownItem, LeasedToAnother) as exc:
                outcome.append(exc)
                continue
            except Exception as exc:  # (e.g. Redis gone while reading a correction's last label)
                failure = exc
                break
            outcome.append(made is not None)
            if made is not None:
                ready.append((j, *made, f))
        accepted: list[tuple[Label, bytes, SubmitFacts]] = []
        held: list[tuple[str, str]] = []  # (item id, this request's token) held while published (see claim_for_labels)
        token = uuid.uuid4().hex
        try:
            if ready:
                # A pending item is leased to this labeler while its label goes out: a dispatcher or
                # another API process cannot lease it in between (mark_labeled would end their lease
                # and the item would be labeled twice). A label refused from here on hands it back.
                # (leases that ran out go back first: such an item is claimable again; then who holds it now)
                # (and held while its label goes out: two labels of one item sent at once, e.g. a retry on another API replica,
                # were both accepted; the second now waits for the first, and its retry finds it accepted or refused)
                claims = self._claim_for_labels([r for _, r, _, _ in ready], holder, ready[0][3].now, token if hold else None)
                held += [(r.item_id, token) for (_, r, _, _), (_, _, h) in zip(ready, claims, strict=True) if h and hold]
                # (the run's facts were read at once: its shape as the last label checked left it, agreed once, not per label)
                shape = ready[0][3]
                for (j, record, payload, f), (claimed, holder_now, mine) in zip(ready, claims, strict=True):
                    try:
                        if not mine:
                            raise BeingSubmitted(f"item {record.item_id!r}: field 'item_id': another label of this item is being "
                                                 f"submitted at this moment; send this one again in a second")
                        _refuse_other_holder(record.item_id, holder, holder_now)  # (lost a race for it: nothing changed)
                        shape = self._check_campaign_shape(record.item_id, record.label, record.labels, shape)  # (the first label fixes it)
                    except (LeasedToAnother, InvalidLabel) as exc:
                        # (not held: another request holds it and may be publishing a label of it: never handed back then; if that
                        # one is refused too, the item stays leased to this holder until a retry takes it or its lease runs out)
                        if claimed and mine:
                            self.queue.unclaim(record.item_id, holder)
                        outcome[j] = exc
                        continue
                    accepted.append((record, payload, f))
        except Exception as exc:
            failure = failure or exc
        released = False
        try:
            if accepted:
                self._accept(accepted, labeler_id, held)  # (the holds end with the marks: a retry finds its label id accepted)
                released = True
        finally:
            if not released:
                self._end_holds(held)
        if failure is not None:
            raise failure
        return outcome

    def _claim_for_labels(self, records: Sequence[Label], holder: str, now: float, token: str | None) -> list[tuple[bool, str | None, bool]]:
        """:meth:`RankedQueue.claim_for_labels` for the labels ``records`` (``token``: hold them, see :class:`BeingSubmitted`;
        ``None``: no holds). Should it fail after the holds were taken, the ones this request's ``token`` holds are ended."""
        try:
            return self.queue.claim_for_labels([r.item_id for r in records], holder, self.lease_ttl, now,
                                               [r.label_id for r in records] if token is not None else None, token or "")
        except Exception:
            if token is not None:
                self._end_holds([(r.item_id, token) for r in records])
            raise

    def _end_holds(self, held: Sequence[tuple[str, str]]) -> None:
        """End the ``(item, token)`` holds of labels not published (refused, or a failure under way: that failure is the
        one to raise, so one here is logged; the holds run out within a minute)."""
        if not held:
            return
        try:
            self.queue.release_submissions(held)
        except Exception as exc:  # noqa: BLE001
            log.warning("holds of %d label(s) not ended (%s: %s); they run out within a minute", len(held), type(exc).__name__, exc)

    def _accept(self, accepted: list[tuple[Label, bytes, SubmitFacts]], labeler_id: str, held: Sequence[tuple[str, str]] = ()) -> None:
        """Publish the claimed labels (record, payload, facts), then take their items out of the queue and end the
        ``held`` (item, token) holds.

        When a publish fails, the labels before it are flushed and taken out (as one :meth:`submit` after
        another would have), then the error is raised; a failed flush takes none out (their leases run out).
        """
        published = 0
        try:
            for record, payload, _ in accepted:
                self.bus.publish(self.topics.labels, payload, key=record.item_id.encode())
                published += 1
        except Exception:
            if published:
                self.bus.flush(self.flush_timeout)
                self._finish(accepted[:published], labeler_id)
            raise
        self.bus.flush(self.flush_timeout)
        self._finish(accepted, labeler_id, held)

    def _finish(self, accepted: list[tuple[Label, bytes, SubmitFacts]], labeler_id: str, held: Sequence[tuple[str, str]] = ()) -> None:
        """Take the published labels' items out of the queue (and end the ``held`` holds); then the label hook."""
        # The label ids were new when they went out: accepted, even if a dispatcher reading the
        # labels topic marked an item first (mark_labeled then finds the id known).
        # (mark labeled, which also forgets the control record; keep the last as the labeler's last label; audits answered)
        self.queue.finish_labels([(r.item_id, r.label_id, f.audit is not None) for r, _, f in accepted], labeler_id, accepted[-1][1], held)
        if self._on_label is not None:
            for record, _, _ in accepted:
                try:
                    self._on_label(record.features, record.label if record.label is not None else list(record.labels or ()), record.control)
                except Exception:  # the label is accepted; a learner's failure must not turn it into an error
                    log.exception("item %r: the label hook failed", record.item_id)

    def _record(self, a: Answer, label_id: str, facts: SubmitFacts, labeler_id: str, source: str, holder: str) -> tuple[Label, bytes] | None:
        """The label ``a`` (whose fields passed :func:`_fields_error`) makes and its payload, checked as the retrainer
        would check it; ``None`` for a label id already accepted.

        Raises :class:`InvalidLabel`, :class:`UnknownItem` or :class:`LeasedToAnother` (see :meth:`submit`).
        """
        item_id = a.item_id
        if facts.label_id_known:
            return None
        # A control label is one for an item this labeler was leased as a random-control pick:
        # recorded at lease time, so a client can neither drop the flag nor set it on a ranked pick.
        control = facts.control_holder == holder
        audited = facts.audit  # (an auto-accepted item answered blind: recorded by the scorer, never by the client)
        _refuse_other_holder(item_id, holder, facts.lease_holder)
        features = a.features if a.features is not None else facts.features
        if features is None:
            # A correction: a new label (its own id) for the item of this labeler's last label. It
            # takes that label's features and control flag; the retrainer keeps the newest label of an item.
            last = self.last_label(labeler_id)
            if last is None or last.item_id != item_id:
                causes = ("already labeled, dropped, never scored, or evicted from the capped pool after its lease ran out: answer "
                          "within ACTIVESTREAM_LEASE_TTL" if self.queue.pool.capacity is not None else "already labeled, dropped or never scored")
                raise UnknownItem(f"item {item_id!r}: field 'item_id': not in the queue ({causes}), and not the item of this labeler's "
                                  f"last label (the one label a new one corrects)")
            features, control = last.features, last.control
        record = Label(
            item_id=item_id,
            label_id=label_id,
            labeler_id=labeler_id,
            label=a.label,
            labels=distinct_labels(a.labels) if a.labels is not None else None,  # (a tag given twice is one tag)
            seconds=a.seconds,
            features=features,
            source=source,
            control=control,
            audit=audited is not None,
            audited_label=audited[0] if audited is not None else None,  # type: ignore[arg-type]
            model_version=facts.ranked_version or None,  # (0: no model had ranked the queue; for the export)
        )
        payload = record.encode()
        try:  # refuse now what the retrainer would dead-letter, while the item is still queued
            decode_label(payload)
        except DecodeError as exc:
            raise InvalidLabel(str(exc)) from None
        return record, payload

    def last_label(self, labeler_id: str) -> Label | None:
        """The last label ``labeler_id`` had accepted here (the one they may correct), or ``None``."""
        payload = self.queue.last_label(labeler_id)
        if payload is None:
            return None
        try:
            return decode_label(payload)
        except DecodeError:  # (written by this code: only a schema change would make it unreadable)
            log.warning("labeler %r: last label unreadable: no correction possible", labeler_id)
            return None

    def give_back(self, item_id: str, labeler_id: str) -> bool | None:
        """Hand a leased item back untouched: pending again at once, for anyone, this labeler included (no skip counted).

        Returns ``True`` when it was this labeler's, ``False`` when it was not leased (a lease that ran out, an item
        labeled or unknown: nothing changes), ``None`` when another labeler holds it (nothing changes).
        """
        self.queue.expire_leases()
        if self.queue.unclaim(item_id, labeler_id):
            return True
        return None if self.queue.lease_holder(item_id) not in (None, labeler_id) else False

    def skip(self, item_id: str, labeler_id: str) -> int:
        """Hand a leased item back (not offered to this labeler again).

        Returns its skip count (each labeler counts once), 0 if it was dropped after
        ``max_skips``, -1 if unknown, -2 if it is leased to another labeler (nothing changes).
        """
        self.queue.expire_leases()  # a lease that ran out is no one's: anyone may pass on the item
        return self.queue.skip(item_id, labeler_id, self.max_skips)
