"""What each labeler-API route does, pure of HTTP: check the request's fields, call the labeling service.

The web layer (:mod:`activestream.labeling.api`) parses the request and maps each refusal
here to its HTTP status; everything a route decides (which field is wrong and why, who the
labeler is) is decided here, so it is easy to test and reads like the API's reference.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from activestream.labeling.auth import reserved_problem
from activestream.labeling.bandit import parse_state
from activestream.labeling.campaign import Campaign, QueueCounts, campaign_view
from activestream.labeling.control_picks import control_flagged
from activestream.labeling.service import InvalidLabel, LabelService, LeasedToAnother, UnknownItem
from activestream.rankedqueue.base import parse_declared, parse_feature_names
from activestream.rankedqueue.keys import (
    META_BANDIT,
    META_CAMPAIGN,
    META_DECLARED_CLASSES,
    META_FEATURE_NAMES,
    META_LABEL_FIELD,
    META_STOP,
    task_of_field,
)
from activestream.rankedqueue.outage import redis_outage
from activestream.schemas import QueueEntry
from activestream.schemas.campaign import read_record
from activestream.schemas.fields import MAX_ID_CHARS
from activestream.streams.bus import BrokerUnavailable

log = logging.getLogger(__name__)

# The longest a label may say it took (seconds): a day. Longer is a clock or client bug (e.g.
# ``1e308``), and the retrainer's timing metrics would average it in.
MAX_LABEL_SECONDS = 86_400.0


class BadRequest(ValueError):
    """A request the API refuses, with the reason (HTTP 400)."""


class NotFound(BadRequest):
    """No such route (HTTP 404)."""


class TooLarge(BadRequest):
    """A body over the API's limit (HTTP 413)."""


class Conflict(BadRequest):
    """The item's lease is another labeler's (HTTP 409)."""


class Unauthorized(BadRequest):
    """No known bearer token, where the API has tokens (HTTP 401)."""


class Forbidden(BadRequest):
    """A request naming another labeler than its token's (HTTP 403)."""


