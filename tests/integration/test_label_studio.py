"""The Label Studio connector against a real Label Studio (its PyPI package, SQLite), over real Redis.

A labeler works as in Label Studio's own front end: ``GET /api/projects/{id}/next`` for the
next task, ``POST /api/tasks/{id}/annotations/`` to answer or skip it. The in-process bus
stands for Kafka here; ``test_label_studio_restart.py`` runs the connector as a process over
real Kafka and SIGKILLs it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from activestream.labeling.label_studio import LabelStudioConnector
from activestream.labeling.label_studio_config import ITEM_ID_FIELD, labeling_config, model_version_name
from activestream.labeling.label_studio_project import create_project, ensure_webhook, find_project, load_client
from activestream.labeling.label_studio_webhook import serve_webhook
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import Label, decode_label
from activestream.schemas.wire_json import as_written
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics
from tests.label_studio_fixtures import LabelStudioServer

pytestmark = pytest.mark.integration

CLASSES = ("cat", "dog")


class Annotator:
    """A labeler using Label Studio's REST API as its front end does."""

    def __init__(self, server: LabelStudioServer, project: int) -> None:
        self.base, self.token, self.project = server.url, server.token, project

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(self.base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback
            raw = r.read()
            return json.loads(raw) if raw else None

    def next(self) -> dict[str, Any] | None:
        try:
            return self.call("GET", f"/api/projects/{self.project}/next")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # no task left
                return None
            raise

    def answer(self, task: int, choice: str, lead_time: float = 2.5) -> dict[str, Any]:
        body = {"result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}],
                "lead_time": lead_time}
        return self.call("POST", f"/api/tasks/{task}/annotations/", body)  # type: ignore[no-any-return]

    def skip(self, task: int) -> dict[str, Any]:
        return self.call("POST", f"/api/tasks/{task}/annotations/", {"result": [], "was_cancelled": True})  # type: ignore[no-any-return]

    def update(self, annotation: int, choice: str, lead_time: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]}
        if lead_time is not None:  # (Label Studio's front end sends the annotation's whole lead time, its sessions added up)
            body["lead_time"] = lead_time
        return self.call("PATCH", f"/api/annotations/{annotation}/", body)  # type: ignore[no-any-return]


@pytest.fixture
def campaign(redis_client: redis.Redis, namespace: str, label_studio: LabelStudioServer) -> Iterator[dict[str, Any]]:
    """60 ranked items (model v1, distinct scores), a Label Studio project for them, and a connector."""
    rng = np.random.default_rng(7)
    n = 60
    ids = [f"it{i:03d}" for i in range(n)]
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    X = rng.normal(size=(n, 4)).astype(np.float32)
    queue.add(ids, np.zeros(n), X, [{"text": f"text of {i}"} for i in ids])
    v1 = rng.permutation(n) / n
    queue.rerank(lambda batch, _X: np.array([v1[int(i[2:])] for i in batch]), version=1)
    bus, topics = InMemoryBus(), Topics(namespace)
    http = httpx.Client(timeout=30)
    client = load_client(label_studio.url, label_studio.token, http=http)
    project = create_project(client, f"activestream {namespace}", labeling_config(CLASSES, "multiclass", data_field="text"), version=1)
    service = LabelService(queue, bus, topics)
    conn = LabelStudioConnector(client, project, queue, service, bus, topics, top_n=30, grace=0.0, names=["a", "b", "c", "d"])
    conn.ensure_uncertainty_sampling()
    try:
        yield {"queue": queue, "bus": bus, "topics": topics, "client": client, "project": project, "conn": conn, "X": X,
               "annotator": Annotator(label_studio, project), "email": label_studio.email}
    finally:
        conn.close()
        client.projects.delete(project)
        http.close()


def labels_of(bus: InMemoryBus, topics: Topics) -> list[Label]:
    return [decode_label(m.value) for m in bus.messages(topics.labels)]


def test_label_studio_serves_activestream_top_and_each_annotation_is_one_label(campaign: dict[str, Any]) -> None:
    queue, conn, who, bus, topics = campaign["queue"], campaign["conn"], campaign["annotator"], campaign["bus"], campaign["topics"]
    top = [i for i, _ in queue.top(20)]
    assert conn.sync() == 30
    assert queue.n_leased_by(conn.owner) == 30  # leased: the labeler API and the dispatcher no longer hand them out
    served, answers = [], {}
    for k in range(20):
        task = who.next()
        assert task is not None
        item = task["data"][ITEM_ID_FIELD]
        served.append(item)
        assert task["data"]["text"] == f"text of {item}"
        assert task["data"]["features"] == dict(zip("abcd", as_written(campaign["X"][int(item[2:])]), strict=True))  # (as written)
        answers[item] = who.answer(task["id"], CLASSES[k % 2])
        conn.poll()
        conn.sync()  # (the item leaves the queue; the next of the ranking takes its place)
    assert served == top  # Label Studio's first 20 tasks are activestream's top 20, in its order
    labels = labels_of(bus, topics)
    assert [lab.item_id for lab in labels] == served  # each annotation reached the labels topic exactly once
    assert len({lab.label_id for lab in labels}) == 20
    for k, lab in enumerate(labels):
        assert lab.label == CLASSES[k % 2] and lab.labeler_id == campaign["email"] and lab.seconds == 2.5
        assert lab.label_id == f"labelstudio:{campaign['project']}:{answers[lab.item_id]['id']}"
        np.testing.assert_array_equal(lab.features, campaign["X"][int(lab.item_id[2:])])
        assert queue.is_labeled(lab.item_id)
    # A re-poll from the start, and a redelivered annotation, change nothing.
    queue.r.delete(conn._cursor_key)
    assert conn.poll() >= 20
    ann = answers[served[0]]
    assert conn.on_annotation(ann, None) == "duplicate"
    assert len(labels_of(bus, topics)) == 20
    # An updated annotation supersedes the earlier label (a new label id, same item).
    first = answers[served[0]]
    who.update(first["id"], "dog" if labels[0].label == "cat" else "cat", lead_time=4.0)
    conn.poll()
    later = labels_of(bus, topics)
    assert len(later) == 21 and later[-1].item_id == served[0] and later[-1].label != labels[0].label
    assert later[-1].seconds == 1.5  # (the 1.5 s the edit added to the 2.5 s the first label carries: hours count each once)
    assert later[-1].label_id == f"labelstudio:{campaign['project']}:{first['id']}:r1"
    # A skipped task goes back to the queue as that labeler's skip.
    task = who.next()
    assert task is not None
    item = task["data"][ITEM_ID_FIELD]
    who.skip(task["id"])
    assert conn.poll() >= 1
    assert queue.score_of(item) is not None and queue.skipped_by(campaign["email"], [item]) == [True]
    assert len(labels_of(bus, topics)) == 21


def test_a_new_model_version_reorders_label_studio_and_outranked_tasks_leave(campaign: dict[str, Any]) -> None:
    queue, conn, who, client, project = campaign["queue"], campaign["conn"], campaign["annotator"], campaign["client"], campaign["project"]
    conn.top_n = 10
    v1_top = [i for i, _ in queue.top(10)]
    conn.sync()
    assert sorted(queue.leased_by(conn.owner)) == sorted(v1_top)
    # Model v2 ranks the other way round: the old top leaves, the new top is served.
    scores = dict(queue.ranking()) | dict(zip(queue.leased_by(conn.owner), queue.lease_scores(queue.leased_by(conn.owner)), strict=True))
    queue.rerank(lambda batch, _X: np.array([1.0 - scores[i] for i in batch]), version=2)
    conn.sync()
    assert client.projects.get(project).model_version == model_version_name(2)
    v2_top = [i for i, _ in sorted(((i, 1.0 - s) for i, s in scores.items()), key=lambda p: (p[1], p[0]), reverse=True)[:10]]
    assert set(queue.leased_by(conn.owner)) == set(v2_top)
    preds = [p for t in client.tasks.list(project=project, fields="all") for p in (t.predictions or [])]
    assert {p["model_version"] if isinstance(p, dict) else p.model_version for p in preds} == {model_version_name(2)}
    conn.sync()  # (grace 0: the outranked tasks, unserved since the last sync, are deleted now)
    assert sorted(t.data[ITEM_ID_FIELD] for t in client.tasks.list(project=project)) == sorted(v2_top)
    # An item labeled elsewhere (auto-accepted) leaves Label Studio's queue.
    queue.mark_labeled(v2_top[0], "auto-1")
    conn.sync()
    served = []
    for _ in range(9):
        task = who.next()
        assert task is not None
        served.append(task["data"][ITEM_ID_FIELD])
        who.answer(task["id"], "cat")
    assert served == v2_top[1:]


def test_a_task_deleted_in_label_studio_is_forgotten_and_the_sync_goes_on(campaign: dict[str, Any]) -> None:
    # (a labeler audit: one task deleted in the Data Manager made every later sync fail with a 400, restarts too)
    queue, conn, client, project = campaign["queue"], campaign["conn"], campaign["client"], campaign["project"]
    conn.top_n = 5
    conn.sync()
    gone_item, gone = next(iter(conn.exported().items()))
    client.tasks.delete(str(gone.task))
    scores = dict(queue.ranking()) | dict(zip(queue.leased_by(conn.owner), queue.lease_scores(queue.leased_by(conn.owner)), strict=True))
    queue.rerank(lambda batch, _X: np.array([scores[i] for i in batch]), version=2)  # (same order: every task gets a new prediction)
    conn.sync()  # (meets the deleted task: forgets it, hands its item back)
    assert gone_item not in conn.exported() and gone_item not in queue.leased_by(conn.owner)
    conn.sync()  # (exports it again: it still ranks in the top)
    tasks = {t.data[ITEM_ID_FIELD]: int(t.id) for t in client.tasks.list(project=project)}
    assert len(tasks) == 5 and tasks[gone_item] != gone.task  # (still top-ranked: a new task of it)
    assert conn.exported()[gone_item].task == tasks[gone_item] and sorted(queue.leased_by(conn.owner)) == sorted(tasks)
    assert conn.sync() == 0
    # A prediction deleted there ("Delete predictions"): the next re-score of the same version makes it anew.
    # (one rescored since its export: a task created with its prediction does not know that prediction's id yet)
    item, ex = next((i, e) for i, e in conn.exported().items() if e.prediction is not None)
    client.predictions.delete(ex.prediction)
    scores = dict(queue.ranking()) | dict(zip(queue.leased_by(conn.owner), queue.lease_scores(queue.leased_by(conn.owner)), strict=True))
    queue.rerank(lambda batch, _X: np.array([scores[i] + 0.001 for i in batch]), version=2)  # (same version, other scores)
    conn.sync()
    again = conn.exported()[item].prediction
    assert again is not None and again != ex.prediction and [int(p.id) for p in client.predictions.list(task=ex.task)] == [again]


def test_an_item_without_the_field_the_config_shows_gets_an_empty_one_and_the_import_goes_on(
        redis_client: redis.Redis, namespace: str, label_studio: LabelStudioServer) -> None:
    # (a labeler audit: with --data-field note, one item without "note" made Label Studio refuse every import, for good,
    # and the top items stayed leased for an hour)
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["with", "without"], np.array([0.9, 0.8]), np.zeros((2, 2), dtype=np.float32), [{"note": "a note"}, {}])
    bus, topics = InMemoryBus(), Topics(namespace)
    with httpx.Client(timeout=30) as http:
        client = load_client(label_studio.url, label_studio.token, http=http)
        project = create_project(client, f"notes {namespace}", labeling_config(CLASSES, "multiclass", data_field="note"))
        conn = LabelStudioConnector(client, project, queue, LabelService(queue, bus, topics), bus, topics, top_n=5, grace=0.0)
        try:
            assert conn.sync() == 2
            notes = {t.data[ITEM_ID_FIELD]: t.data["note"] for t in client.tasks.list(project=project)}
            assert notes == {"with": "a note", "without": ""}
        finally:
            conn.close()
            client.projects.delete(project)


