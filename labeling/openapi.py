"""The labeler API's OpenAPI document: request and reply schemas, statuses, headers (served at ``/openapi.json``).

The routes read their query and body themselves (:mod:`labeling.routes` names the item, the
field and the reason of a refusal, as a 400 ``{"error": ...}`` rather than FastAPI's 422), so
what they take is described here as JSON Schema; the reply schemas are those the routes
answer, the queue entry the ``queue_entry.v1`` contract itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from activestream.labeling.routes import MAX_LABEL_SECONDS

DESCRIPTION = (
    "Lease the items a label would teach the model most, submit labels, skip. With a tokens file, every route but "
    "`GET /status`, `GET /campaign`, the page and this document needs `Authorization: Bearer <token>`. Errors are `{\"error\": \"...\"}` "
    "naming the item, the field and the reason. Reference: docs/http-api.md."
)

_ID = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
_LABEL = {"oneOf": [{"type": "string"}, {"type": "integer"}]}


def _queue_entry() -> dict[str, Any]:
    schema = json.loads(files("activestream.schemas").joinpath("json/queue_entry.v1.schema.json").read_text())
    return {k: v for k, v in schema.items() if not k.startswith("$")}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "LeaseReply": {"type": "object", "required": ["items"], "additionalProperties": False,
                   "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/QueueEntry"}}}},
    "LabelReply": {"type": "object", "required": ["accepted"], "additionalProperties": False,
                   "properties": {"accepted": {"type": "boolean", "description": "false: this label_id was accepted before"}}},
    "SkipReply": {"type": "object", "required": ["skips"], "additionalProperties": False,
                  "properties": {"skips": {"type": "integer", "minimum": -1,
                                           "description": "labelers who passed on the item; 0: dropped; -1: unknown item"}}},
    "ReturnReply": {"type": "object", "required": ["returned"], "additionalProperties": False,
                    "properties": {"returned": {"type": "boolean", "description": "false: it was not leased (run out, labeled or unknown)"}}},
    "Status": {"type": "object", "required": ["pending", "leased", "labeled", "dropped", "model_version", "classes", "task"], "additionalProperties": False,
               "properties": {"pending": {"type": "integer", "minimum": 0}, "leased": {"type": "integer", "minimum": 0},
                              "labeled": {"type": "integer", "minimum": 0},
                              "dropped": {"type": "integer", "minimum": 0, "description": "items that left the queue unlabeled: max_skips labelers passed on each"},
                              "model_version": {"type": "integer", "minimum": 0},
                              "classes": {"type": "array", "description": "the answers the page offers: the declared classes (ACTIVESTREAM_CLASSES), else the live model's"}, "task": {"type": "string", "enum": ["multiclass", "multilabel"]},
                              "feature_names": {"type": "array", "items": {"type": "string"}, "description": "the features' names ([]: unknown)"},
                              "stop": {"type": ["object", "null"], "description": "the live model version's stop signal (null before any)"},
                              "strategy_bandit": {"type": "object", "additionalProperties": {"type": "number"},
                                                  "description": "with strategy albl: each arm's probability (strategy_weight_<arm>), "
                                                                 "batches chosen (strategy_picks_<arm>) and summed reward (strategy_reward_<arm>)"}}},
    "LabelRequest": {
        "type": "object", "required": ["item_id"],
        "description": "exactly one of label or labels; labeler_id is required without tokens (with tokens it is the token's)",
        "oneOf": [{"required": ["label"], "not": {"required": ["labels"]}}, {"required": ["labels"], "not": {"required": ["label"]}}],
        "properties": {
            "item_id": _ID,
            "labeler_id": {"type": "string", "minLength": 1, "description": "not dispatch:*, labelstudio:*, auto or baseline (reserved)"},
            "label": _LABEL,
            "labels": {"type": "array", "items": _LABEL},
            "seconds": {"type": "number", "minimum": 0, "maximum": MAX_LABEL_SECONDS, "description": "time spent labeling"},
            "label_id": {"type": "string", "description": "idempotence key (default: a new one)"},
        },
    },
    "SkipRequest": {"type": "object", "required": ["item_id"],
                    "properties": {"item_id": _ID, "labeler_id": {"type": "string", "minLength": 1}}},
    "QueueEntry": _queue_entry(),
}

_WHY = {400: "a bad request, naming the item, the field and the reason; nothing changed",
        401: "no known bearer token (the API has tokens)", 403: "the request names another labeler than its token's",
        409: "another labeler holds the item's lease", 413: "a body over 1 MiB (refused unread)",
        429: "too many failed token checks from this client lately; its token is not checked until Retry-After",
        503: "Redis (or, for a label, the Kafka broker) cannot be reached; retry later (a label resent with the same label_id is taken once)"}
_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_HEADERS = {401: {"WWW-Authenticate": {"description": "Bearer realm=\"activestream\"", "schema": {"type": "string"}}}, 429: _RETRY, 503: _RETRY}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def responses(reply: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route answering ``reply`` (a schema name) or an Error with one of ``codes``."""
    out: dict[int | str, dict[str, Any]] = {200: {"description": "OK", "content": _json(reply)}}
    for code in codes:
        out[code] = {"description": _WHY[code], "content": _json("Error"), **({"headers": _HEADERS[code]} if code in _HEADERS else {})}
    return out


def _body(ref: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": _json(ref)}}


# A bearer token where the API has a tokens file; none where it has not.
_TOKEN: dict[str, Any] = {"security": [{}, {"bearer": []}]}


LEASE = {"summary": "Lease the top k items to the labeler", **_TOKEN, "parameters": [
    {"name": "k", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
    {"name": "labeler", "in": "query", "required": False, "description": "required without tokens; with tokens, the token's",
     "schema": {"type": "string", "minLength": 1}},
]}
LABELS = {"summary": "Submit a label (idempotent by label_id)", **_TOKEN, **_body("LabelRequest")}
SKIP = {"summary": "Pass on a leased item", **_TOKEN, **_body("SkipRequest")}
RETURN = {"summary": "Hand a leased item back untouched (no skip counted)", **_TOKEN, **_body("SkipRequest")}
STATUS = {"summary": "Queue counts and the live model (open: no token needed)"}
CAMPAIGN = {"summary": "The campaign's payoff: live estimates with intervals, stop rules, auto-accept state, queue depth (open: no token needed)"}
PAGE: dict[int | str, dict[str, Any]] = {200: {"description": "the labeling page", "content": {"text/html": {"schema": {"type": "string"}}}}}


def document_of(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document of ``app`` with the schemas above (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in doc["paths"].values():
                for op in path.values():  # (the routes take no FastAPI-validated input: no 422 is ever answered)
                    op.get("responses", {}).pop("422", None)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                               "description": "a token of the API's tokens file (ACTIVESTREAM_LABELER_TOKENS)"}}
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi
