"""Label Studio's side of the connector: the SDK client, projects, webhooks, and what the SDK returns.

Label Studio's SDK (``label-studio-sdk``) is imported lazily, with an error that says what to install.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from activestream.labeling.label_studio_config import ITEM_ID_FIELD, model_version_name
from activestream.scorer.versions import newest_model_version
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
WEBHOOK_SECRET_HEADER = "X-Activestream-Secret"  # noqa: S105 - a header name, not a secret


def load_client(url: str, token: str, *, http: Any = None, timeout: float = 30.0) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client for ``url`` with API ``token`` (legacy or personal access token).

    ``http`` is an ``httpx.Client`` the caller owns and closes (``None``: the SDK's own).

    Raises
    ------
    ImportError
        When ``label-studio-sdk`` is not installed, saying what to install.
    """
    try:
        from label_studio_sdk import LabelStudio
    except ImportError as exc:
        raise ImportError("the Label Studio connector needs the label-studio-sdk package: "
                          "pip install 'activestream[labelstudio]' (or: pip install label-studio-sdk)") from exc
    if http is not None:
        return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=timeout, httpx_client=http)
    return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=timeout)


#: What Label Studio answers a request it will not take (a task it refuses, an invalid body): not an outage.
REFUSED_STATUSES = (400, 422)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an error the SDK raised for Label Studio's answer (its ``ApiError``); ``None`` for any other
    error (Label Studio unreachable)."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def api_problem(exc: BaseException, url: str, project: int | None = None) -> str | None:
    """One line saying what a refused start-up call means (a wrong token, no such project), or ``None`` if it is not one.

    The SDK's ``ApiError`` prints the response's headers (a session cookie among them): never shown.
    """
    status = status_of(exc)
    if status is None:
        return None
    body = getattr(exc, "body", None)
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = body.get("validation_errors") if isinstance(body, dict) else None
    why = f"{status}{': ' + str(detail) if detail else ''}{' ' + json.dumps(errors)[:500] if errors else ''}"
    if status in (401, 403):
        return f"Label Studio at {url} refused the token ({why}): check ACTIVESTREAM_LABEL_STUDIO_TOKEN (Account & Settings > Access Token)"
    if status == 404 and project is not None:
        return f"Label Studio at {url} has no project {project} ({why}): check ACTIVESTREAM_LABEL_STUDIO_PROJECT (or --project)"
    return f"Label Studio at {url} answered {why}"


def error_text(exc: BaseException) -> str:
    """An error as one short line: for the SDK's ``ApiError``, Label Studio's status and answer (its own text holds the
    response's headers, a session cookie among them); else the type and message."""
    status = status_of(exc)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    body = getattr(exc, "body", None)
    text = json.dumps(body) if isinstance(body, dict | list) else str(body or "")
    return f"Label Studio answered {status}: {text[:500]}"


def wait_for_server(client: Any, url: str, should_stop: Callable[[], bool], sleep: Callable[[float], None] = time.sleep) -> bool:
    """Ask Label Studio who the token belongs to until it answers (backing off while it is unreachable).

    Returns False if ``should_stop()`` came first; a refused token raises (see :func:`api_problem`).
    """
    backoff = 1.0
    while not should_stop():
        try:
            client.users.whoami()
            return True
        except Exception as exc:  # noqa: BLE001 - unreachable (connection refused, timeout, 5xx): wait; refused: raise
            status = status_of(exc)
            if status is not None and status < 500:
                raise
            log.warning("Label Studio at %s not reachable (%s: %s); trying again in %.0f s", url, type(exc).__name__, exc, backoff)
            sleep(backoff)
            backoff = min(backoff * 2, 30.0)
    return False


def find_project(client: Any, title: str) -> int | None:
    """The id of the project titled ``title`` (the oldest, if several), or ``None``."""
    found = sorted(int(p.id) for p in client.projects.list() if p.title == title)
    return found[0] if found else None


def create_project(client: Any, title: str, label_config: str, version: int = 0) -> int:
    """Create a Label Studio project that serves tasks by uncertainty; returns its id."""
    project = client.projects.create(title=title, label_config=label_config, sampling=UNCERTAINTY_SAMPLING,
                                     model_version=model_version_name(version), show_skip_button=True)
    return int(project.id)