def test_the_webhook_brings_annotations_without_polling(campaign: dict[str, Any]) -> None:
    conn, who, client, project = campaign["conn"], campaign["annotator"], campaign["client"], campaign["project"]
    server = serve_webhook(conn.events, "s3cret")
    try:
        ensure_webhook(client, project, f"http://127.0.0.1:{server.server_port}/webhook", "s3cret")
        # (a connector started again finds its hook and refreshes it: that call crashed on an argument the SDK lacks)
        assert ensure_webhook(client, project, f"http://127.0.0.1:{server.server_port}/webhook", "s3cret") == \
            ensure_webhook(client, project, f"http://127.0.0.1:{server.server_port}/webhook", "s3cret")
        conn.sync()
        task = who.next()
        assert task is not None
        who.answer(task["id"], "dog")
        deadline = time.monotonic() + 30
        n = 0
        while n == 0 and time.monotonic() < deadline:
            n = conn.drain_events()
            time.sleep(0.1)
        labels = labels_of(campaign["bus"], campaign["topics"])
        assert [lab.item_id for lab in labels] == [task["data"][ITEM_ID_FIELD]] and labels[0].label == "dog"
        assert conn.poll() >= 1  # the poll sees it too, and changes nothing
        assert len(labels_of(campaign["bus"], campaign["topics"])) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_label_studio_restart_loses_and_duplicates_nothing(campaign: dict[str, Any], label_studio: LabelStudioServer) -> None:
    if label_studio.proc is None:
        pytest.skip("Label Studio given by ACTIVESTREAM_TEST_LABEL_STUDIO: this test restarts its own")
    conn, who, bus, topics = campaign["conn"], campaign["annotator"], campaign["bus"], campaign["topics"]
    conn.sync()
    done = [who.answer(t["id"], "cat") for t in (who.next(), who.next()) if t is not None]
    label_studio.stop()  # (before the connector has read those two)
    try:
        with pytest.raises(httpx.TransportError):
            conn.poll()
    finally:
        label_studio.start()
    conn.poll()
    conn.sync()
    task = who.next()
    assert task is not None
    done.append(who.answer(task["id"], "dog"))
    conn.poll()
    conn.poll()
    labels = labels_of(bus, topics)
    assert sorted(lab.label_id for lab in labels) == sorted(f"labelstudio:{campaign['project']}:{a['id']}" for a in done)


def test_control_picks_are_served_first_say_nothing_of_it_and_their_labels_say_so(campaign: dict[str, Any]) -> None:
    queue, bus, topics, client, project = campaign["queue"], campaign["bus"], campaign["topics"], campaign["client"], campaign["project"]
    conn = LabelStudioConnector(client, project, queue, LabelService(queue, bus, topics), bus, topics, top_n=10, grace=0.0, explore=0.5, seed=1)
    try:
        conn.sync()
        controls = {i for i in queue.leased_by(conn.owner) if queue.control_holder(i) == conn.owner}
        assert len(controls) == 5
        who = campaign["annotator"]
        served = []
        for _ in range(6):
            task = who.next()
            assert task is not None
            served.append(task["data"][ITEM_ID_FIELD])
            assert "activestream_control" not in task["data"]  # (a labeler who could tell a control pick would label it differently)
            who.answer(task["id"], "cat")
        assert set(served[:5]) == controls  # (the random-control share is served before the ranked items)
        conn.poll()
        labels = {lab.item_id: lab for lab in labels_of(bus, topics)}
        assert sorted(labels) == sorted(served)
        assert all(labels[i].control == (i in controls) for i in served)
    finally:
        conn.close()


def test_created_projects_sample_by_uncertainty_and_are_found_by_title(label_studio: LabelStudioServer) -> None:
    with httpx.Client(timeout=30) as http:
        client = load_client(label_studio.url, label_studio.token, http=http)
        title = f"tags {time.time_ns()}"
        project = create_project(client, title, labeling_config(["a", "b", "c"], "multilabel", data_field="text"))
        try:
            got = client.projects.get(project)
            assert got.sampling == "Uncertainty sampling" and 'choice="multiple"' in got.label_config
            assert find_project(client, title) == project and find_project(client, title + " (no such)") is None
        finally:
            client.projects.delete(project)


def test_audit_items_are_served_first_look_like_any_task_and_their_labels_are_audits(campaign: dict[str, Any]) -> None:
    """Issue 20: a hidden audit item (an auto-accepted one queued for labelers) goes to Label Studio ahead of the ranked
    tasks, says nothing of being an audit, and its answer comes back flagged with the auto-label it checks."""
    queue, bus, topics, conn = campaign["queue"], campaign["bus"], campaign["topics"], campaign["conn"]
    from activestream.rankedqueue.auto_accept import record_audits

    record_audits(queue, {"audit-1": ("cat", 1)})  # (as the scorer does: recorded, then queued at score 0, below every ranked item)
    queue.add(["audit-1"], np.zeros(1), np.ones((1, 4), dtype=np.float32), [{"text": "an auto-accepted item"}])
    conn.sync()
    assert "audit-1" in queue.leased_by(conn.owner)
    who = campaign["annotator"]
    task = who.next()
    assert task is not None and task["data"][ITEM_ID_FIELD] == "audit-1"  # (served before the 30 ranked tasks)
    assert "activestream_control" not in task["data"] and not any("audit" in k for k in task["data"])
    assert conn.sync() == 0  # a sync while it is open keeps it (first, leased, its task untouched), and every ranked task
    assert "audit-1" in queue.leased_by(conn.owner) and conn.exported()["audit-1"].control
    who.answer(task["id"], "dog")
    conn.poll()
    (lab,) = [lab for lab in labels_of(bus, topics) if lab.item_id == "audit-1"]
    assert lab.audit and lab.audited_label == "cat" and lab.label == "dog" and not lab.control
    nxt = who.next()
    assert nxt is not None and nxt["data"][ITEM_ID_FIELD] != "audit-1"


