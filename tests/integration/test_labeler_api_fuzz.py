"""The labeler API fuzzed from its own OpenAPI document (Schemathesis), live over real Redis.

For each route of ``/openapi.json``, Schemathesis generates requests that fit the document
(positive) and requests that break it (negative); each is sent to the live API (uvicorn on a
real port) and its response checked: no 5xx, the status, content type, headers and body as
the document says. Afterwards every item queued before is still queued, or labeled exactly
once (its label on the labels topic), or dropped by skips the fuzzer made.

``ACTIVESTREAM_FUZZ_EXAMPLES`` (default 100) is the number of generated requests per route and
mode (positive, negative) in ``make test``: 200 a route, about 25 s for both variants (without
and with tokens). The acceptance run is 500 per mode, 1,000 a route::

    ACTIVESTREAM_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/integration/test_labeler_api_fuzz.py -s -m "not kafka"

which prints each route's request count and statuses (as JSON).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import requests
from hypothesis import HealthCheck, Phase, given, settings

from activestream.labeling.api import serve
from activestream.labeling.auth import parse_tokens
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import decode_label
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("ACTIVESTREAM_FUZZ_EXAMPLES", "100"))
# Ids a fuzzer hits (short strings, small integers) and ids it never guesses: both kinds must survive.
IDS = ["0", "1", "-1", "a", "00", "\u00e9"] + [f"item-{k:04d}-{'x' * 8}" for k in range(20)]
TOKEN = "ann-0123456789abcdef"


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]


def run_cases(cases: Any, examples: int, send: Any) -> Any:
    """Draw up to ``examples`` cases from ``cases`` (a Hypothesis strategy) and ``send`` each; the last one."""
    last: list[Any] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case: Any) -> None:
        last[:] = [case]
        send(case)

    run()
    return last[0]


def fuzz(base: str, examples: int, headers: dict[str, str] | None = None) -> tuple[dict[str, Counter[int]], list[dict[str, Any]]]:
    """Send ``examples`` positive and ``examples`` negative generated requests to each route of the live document.

    Returns
    -------
    Per route (``"GET /lease"``), the count of each status; and the route, body and reply of every POST answered 200.
    """
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    checks = _checks()
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    posts: list[dict[str, Any]] = []
    session = requests.Session()

    def send(case: Any, route: str) -> None:
        response = case.call(base_url=base, session=session, headers=headers, timeout=30)
        statuses[route][response.status_code] += 1
        if case.method.upper() == "POST" and response.status_code == 200:
            posts.append({"route": route, "body": case.body, "reply": response.json()})
        case.validate_response(response, checks=checks, headers=headers)

    for result in schema.get_all_operations():
        operation = result.ok()
        route = f"{operation.method.upper()} {operation.path}"
        has_inputs = bool(operation.definition.raw.get("parameters")) or "requestBody" in operation.definition.raw
        # (a route without inputs has nothing to break: no negative requests)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_inputs else (GenerationMode.POSITIVE,):
            cases = operation.as_strategy(generation_mode=mode)
            last = run_cases(cases, examples, lambda case, route=route: send(case, route))
        # A route without inputs (GET /status, the page) has one request to generate: it is sent as often.
        for _ in range(0 if has_inputs else 2 * examples - sum(statuses[route].values())):
            send(last, route)
    return statuses, posts


def assert_nothing_lost(queue: RankedQueue, labels: list[Any], posts: list[dict[str, Any]]) -> dict[str, int]:
    """Every item queued before is queued, labeled once, or dropped by a skip that said so; one label per accepted one. Returns the tally."""
    per_item = Counter(lab.item_id for lab in labels)
    # One labeler per item: later labels of an item are its labeler's corrections of the last answer
    # (each with a new label id); nobody else labels an item once it has left the queue.
    labelers = {item: {lab.labeler_id for lab in labels if lab.item_id == item} for item in per_item}
    assert all(len(who) == 1 for who in labelers.values()), labelers
    accepted = sum(1 for p in posts if p["route"] == "POST /labels" and p["reply"]["accepted"])
    assert len(labels) == accepted, (len(labels), accepted)  # each accepted label published once, nothing else
    dropped = {str(p["body"]["item_id"]) for p in posts if p["route"] == "POST /skip" and p["reply"]["skips"] == 0}
    queued = {i for i, f in zip(IDS, queue.features_of(IDS), strict=True) if f is not None}
    lost = [i for i in IDS if i not in queued and i not in per_item and i not in dropped]
    assert not lost, lost
    assert set(per_item) <= set(IDS)
    return {"items_before": len(IDS), "queued_after": len(queued), "labeled": len(per_item), "dropped_by_skips": len(dropped - set(per_item)),
            "labels_accepted": accepted}


def fill(queue: RankedQueue) -> None:
    rng = np.random.default_rng(0)
    queue.add(IDS, rng.random(len(IDS)), rng.standard_normal((len(IDS), 4)).astype(np.float32), [{"text": f"t{k}"} for k in range(len(IDS))])
    queue.set_meta(model_version=2, ranked_version=2, classes=json.dumps([0, 1, 2]), task="multiclass")


@pytest.fixture
def queue(redis_client: redis.Redis, namespace: str) -> Iterator[RankedQueue]:
    q = RankedQueue(redis_client, QueueKeys(namespace))
    fill(q)
    yield q


def report(name: str, statuses: dict[str, Counter[int]], tally: dict[str, int]) -> None:
    print(json.dumps({"fuzz": name, "examples_per_mode": EXAMPLES, "requests": {r: sum(c.values()) for r, c in statuses.items()},
                      "statuses": {r: dict(sorted(c.items())) for r, c in statuses.items()}, **tally}))


@pytest.mark.parametrize("with_tokens", [False, True], ids=["open", "tokens"])
def test_the_api_fuzzed_from_its_openapi_document(queue: RankedQueue, with_tokens: bool) -> None:
    bus, topics = InMemoryBus(), Topics("fuzz")
    tokens = parse_tokens(f"{TOKEN} ann\n") if with_tokens else None
    server = serve(LabelService(queue, bus, topics, max_skips=3, lease_ttl=0.2), 0, tokens=tokens)
    try:
        statuses, posts = fuzz(f"http://127.0.0.1:{server.server_port}", EXAMPLES, {"Authorization": f"Bearer {TOKEN}"} if tokens else None)
    finally:
        server.shutdown()
        server.server_close()
    tally = assert_nothing_lost(queue, [decode_label(m.value) for m in bus.messages(topics.labels)], posts)
    report("open" if tokens is None else "tokens", statuses, tally)
    assert set(statuses) == {"GET /lease", "POST /labels", "POST /skip", "POST /return", "GET /status", "GET /campaign", "GET /"}
    assert all(sum(c.values()) >= EXAMPLES for c in statuses.values()), statuses
    assert not any(code >= 500 for c in statuses.values() for code in c), statuses
    assert statuses["GET /lease"][200] > 0 and statuses["POST /skip"][200] > 0  # (the fuzzer got past validation too)


@pytest.mark.kafka
def test_the_api_fuzzed_over_kafka(queue: RankedQueue, kafka_bus_factory: Any) -> None:
    import uuid

    prefix = f"fz{uuid.uuid4().hex[:10]}"
    topics = Topics(prefix)
    bus = kafka_bus_factory(prefix=prefix, partitions=1)
    bus.ensure_topics(topics.all())
    server = serve(LabelService(queue, bus, topics, max_skips=3, lease_ttl=0.2), 0)
    try:
        statuses, posts = fuzz(f"http://127.0.0.1:{server.server_port}", EXAMPLES)
    finally:
        server.shutdown()
        server.server_close()
    reader = kafka_bus_factory(prefix=prefix).consumer([topics.labels], None)
    labels = [decode_label(m.value) for m in reader.consume(1000, 20.0) + reader.consume(1000, 2.0)]
    reader.close()
    tally = assert_nothing_lost(queue, labels, posts)
    report("kafka", statuses, tally)
    assert not any(code >= 500 for c in statuses.values() for code in c), statuses


def test_openapi_json_is_a_valid_openapi_3_document_open_to_anyone(queue: RankedQueue) -> None:
    from openapi_spec_validator import validate

    server = serve(LabelService(queue, InMemoryBus(), Topics("doc")), 0, tokens=parse_tokens(f"{TOKEN} ann\n"))
    try:
        reply = requests.get(f"http://127.0.0.1:{server.server_port}/openapi.json", timeout=10)  # (no token: it holds no data)
    finally:
        server.shutdown()
        server.server_close()
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    doc = reply.json()
    validate(doc)  # raises OpenAPIValidationError naming what is wrong
    assert doc["openapi"].startswith("3.") and set(doc["paths"]) == {"/lease", "/labels", "/skip", "/return", "/status", "/campaign", "/"}
    assert doc["paths"]["/labels"]["post"]["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert not any("422" in op["responses"] for path in doc["paths"].values() for op in path.values())  # (the API never answers 422)