def ensure_webhook(client: Any, project: int, url: str, secret: str) -> int:
    """Register (or refresh) the project's webhook to ``url`` for created and updated annotations; returns its id."""
    for hook in client.webhooks.list(project=str(project)):
        if hook.url == url:
            client.webhooks.update(hook.id, url=url, actions=list(WEBHOOK_ACTIONS), send_payload=True, is_active=True,
                                   headers={WEBHOOK_SECRET_HEADER: secret})
            return int(hook.id)
    hook = client.webhooks.create(url=url, project=project, actions=list(WEBHOOK_ACTIONS), send_payload=True, is_active=True,
                                  headers={WEBHOOK_SECRET_HEADER: secret})
    return int(hook.id)


def live_classes(bus: Bus, topics: Topics) -> tuple[tuple[Any, ...], str]:
    """The newest model version's classes and task on the models topic (``((), "multiclass")`` before any)."""
    consumer = bus.consumer([topics.models], None)
    try:
        newest, _ = newest_model_version(consumer.read_to_end(30.0), 0)
    finally:
        consumer.close()
    return (tuple(newest.classes), newest.task) if newest is not None else ((), "multiclass")


def find_tasks(client: Any, project: int, item_id: str) -> list[int]:
    """The ids of ``project``'s tasks holding item ``item_id`` that nobody has annotated yet, ascending (an annotated one, e.g.
    whose answer was refused, is done in Label Studio's eyes: no labeler is served it again)."""
    query = json.dumps({"filters": {"conjunction": "and", "items": [
        {"filter": f"filter:tasks:data.{ITEM_ID_FIELD}", "operator": "equal", "type": "String", "value": item_id}]}})
    tasks = client.tasks.list(project=project, query=query, fields="task_only")
    return sorted(int(t.id) for t in tasks if not (getattr(t, "total_annotations", 0) or getattr(t, "is_labeled", False)))


def import_tasks(client: Any, project: int, ids: list[str], req: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, str]]:
    """Import the tasks ``req`` of items ``ids`` into ``project``.

    Label Studio takes or refuses an import whole: a refused one (400, 422) is imported again task by task, so one task it
    will not take costs that item only (one stalled every export before). Another error (it is down) raises.

    Returns
    -------
    created : item -> its new task's id.
    refused : item -> why Label Studio refused its task.
    """
    try:
        res = client.projects.import_tasks(project, request=req, return_task_ids=True)
        return {i: int(t) for i, t in zip(ids, res.task_ids, strict=True)}, {}
    except Exception as exc:
        if status_of(exc) not in REFUSED_STATUSES:
            raise
        if len(req) == 1:
            return {}, {ids[0]: error_text(exc)}
        whole = exc
    created: dict[str, int] = {}
    refused: dict[str, str] = {}
    for i, one in zip(ids, req, strict=True):
        got, why = import_tasks(client, project, [i], [one])
        created |= got
        refused |= why
    if not created:  # (every task refused: the project's, e.g. a config changed to show a field no item has; raised as it came)
        raise whole
    return created, refused


def our_predictions(client: Any, task: int, name: str | None = None) -> list[int]:
    """The ids of the connector's predictions on ``task`` (those of model version ``name`` only, if given)."""
    return [int(p.id) for p in client.predictions.list(task=task)
            if (p.model_version == name if name is not None else str(p.model_version or "").startswith("activestream-v"))]


def delete_prediction(client: Any, pid: int) -> None:
    """Delete prediction ``pid`` (one already gone is fine)."""
    try:
        client.predictions.delete(pid)
    except Exception as exc:  # noqa: BLE001 - already gone is fine
        log.debug("prediction %d not deleted: %s", pid, exc)


def as_dict(obj: Any) -> dict[str, Any]:
    """An SDK model (pydantic) or a plain dict as a dict."""
    if isinstance(obj, dict):
        return obj
    return obj.dict() if hasattr(obj, "dict") else dict(obj)


def utc_stamp(value: Any) -> str | None:
    """A time as Label Studio's Data Manager filters take it (``2026-01-31T12:00:00.000000Z``), or ``None``."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
