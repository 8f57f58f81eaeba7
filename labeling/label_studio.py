"""activestream as the active-learning engine of a Label Studio project.

The connector keeps the top ``top_n`` of the ranked queue as tasks of one Label Studio project,
leased from the queue under its own name (``labelstudio:<project>``, as the dispatcher leases
for a labeler group), so the labeler API and the dispatcher never hand them out too. Each task
carries a prediction of the live model version whose ``score`` is minus activestream's: Label
Studio's "Uncertainty sampling" (``projects/functions/next_task.py::_try_uncertainty_sampling``)
serves the tasks holding a prediction of the project's ``model_version`` lowest score first,
so its next task is activestream's best. After a re-rank the scores follow; tasks whose item
left the top (labeled elsewhere, auto-accepted, evicted, outranked) stop being served at once
(their prediction goes) and are deleted after ``grace`` seconds unless a draft or an annotation
shows someone is working on them.

Annotations (from Label Studio's webhook, with polling as the fallback) become labels through
:class:`activestream.labeling.service.LabelService`: the Label Studio user is the labeler, the
annotation's lead time the seconds, and the label id is derived from the annotation id and its
revision (:func:`activestream.labeling.label_studio_config.label_id`), so a redelivered webhook
or a re-poll changes nothing and an updated answer supersedes the earlier label. A skipped
(cancelled) task goes back to the queue as that user's skip.

Random-control picks and hidden audit items (a share of the auto-accepted ones,
:mod:`activestream.rankedqueue.auto_accept`) are served before the ranked tasks, as the labeler API
serves them. Neither says so in its data (a labeler who could tell them apart would label them differently); the
labeling service flags their answers (``control``, ``audit``).

What the connector needs to survive a restart lives in Redis beside the queue (under
``QueueKeys.connector(owner)``): item -> task, the answers seen per annotation, the items whose
task was being created, the predictions to delete, and the poll cursor. The SDK client, projects
and webhooks are in :mod:`activestream.labeling.label_studio_project`.
"""

from __future__ import annotations

import json
import logging
import queue as stdqueue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from activestream.labeling.control_picks import ControlPicker
from activestream.labeling.control_share import Explore
from activestream.labeling.label_studio_config import (
    ITEM_ID_FIELD,
    SeveralChoices,
    answer_from_result,
    choice_problems,
    choice_values,
    choices_control,
    features_from_data,
    label_id,
    labeling_config,
    ls_score,
    model_version_name,
    shown_fields,
    task_data,
)
from activestream.labeling.label_studio_project import (
    REFUSED_STATUSES,
    UNCERTAINTY_SAMPLING,
    as_dict,
    delete_prediction,
    error_text,
    find_tasks,
    import_tasks,
    our_predictions,
    status_of,
    utc_stamp,
)
from activestream.labeling.metrics import LabelStudioMetrics
from activestream.labeling.service import InvalidLabel, LabelService, LeasedToAnother, UnknownItem
from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.auto_accept import audit_records
from activestream.scorer.versions import newest_model_version
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

CANCELLED = "cancelled"  # the digest recorded for a skip
# How long a restarted connector looks for the tasks of an import it was killed in (Label Studio
# may still be creating them) before exporting those items afresh.
IMPORT_SETTLE_SECONDS = 10.0


@dataclass
class Exported:
    """One item the connector holds as a Label Studio task."""

    task: int
    prediction: int | None = None  # our prediction's id (None: not known yet, or removed)
    version: int = 0  # the model version it was scored with
    score: float | None = None  # the prediction score set in Label Studio
    control: bool = False  # served first (a random-control pick or an audit item)
    left_at: float | None = None  # when the item left the exported top (None: still in it)

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Exported:
        return cls(**json.loads(raw))