class TooManyFailures(BadRequest):
    """Too many failed token checks from this client lately (HTTP 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(BadRequest):
    """A backend the API needs (Redis) cannot be reached (HTTP 503); nothing changed."""


# The HTTP status of each refusal; any other BadRequest is a 400.
STATUS: dict[type[BadRequest], int] = {Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, TooLarge: 413,
                                       TooManyFailures: 429, Unavailable: 503}

def outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a backend outage (503): Redis away or unable to take writes (:func:`redis_outage`, the services'
    own rule), or the Kafka broker away; a retry later succeeds, the request is not bad."""
    return isinstance(exc, BrokerUnavailable) or redis_outage(exc) is not None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id or a label (``None`` when it can): it must be UTF-8 text (Redis and Kafka carry bytes)
    of at most :data:`MAX_ID_CHARS` characters, as item ids are (a label id or a labeler id is kept in Redis and on the
    labels topic for good: a megabyte each would grow both by that much a label)."""
    if len(value) > MAX_ID_CHARS:
        return f"{len(value)} characters, over the limit of {MAX_ID_CHARS}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid Unicode text (a lone surrogate at character {exc.start})"
    return None


def check_labeler(labeler: str, where: str) -> str:
    """``labeler`` if a client may act as it. Raises :class:`BadRequest` for a reserved id or one that is not text."""
    problem = text_problem(labeler)
    if problem is not None:
        raise BadRequest(f"{where}: {problem}")
    reserved = reserved_problem(labeler)
    if reserved is not None:
        raise BadRequest(f"{where}: {reserved}")
    return labeler


def labeler_of(given: str | None, caller: str | None, where: str) -> str:
    """The labeler a request acts for: its token's (``caller``) if the API has tokens, else the one it names.

    ``where`` names the field in errors, e.g. ``"item 'a': field 'labeler_id'"``.
    """
    if caller is None:
        if not given:
            raise BadRequest(f"{where}: missing")
        return check_labeler(given, where)
    if given not in (None, "", caller):
        raise Forbidden(f"{where}: {given!r} is not the labeler of this request's token")
    return caller


def field(body: dict[str, Any], name: str, kinds: tuple[type, ...], item: str | None, required: bool = True) -> Any:
    """``body[name]`` if of one of ``kinds`` (``None`` if absent and not ``required``); strings must be UTF-8 text."""
    v = body.get(name)
    about = f"item {item!r}" if item is not None else "request"  # (the item id itself is what is wrong)
    if v is None:
        if required:
            raise BadRequest(f"{about}: field {name!r}: missing" + ("" if body else " (the request body is empty)"))
        return None
    if isinstance(v, bool) or not isinstance(v, kinds):
        raise BadRequest(f"{about}: field {name!r}: expected {' or '.join(k.__name__ for k in kinds)}")
    values = v if isinstance(v, list) else [v]
    for j, x in enumerate(values):
        problem = text_problem(x) if isinstance(x, str) else None
        if problem is not None:
            raise BadRequest(f"{about}: field {name + (f'[{j}]' if isinstance(v, list) else '')!r}: {problem}")
    return v


def _item(body: dict[str, Any]) -> str:
    item = str(field(body, "item_id", (str, int), None))
    if len(item) > MAX_ID_CHARS:  # (an integer's digits: no such item is ever queued; not echoed whole in the error)
        raise BadRequest(f"request: field 'item_id': {len(item)} characters, over the limit of {MAX_ID_CHARS}")
    if not item:
        raise BadRequest("item '': field 'item_id': empty")
    return item


def lease(service: LabelService, k_raw: str | None, labeler: str | None, caller: str | None) -> dict[str, Any]:
    """``GET /lease``: the top ``k`` items, leased to the labeler."""
    try:
        k = int(k_raw if k_raw is not None else "10")
    except ValueError:
        raise BadRequest("query 'k': expected an integer") from None
    if not 1 <= k <= 1000:
        raise BadRequest(f"query 'k': expected 1 <= k <= 1000, got {k}")
    who = labeler_of(labeler or "", caller, "query 'labeler'")
    version = int(service.queue.get_meta("model_version") or 0)
    items = [
        json.loads(QueueEntry(e.id, e.score, version, e.features, e.expires_at, control_flagged(e.metadata, e.control)).encode())
        for e in service.lease(k, who)
    ]
    return {"items": items}


def label(service: LabelService, body: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """``POST /labels``: accept a label (``accepted: false`` for a label id accepted before)."""
    item = _item(body)
    labeler = labeler_of(field(body, "labeler_id", (str,), item, required=caller is None), caller, f"item {item!r}: field 'labeler_id'")
    one = field(body, "label", (str, int), item, required=False)
    many = field(body, "labels", (list,), item, required=False)
    if (one is None) == (many is None):
        raise BadRequest(f"item {item!r}: field 'label': give exactly one of 'label' or 'labels'")
    seconds = field(body, "seconds", (int, float), item, required=False) or 0.0
    try:
        seconds = float(seconds)
    except OverflowError:
        raise BadRequest(f"item {item!r}: field 'seconds': too large") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_LABEL_SECONDS):
        raise BadRequest(f"item {item!r}: field 'seconds': expected a number from 0 to {MAX_LABEL_SECONDS:.0f} (a day), got {seconds!r}")
    label_id = field(body, "label_id", (str,), item, required=False)
    try:
        ok = service.submit(item, labeler_id=labeler, label=one, labels=many, seconds=seconds, label_id=label_id)
    except LeasedToAnother as exc:
        raise Conflict(str(exc)) from None
    except (UnknownItem, InvalidLabel) as exc:
        raise BadRequest(str(exc.args[0]) if exc.args else str(exc)) from None  # (a KeyError's str() adds quotes)
    return {"accepted": ok}


def _lease_request(body: dict[str, Any], caller: str | None) -> tuple[str, str]:
    """``(item, labeler)`` of a request about a labeler's lease (``POST /skip``, ``POST /return``)."""
    item = _item(body)
    return item, labeler_of(field(body, "labeler_id", (str,), item, required=caller is None), caller, f"item {item!r}: field 'labeler_id'")