def test_a_refused_answer_sends_its_item_back_to_the_queue_once(campaign: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    # Label Studio shows an annotated task as done: were the item kept leased, it would hold one of the
    # project's places for good and no labeler would see it again.
    queue, conn, who, bus, topics = campaign["queue"], campaign["conn"], campaign["annotator"], campaign["bus"], campaign["topics"]
    conn.service = LabelService(queue, bus, topics, classes=CLASSES)  # (declared: "merlot" is not one of them)
    conn.sync()
    task = who.next()
    assert task is not None
    item = task["data"][ITEM_ID_FIELD]
    with caplog.at_level("WARNING", logger="activestream.labeling.label_studio"):
        who.answer(task["id"], "merlot")
        conn.poll()
        queue.r.delete(conn._cursor_key)
        conn.poll()  # (read again: said once)
    said = [r.getMessage() for r in caplog.records if item in r.getMessage()]
    assert len(said) == 1 and "refused" in said[0] and "merlot" in said[0] and campaign["email"] in said[0], said
    assert labels_of(bus, topics) == []
    assert item not in queue.leased_by(conn.owner) and queue.score_of(item) is not None  # pending again
    assert item not in conn.exported()
    # A connector that crashed while exporting it again looks for its task: the refused one is done, not adopted.
    queue.r.sadd(conn._creating_key, item)
    conn._recover_creating()
    assert item not in conn.exported()
    conn.sync()  # still among the top: exported again, as a new task a labeler is served
    assert item in queue.leased_by(conn.owner) and conn.exported()[item].task != task["id"]
    again = who.next()
    assert again is not None and again["data"][ITEM_ID_FIELD] == item
    who.answer(again["id"], "cat")
    conn.poll()
    assert [(lab.item_id, lab.label) for lab in labels_of(bus, topics)] == [(item, "cat")]


def test_start_up_waits_for_label_studio_and_names_a_refused_token_or_project(label_studio: LabelStudioServer,
                                                                                caplog: pytest.LogCaptureFixture) -> None:
    from activestream.labeling.label_studio_project import api_problem, wait_for_server

    with httpx.Client(timeout=30) as http:
        assert wait_for_server(load_client(label_studio.url, label_studio.token, http=http), label_studio.url, lambda: False)
        with pytest.raises(Exception) as refused:
            wait_for_server(load_client(label_studio.url, "not-a-token", http=http), label_studio.url, lambda: False)
        line = api_problem(refused.value, label_studio.url)
        assert line is not None and line.startswith(f"Label Studio at {label_studio.url} refused the token (401")
        assert "sessionid" not in line and "ACTIVESTREAM_LABEL_STUDIO_TOKEN" in line
        client = load_client(label_studio.url, label_studio.token, http=http)
        with pytest.raises(Exception) as missing:
            client.projects.get(987654)
        assert api_problem(missing.value, label_studio.url, 987654) == (
            f"Label Studio at {label_studio.url} has no project 987654 (404: No Project matches the given query.): "
            "check ACTIVESTREAM_LABEL_STUDIO_PROJECT (or --project)")
    # Unreachable: it waits (backing off, naming the address) until told to stop.
    down = "http://127.0.0.1:1"
    waits: list[float] = []
    with httpx.Client(timeout=2) as http, caplog.at_level("WARNING"):
        assert not wait_for_server(load_client(down, "t", http=http), down, lambda: len(waits) >= 3, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0] and f"Label Studio at {down} not reachable" in caplog.text