class LabelStudioConnector:
    """Keeps a Label Studio project in step with the ranked queue, and its annotations in step with the labels topic.

    Parameters
    ----------
    client : a ``label_studio_sdk.LabelStudio`` client (see :func:`load_client`).
    project : the Label Studio project id.
    queue : the ranked queue of the namespace.
    service : submits the labels (idempotent by label id) and holds the lease rules.
    bus, topics : the models topic (the live model's classes) is read from here.
    top_n : items kept as tasks.
    lease_ttl : seconds a task's lease lasts without a sync renewing it (a connector down
        longer than that lets the items return to the queue; a restart re-exports them).
    grace : seconds a task whose item left the top is kept (unserved) before it is deleted.
    names : feature names for the task data (``None``: ``f0``, ``f1``, ...).
    explore : share of exported items drawn uniformly at random (control picks, served first).
    seed : seed of those draws.
    registry : metrics registry.
    """

    def __init__(self, client: Any, project: int, queue: RankedQueue, service: LabelService, bus: Bus, topics: Topics, *,
                 top_n: int = 100, lease_ttl: float = 3600.0, grace: float = 600.0, names: list[str] | None = None,
                 explore: Explore = 0.0, seed: int | None = None, registry: CollectorRegistry | None = None) -> None:
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        self.client = client
        self.project = int(project)
        self.queue = queue
        self.service = service
        self.owner = f"labelstudio:{self.project}"
        self.top_n = top_n
        self.lease_ttl = lease_ttl
        self.grace = grace
        self.names = names
        self.control = ControlPicker(queue, explore, np.random.default_rng(seed))
        self.metrics = LabelStudioMetrics.create(registry or CollectorRegistry())
        base = queue.k.connector(self.owner)
        self._tasks_key, self._answers_key = f"{base}:tasks", f"{base}:answers"
        self._creating_key, self._cursor_key, self._stale_key = f"{base}:creating", f"{base}:cursor", f"{base}:stale"
        self._models = bus.consumer([topics.models], None)
        self.classes: tuple[Any, ...] = ()
        self.task_kind = "multiclass"
        self._follow_models(to_end=True)
        self.events: stdqueue.SimpleQueue[dict[str, Any]] = stdqueue.SimpleQueue()  # webhook payloads
        self._users: dict[int, str] = {}
        self._project_version: str | None = None
        config = self._project().label_config
        self.from_name, self.multiple = choices_control(config)
        self.shown = shown_fields(config)
        classes = service.classes if service.classes is not None else self.classes
        for problem in choice_problems(choice_values(config, self.from_name), classes) if classes and not self.multiple else []:
            log.warning("Label Studio project %d: %s (its <Choices name=%r>; the campaign's classes: %s)", self.project, problem,
                        self.from_name, ", ".join(map(str, classes)))

    # ----------------------------------------------------------------- set-up
    def _project(self) -> Any:
        return self.client.projects.get(self.project)

    def ensure_uncertainty_sampling(self) -> None:
        """Set the project's sampling to "Uncertainty sampling" (what makes Label Studio follow the scores)."""
        p = self._project()
        if p.sampling != UNCERTAINTY_SAMPLING:
            self.client.projects.update(self.project, sampling=UNCERTAINTY_SAMPLING)
        self._project_version = p.model_version

    def _follow_models(self, *, to_end: bool = False) -> None:
        msgs = self._models.read_to_end(30.0) if to_end else self._models.consume(100, 0.0)
        newest, _ = newest_model_version(msgs, 0)
        if newest is not None:
            self.classes, self.task_kind = tuple(newest.classes), newest.task

    def default_config(self, classes: tuple[Any, ...] = (), **kwargs: Any) -> str:
        """A labeling config for the live model's classes and task (or ``classes``), see :func:`labeling_config`."""
        return labeling_config(classes or self.classes, self.task_kind, **kwargs)

    # ----------------------------------------------------------------- state
    def exported(self) -> dict[str, Exported]:
        """Item id -> its task, for every item the connector has a task for (open or leaving)."""
        return {k.decode(): Exported.decode(v) for k, v in self.queue.r.hgetall(self._tasks_key).items()}  # type: ignore[union-attr]

    def _save(self, item_id: str, ex: Exported) -> None:
        self.queue.r.hset(self._tasks_key, item_id, ex.encode())

    # ----------------------------------------------------------------- queue -> Label Studio
    def sync(self) -> int:
        """Bring the project in step with the queue. Returns tasks created, rescored or removed."""
        q, now = self.queue, self.queue.now()
        q.expire_leases(now)
        self._follow_models()
        version = q.ranked_version()
        changed = self._recover_creating()
        tasks = self.exported()
        owned = q.leased_by(self.owner)
        for item in [i for i in owned if i not in tasks]:  # its task's creation failed (Label Studio down): export it again
            q.unclaim(item, self.owner)
        owned = [i for i in owned if i in tasks]
        q.renew(owned, self.owner, self.lease_ttl, now)
        controls = [i for i in owned if q.control_holder(i) == self.owner]
        first = set(controls) | set(audit_records(q, owned))  # (held controls and audit items: served first)
        ranked = [(i, s) for i, s in zip(owned, q.lease_scores(owned), strict=True) if i not in first and s is not None]
        passed_since = now - self.lease_ttl
        q.forget_passed(self.owner, before=passed_since)
        cands = q.top_for(self.owner, self.top_n, passed_since=passed_since)
        best = sorted(ranked + cands, key=lambda p: (p[1], p[0]), reverse=True)[: max(0, self.top_n - len(first))]
        keep = {i for i, _ in best}
        for i, _ in ranked:  # outranked since it was exported: back to the queue
            if i not in keep:
                q.unclaim(i, self.owner)
        held = {i for i, _ in ranked}
        new = [i for i, _ in best if i not in held]
        n_control = self.control.count(len(new)) if version > 0 and new else 0
        picks = self.control.pick(n_control, self.owner, self.lease_ttl, now, passed_since=passed_since) if n_control else []
        new = new[: len(new) - len(picks)]
        # Waiting audit items take the places of the lowest new ranked ones (the labeler API serves them first too).
        waiting = q.audits_waiting(len(new), self.owner, passed_since)
        audits = set(waiting)
        new = [i for i in new if i not in audits][: len(new) - len(audits)] + waiting
        # Recorded before their tasks are created (and before the claim): a crash in between leaves them
        # to _recover_creating, which adopts a task created for them, so none gets a second. Control picks
        # too: they are claimed by pick() already, and a crash after their import would otherwise export
        # them again as leases without a task.
        creating = new + [i for i, _ in picks]
        q.r.sadd(self._creating_key, *creating) if creating else None
        claimed = q.claim(new, self.owner, self.lease_ttl, now)
        first |= {i for i, _ in picks} | {i for i, _ in claimed if i in audits}
        refused = self._export([(i, s, False) for i, s in claimed] + [(i, s, True) for i, s in picks], tasks, version, first, now)
        changed += len(claimed) + len(picks) - len(refused)
        claimed, picks = [(i, s) for i, s in claimed if i not in refused], [(i, s) for i, s in picks if i not in refused]
        first -= refused
        if creating:
            q.r.srem(self._creating_key, *creating)
        scores = dict(best) | dict(claimed) | dict(picks)
        # (the ranked ones still held and kept, and what was just claimed: the ranked ones cut for controls or audits have no task)
        changed += self._rescore({i: scores.get(i, 0.0) for i in (held & keep) | {i for i, _ in claimed} | first}, first, version)
        changed += self._retire(now)
        self.metrics.open_tasks.set(len(q.leased_by(self.owner)))
        return changed

    def _export(self, items: list[tuple[str, float, bool]], tasks: dict[str, Exported], version: int, first: set[str],
                now: float) -> set[str]:
        """Create tasks (each with its prediction) for newly leased items; reuse the task of one that came back.

        ``items``: (item, score, a control pick); those in ``first`` are served before the ranked ones. Returns the items
        whose task Label Studio refused (:func:`import_tasks`): handed back to the queue, not offered to the project again
        for ``lease_ttl``.
        """
        if not items:
            return set()
        ids = [i for i, _, _ in items]
        fresh = [(i, s, c) for i, s, c in items if i not in tasks]
        for i, _, _c in items:
            if i in tasks:  # left the top, came back before its task was deleted
                ex = tasks[i]
                ex.left_at, ex.control, ex.score, ex.prediction = None, i in first, None, None
                self._save(i, ex)
        if fresh:
            fids = [i for i, _, _ in fresh]
            metas = dict(zip(ids, self.queue.metadata_of(ids), strict=True))
            feats = dict(zip(fids, self.queue.features_of(fids), strict=True))
            name = model_version_name(version)
            names = self.names or self.queue.feature_names()  # (the names produce recorded: a CSV's header)
            req = [{"data": task_data(i, metas[i], feats[i], names, self.shown),
                    "predictions": [{"model_version": name, "score": ls_score(s, control=i in first), "result": []}]} for i, s, c in fresh]
            try:
                created, refusals = import_tasks(self.client, self.project, fids, req)
            except Exception as exc:
                if status_of(exc) in REFUSED_STATUSES:  # (the project refused them all: its config may have changed)
                    self.shown = shown_fields(self._project().label_config)
                raise
            for i, why in refusals.items():
                log.warning("item %s: Label Studio refused its task (%s): it goes back to the queue, not offered to the project for "
                            "%.0f s", i, why, self.lease_ttl)
            for i, s, _c in fresh:
                if i in created:
                    self._save(i, Exported(task=created[i], version=version, score=ls_score(s, control=i in first), control=i in first))
            self.metrics.created.inc(len(created))
            refused = set(refusals)  # (import_tasks answers for each item: created, or refused)
            for i in refused:
                self.queue.unclaim(i, self.owner)
            self.queue.mark_passed(self.owner, sorted(refused), now)
            return refused
        return set()

    def _recover_creating(self) -> int:
        """Items whose task was being created when the connector stopped: adopt the task Label Studio has (dropping duplicates)."""
        pending = [m.decode() for m in self.queue.r.smembers(self._creating_key)]  # type: ignore[union-attr]
        tasks = self.exported()
        # An import the connector was killed in may still be running in Label Studio: look again for a
        # while before concluding it created nothing (the item is then exported afresh).
        deadline = time.monotonic() + (IMPORT_SETTLE_SECONDS if pending else 0.0)
        for item in pending:
            if item not in tasks:
                found = find_tasks(self.client, self.project, item)
                while not found and time.monotonic() < deadline:
                    time.sleep(0.5)
                    found = find_tasks(self.client, self.project, item)
                if found:
                    for extra in found[1:]:
                        self.client.tasks.delete(str(extra))
                    self._save(item, Exported(task=found[0], prediction=None, version=-1, score=None))
                    log.info("item %s: adopted task %d created before a restart", item, found[0])
            self.queue.r.srem(self._creating_key, item)
        return len(pending)

    def _rescore(self, scores: dict[str, float], controls: set[str], version: int) -> int:
        """Give every exported task a prediction of ``version`` scored by its rank; then move the project to ``version``."""
        tasks = self.exported()
        name = model_version_name(version)
        n = 0
        for item, s in scores.items():
            ex = tasks.get(item)
            if ex is None:
                log.warning("item %s is leased to %s but has no task (it will be exported again after its lease)", item, self.owner)
                continue
            target = ls_score(s, control=item in controls)
            if ex.version == version and ex.score == target:
                continue
            try:
                pid = ex.prediction if ex.prediction is not None else next(iter(our_predictions(self.client, ex.task, name)), None)
                # Same version: the score moves (a prediction deleted in Label Studio, "Delete predictions", gets a new one).
                rescored = ex.version == version and pid is not None and self._rescored(pid, target)
                if not rescored:  # a new version (or a task adopted after a crash): a new prediction first, the old ones go once the project follows
                    stale = our_predictions(self.client, ex.task)
                    if stale:  # (kept in Redis: a crash before they are deleted leaves them for the next sync)
                        self.queue.r.sadd(self._stale_key, *stale)
                    pid = int(self.client.predictions.create(task=ex.task, model_version=name, score=target, result=[]).id)
            except Exception as exc:
                if self._deleted_in_label_studio(item, ex, exc):
                    continue
                raise
            ex.prediction, ex.version, ex.score, ex.control = pid, version, target, item in controls
            self._save(item, ex)
            n += 1
        if self._project_version != name:
            self.client.projects.update(self.project, model_version=name)
            self._project_version = name
        for raw in self.queue.r.smembers(self._stale_key):  # type: ignore[union-attr]
            delete_prediction(self.client, int(raw))
            self.queue.r.srem(self._stale_key, raw)
        self.metrics.rescored.inc(n)
        return n

    def _retire(self, now: float) -> int:
        """Tasks whose item is no longer held: unserved at once, deleted after ``grace`` unless someone works on them."""
        held = set(self.queue.leased_by(self.owner))
        n = 0
        for item, ex in self.exported().items():
            if item in held:
                continue
            try:
                n += self._retire_one(item, ex, now)
            except Exception as exc:
                if not self._deleted_in_label_studio(item, ex, exc):
                    raise
        return n

    def _retire_one(self, item: str, ex: Exported, now: float) -> int:
        if ex.left_at is None:
            for pid in our_predictions(self.client, ex.task):
                delete_prediction(self.client, pid)
            ex.left_at, ex.prediction, ex.score = now, None, None
            self._save(item, ex)
            return 1
        if now - ex.left_at >= self.grace:
            task = as_dict(self.client.tasks.get(str(ex.task)))
            working = task.get("drafts") or [a for a in task.get("annotations") or [] if not as_dict(a).get("was_cancelled")]
            if not working:
                self.client.tasks.delete(str(ex.task))
                self.metrics.deleted.inc()
            self.queue.r.hdel(self._tasks_key, item)
            return 1
        return 0

    def _rescored(self, pid: int, score: float) -> bool:
        """Set prediction ``pid``'s score; ``False`` when Label Studio has no such prediction any more (a 404)."""
        try:
            self.client.predictions.update(pid, score=score)
        except Exception as exc:
            if status_of(exc) == 404:
                return False
            raise
        return True

    def _deleted_in_label_studio(self, item: str, ex: Exported, exc: Exception) -> bool:
        """Whether ``exc``, an error of a call about ``item``'s task, came of the task having been deleted in Label Studio
        (its Data Manager): the connector then forgets the task and hands the item back to the queue (a new task is
        created for it while it ranks high). ``False`` for any other error (Label Studio down: the sync retries)."""
        if status_of(exc) is None:
            return False
        try:
            self.client.tasks.get(str(ex.task))
            return False
        except Exception as probe:  # noqa: BLE001 - only a 404 says the task is gone
            if status_of(probe) != 404:
                return False
        log.warning("task %d (item %s) was deleted in Label Studio: the connector forgets it, the item goes back to the queue",
                    ex.task, item)
        self.queue.unclaim(item, self.owner)
        self.queue.r.hdel(self._tasks_key, item)
        return True

    # ----------------------------------------------------------------- Label Studio -> labels topic
    def on_annotation(self, ann: dict[str, Any], data: dict[str, Any] | None = None) -> str:
        """Turn one annotation into a label (or a skip). Returns the outcome: ``labeled``,
        ``superseded``, ``skipped``, ``duplicate``, ``refused`` or ``empty``.

        Parameters
        ----------
        ann : the annotation as Label Studio returns it (``id``, ``task``, ``result``,
            ``was_cancelled``, ``completed_by``, ``lead_time``).
        data : its task's data (read from Label Studio when not given).
        """
        ann_id = int(ann["id"])
        if data is None:
            data = as_dict(self.client.tasks.get(str(ann["task"]))).get("data") or {}
        item = data.get(ITEM_ID_FIELD)
        if not isinstance(item, str):
            return self._count("refused")  # a task the connector did not create
        raw = self.queue.r.hget(self._answers_key, str(ann_id))
        seen: dict[str, Any] | None = json.loads(raw) if raw else None
        labeler = self._labeler(ann.get("completed_by"))
        if ann.get("was_cancelled"):
            if seen is not None and seen["digest"] == CANCELLED:
                return self._count("duplicate")
            self.queue.skip(item, labeler, self.service.max_skips, holder=self.owner)
            self._record(ann_id, seen, CANCELLED)
            return self._count("skipped")
        try:
            answer = answer_from_result(ann.get("result") or [], self.from_name, self.multiple, self.classes)
        except SeveralChoices as exc:
            if seen is not None and seen["digest"] == exc.digest:
                return self._count("duplicate")
            return self._refuse(ann_id, seen, item, labeler, str(exc), "refused", exc.digest)
        digest = answer.digest() if answer is not None else "empty"
        if seen is not None and seen["digest"] == digest:
            return self._count("duplicate")
        if answer is None:
            return self._refuse(ann_id, seen, item, labeler, f"no choice in control {self.from_name!r}: not a label", "empty")
        revision = 0 if seen is None else int(seen["revision"]) + 1
        # Label Studio's lead time adds up over an annotation's sessions: a revision took what it adds (its earlier
        # revisions' labels carry the rest), so hours spent count each second once.
        lead = float(ann.get("lead_time") or 0.0)
        seconds = max(0.0, lead - float(seen.get("lead", 0.0))) if seen is not None else lead
        feats = self.queue.features_of([item])[0]
        if feats is None:
            feats = features_from_data(data)
        try:
            accepted = self.service.submit(item, labeler_id=labeler, label=answer.label, labels=answer.labels,
                                           seconds=seconds, label_id=label_id(self.project, ann_id, revision),
                                           features=feats, holder=self.owner, hold=False)  # (its one submitter: never waits)
        except InvalidLabel as exc:
            return self._refuse(ann_id, seen, item, labeler, str(exc), "refused", digest)
        except (LeasedToAnother, UnknownItem) as exc:
            log.warning("annotation %d (item %s) not taken: %s", ann_id, item, exc)
            self._record(ann_id, seen, digest)
            return self._count("refused")
        self._record(ann_id, seen, digest, lead)
        self.queue.r.hdel(self._tasks_key, item)  # the task is done: it stays in Label Studio with its annotation
        if not accepted:
            return self._count("duplicate")
        return self._count("labeled" if revision == 0 else "superseded")

    def _refuse(self, ann_id: int, seen: dict[str, Any] | None, item: str, labeler: str, why: str, outcome: str,
                digest: str = "empty") -> str:
        """An answer that is not a label: said once; the item goes back to the queue (Label Studio shows its task as done,
        so it would hold a place among the tasks for good) and gets a new task when it is exported again."""
        log.warning("annotation %d by %s (item %s) refused: %s; the item goes back to the queue", ann_id, labeler, item, why)
        self._record(ann_id, seen, digest)
        self.queue.unclaim(item, self.owner)
        self.queue.r.hdel(self._tasks_key, item)
        return self._count(outcome)

    def _record(self, ann_id: int, seen: dict[str, Any] | None, digest: str, lead: float | None = None) -> None:
        """What the connector keeps of an annotation: its revision, its answer's digest, the lead time its labels spent."""
        revision = -1 if seen is None else int(seen["revision"])
        if seen is None or seen["digest"] != digest:
            revision += 1
        before = float(seen.get("lead", 0.0)) if seen is not None else 0.0
        spent = before if lead is None else max(lead, before)  # (a stale redelivery does not take back what was counted)
        self.queue.r.hset(self._answers_key, str(ann_id), json.dumps({"revision": revision, "digest": digest, "lead": spent}))

    def _count(self, outcome: str) -> str:
        self.metrics.annotations.labels(outcome=outcome).inc()
        return outcome

    def _labeler(self, who: Any) -> str:
        """The activestream labeler id of a Label Studio user (its email; ``labelstudio-user-<id>`` if unknown)."""
        if isinstance(who, dict):
            who = who.get("id")
        if who is None:
            return "labelstudio-user-unknown"
        uid = int(who)
        if uid not in self._users:
            try:
                self._users[uid] = str(self.client.users.get(uid).email or f"labelstudio-user-{uid}")
            except Exception as exc:  # noqa: BLE001 - an unreadable user still labels
                log.warning("Label Studio user %d not readable (%s)", uid, exc)
                return f"labelstudio-user-{uid}"
        return self._users[uid]

    def poll(self) -> int:
        """Read the annotations of every task updated since the last poll (the webhook's fallback). Returns annotations read."""
        cursor = self.queue.r.get(self._cursor_key)
        items = []
        if cursor:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": cursor.decode()})  # type: ignore[union-attr]
        query = json.dumps({"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:updated_at"]})
        n, newest = 0, cursor.decode() if cursor else None  # type: ignore[union-attr]
        for t in self.client.tasks.list(project=self.project, fields="all", query=query):
            task = as_dict(t)
            for a in task.get("annotations") or []:
                self.on_annotation(as_dict(a) | {"task": task["id"]}, task.get("data") or {})
                n += 1
            stamp = utc_stamp(task.get("updated_at"))
            if stamp and (newest is None or stamp > newest):
                newest = stamp
        if newest:
            # (Label Studio's own clock: an update within its last second is read again, and changes nothing)
            self.queue.r.set(self._cursor_key, newest)
        return n

    def drain_events(self) -> int:
        """Process the annotations the webhook receiver queued. Returns how many."""
        n = 0
        while True:
            try:
                payload = self.events.get_nowait()
            except stdqueue.Empty:
                return n
            ann = payload.get("annotation")
            if not isinstance(ann, dict) or "id" not in ann:
                continue
            task = payload.get("task") if isinstance(payload.get("task"), dict) else None
            if int(ann.get("project") or (payload.get("project") or {}).get("id") or self.project) != self.project:
                continue
            self.on_annotation(ann | {"task": ann.get("task") or (task or {}).get("id")}, (task or {}).get("data"))
            n += 1

    # ----------------------------------------------------------------- loop
    def run(self, *, should_stop: Callable[[], bool], sync_every: float = 2.0, poll_every: float = 30.0,
            on_tick: Callable[[int], None] | None = None, on_error: Callable[[str], None] | None = None,
            burst: bool = False) -> None:
        """Sync, drain webhook events and poll until ``should_stop()``; a Label Studio that is down is retried.

        ``burst=True`` returns after one round of each.
        """
        last_sync = last_poll = 0.0
        backoff = 1.0
        while not should_stop():
            try:
                n = self.drain_events()
                if time.monotonic() - last_poll >= poll_every:
                    n += self.poll()
                    last_poll = time.monotonic()
                if time.monotonic() - last_sync >= sync_every:
                    n += self.sync()
                    last_sync = time.monotonic()
                backoff = 1.0
                if on_tick is not None:
                    on_tick(n)
            except Exception as exc:  # noqa: BLE001 - Label Studio (or Redis) down: say so, retry
                self.metrics.errors.inc()
                log.warning("Label Studio sync failed (%s); retrying in %.0f s", error_text(exc), backoff)
                if on_error is not None:
                    on_error(error_text(exc))
                if burst:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if burst:
                return
            time.sleep(0.2)

    def close(self) -> None:
        self._models.close()