def _held_by_another(item: str, labeler: str) -> Conflict:
    return Conflict(f"item {item!r}: field 'labeler_id': {labeler!r} does not hold its lease (another labeler does)")


def skip(service: LabelService, body: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """``POST /skip``: hand a leased item back; its skip count (0: dropped, -1: unknown)."""
    item, labeler = _lease_request(body, caller)
    skips = service.skip(item, labeler)
    if skips == -2:
        raise _held_by_another(item, labeler)
    return {"skips": skips}


def give_back(service: LabelService, body: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """``POST /return``: hand a leased item back untouched (no skip counted); whether it was the labeler's."""
    item, labeler = _lease_request(body, caller)
    returned = service.give_back(item, labeler)
    if returned is None:
        raise _held_by_another(item, labeler)
    return {"returned": returned}


def status(service: LabelService) -> dict[str, Any]:
    """``GET /status``: the queue's counts and the live model (``classes``: the declared ones when there are, else the model's)."""
    q = service.queue
    # (an expired lease counts as pending, whether or not anyone leased since)
    meta = q.get_meta_fields("model_version", "classes", "task", META_FEATURE_NAMES, META_STOP, META_BANDIT, META_DECLARED_CLASSES,
                             META_LABEL_FIELD)
    declared = service.classes if service.classes is not None else parse_declared(meta[META_DECLARED_CLASSES])
    # (the live model's task; before any, the shape the campaign's answers hold: ACTIVESTREAM_TASK, an import, a first label)
    task = meta["task"] or task_of_field(meta[META_LABEL_FIELD]) or "multiclass"
    out = {"pending": q.n_waiting(), "leased": q.n_leased(), "labeled": q.n_labeled(), "dropped": q.n_dropped(), "model_version": int(meta["model_version"] or 0),
           "classes": list(declared) if declared is not None else meta_classes(meta["classes"]), "task": task, **page_facts(meta)}
    if meta[META_BANDIT]:  # the strategy bandit's arms (strategy albl)
        out["strategy_bandit"] = parse_state(meta[META_BANDIT])
    return out


def campaign(service: LabelService) -> dict[str, Any]:
    """``GET /campaign``: the live version's estimates, stop rules and auto-accept state, and the queue's counts."""
    q = service.queue
    meta = q.get_meta_fields("model_version", META_CAMPAIGN)
    counts = QueueCounts(pending=q.n_waiting(), leased=q.n_leased(), labeled=q.n_labeled(), dropped=q.n_dropped(),
                         streamed=q.items_streamed())
    view: Campaign = campaign_view(q.k.namespace, int(meta["model_version"] or 0), read_record(meta[META_CAMPAIGN]), counts)
    view.labeling = dict(service.settings)
    return view.model_dump(mode="json")


def meta_classes(raw: str | None, field: str = "classes") -> list[Any]:
    """The live model's classes (or another list) from the queue's meta: ``[]`` when unset or not a JSON list (not a 500 for every page)."""
    try:
        classes = json.loads(raw or "[]")
    except ValueError:
        log.warning("queue meta %r is not JSON (%.80r): taken as empty", field, raw)
        return []
    return classes if isinstance(classes, list) else []


def page_facts(meta: dict[str, str | None]) -> dict[str, Any]:
    """What the labeling page shows beside the counts, from the queue's meta.

    ``feature_names`` : the features' names (``[]``: unknown); ``stop`` : the live model version's stop
    signal (:func:`activestream.scorer.versions.stop_signal`; ``None`` before any).
    """
    names = parse_feature_names(meta.get(META_FEATURE_NAMES)) or []
    try:
        stop = json.loads(meta.get(META_STOP) or "null")
    except ValueError:
        log.warning("queue meta %r is not JSON: taken as no stop signal", META_STOP)
        stop = None
    if not (isinstance(stop, dict) and isinstance(stop.get("fired"), dict)):
        stop = None
    return {"feature_names": names, "stop": stop}
