"""The labeler API under hostile or broken input (issue 18): bounded seconds, reserved labeler ids,
a rate limit on token guesses, 503 while Redis is away, and no 500 for any text.

Each test here failed on the http.server API before (checked by running it against that
labeling/api.py): 1e308 seconds and reserved ids were accepted, 300 guesses all got a 401,
a stopped Redis gave 500s, and lone surrogates in ids gave 500s.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from activestream.devstack.redis_server import LocalRedis
from activestream.labeling.api import serve
from activestream.labeling.auth import parse_tokens
from activestream.labeling.service import LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


def call(url: str, body: dict | bytes | None = None, token: str | None = None) -> tuple[int, dict, Any]:
    """GET ``url`` (POST with a JSON ``body``): ``(status, JSON reply, headers)``."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


@pytest.fixture
def api(redis_client: redis.Redis, namespace: str) -> Iterator[tuple[str, InMemoryBus, Topics, RankedQueue]]:
    bus, topics = InMemoryBus(), Topics("hard")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32))
    server = serve(LabelService(queue, bus, topics), 0)
    try:
        yield f"http://127.0.0.1:{server.server_port}", bus, topics, queue
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("seconds", [1e308, 86_400.5, 10**18])
def test_seconds_are_bounded_to_a_day(api, seconds: float) -> None:
    base, bus, topics, queue = api
    code, reply, _ = call(f"{base}/labels", {"item_id": "a", "label": 1, "labeler_id": "ann", "seconds": seconds})
    assert code == 400 and "item 'a': field 'seconds': expected a number from 0 to 86400" in reply["error"]
    assert not bus.messages(topics.labels) and queue.depth() == 3
    assert call(f"{base}/labels", {"item_id": "a", "label": 1, "labeler_id": "ann", "seconds": 86_400})[:2] == (200, {"accepted": True})


@pytest.mark.parametrize("labeler", ["dispatch:default", "dispatch:", "auto", "baseline", "labelstudio:2"])
def test_reserved_labeler_ids_are_refused_from_clients(api, labeler: str) -> None:
    base, bus, topics, queue = api
    code, reply, _ = call(f"{base}/lease?k=1&labeler={urllib.request.quote(labeler)}")
    assert code == 400 and reply["error"].startswith(f"query 'labeler': {labeler!r} is reserved")
    queue.claim(["a"], labeler, ttl=60)  # e.g. a dispatcher handed "a" to its group
    for path, body in (("/labels", {"item_id": "a", "label": 1, "labeler_id": labeler}), ("/skip", {"item_id": "a", "labeler_id": labeler})):
        code, reply, _ = call(base + path, body)
        assert code == 400 and reply["error"].startswith(f"item 'a': field 'labeler_id': {labeler!r} is reserved"), (path, reply)
    assert not bus.messages(topics.labels) and queue.lease_holder("a") == labeler and queue.skipped_by(labeler, ["a"]) == [False]


def test_token_guesses_are_rate_limited(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.9]), np.eye(1, dtype=np.float32))
    tokens = parse_tokens("ann-0123456789abcdef ann\n")
    server = serve(LabelService(queue, InMemoryBus(), Topics("guess")), 0, tokens=tokens)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        t0 = time.monotonic()
        codes = Counter(call(f"{base}/lease?k=1", token=f"guess-{n:016d}")[0] for n in range(300))
        elapsed = time.monotonic() - t0
        # 10 at once, then one a second: the rest are refused unchecked.
        assert codes[401] <= 10 + elapsed + 1 and codes[429] >= 300 - codes[401] and set(codes) == {401, 429}, (codes, elapsed)
        code, reply, headers = call(f"{base}/lease?k=1", token="ann-0123456789abcdef")  # (even a right token waits: no oracle)
        assert code == 429 and "too many failed token checks" in reply["error"] and int(headers["Retry-After"]) >= 1
        assert call(f"{base}/status")[0] == 200  # (the open route stays open)
        time.sleep(float(headers["Retry-After"]) + 0.1)
        assert call(f"{base}/lease?k=1", token="ann-0123456789abcdef")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_redis_outage_is_a_503_and_the_api_serves_on_when_it_is_back(tmp_path) -> None:
    server_redis = LocalRedis(appendonly=True, data_dir=str(tmp_path)).start()
    try:
        queue = RankedQueue(redis.Redis.from_url(server_redis.url, socket_timeout=5), QueueKeys("outage"))
        queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
        bus, topics = InMemoryBus(), Topics("outage")
        api = serve(LabelService(queue, bus, topics), 0)
        base = f"http://127.0.0.1:{api.server_port}"
        try:
            server_redis.stop()
            for path, body in (("/lease?k=1&labeler=ann", None), ("/labels", {"item_id": "a", "label": 1, "labeler_id": "ann"}),
                               ("/skip", {"item_id": "a", "labeler_id": "ann"}), ("/status", None)):
                code, reply, headers = call(base + path, body)
                assert code == 503 and reply["error"].startswith("backend: Redis unavailable") and headers["Retry-After"] == "1", (path, reply)
            assert not bus.messages(topics.labels)
            # Its /metrics still answers, the queue's gauges unknown (NaN): a 503 there made Prometheus call the API down.
            from prometheus_client import CollectorRegistry, generate_latest

            from activestream.labeling.metrics import LabelingMetrics

            registry = CollectorRegistry()
            LabelingMetrics.create(registry, queue, "outage")
            assert 'activestream_labeler_api_pending_items{namespace="outage"} NaN' in generate_latest(registry).decode()
            server_redis.start()  # (same port, same append-only file: the queue as it was)
            time.sleep(float(headers["Retry-After"]))  # (as a client does: within it, the API answers 503 without trying Redis)
            code, reply, _ = call(f"{base}/lease?k=2&labeler=ann")
            assert code == 200 and [i["id"] for i in reply["items"]] == ["a", "b"]
        finally:
            api.shutdown()
            api.server_close()
    finally:
        server_redis.stop()


def test_requests_queued_behind_a_hung_redis_are_answered_503_at_once_not_each_after_the_timeout(tmp_path) -> None:
    # A fault-day audit: with Redis SIGSTOPped, every request waited the API's 30 s Redis timeout in turn (one labeling
    # service, one request at a time): a labeler with a 10 s timeout never saw a 503, only its own timeouts.
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    server_redis = LocalRedis().start()
    try:
        queue = RankedQueue(redis.Redis.from_url(server_redis.url, socket_timeout=3), QueueKeys("hung"))
        queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
        api = serve(LabelService(queue, InMemoryBus(), Topics("hung")), 0)
        base = f"http://127.0.0.1:{api.server_port}"
        try:
            os.kill(server_redis.proc.pid, signal.SIGSTOP)
            with ThreadPoolExecutor(4) as pool:  # (each client waits at most 10 s: 4 requests x 3 s one after the other would not fit)
                replies = list(pool.map(lambda i: call(f"{base}/lease?k=1&labeler=l{i}"), range(4)))
            assert [code for code, _, _ in replies] == [503] * 4, replies
            assert all(reply["error"].startswith("backend: Redis unavailable (TimeoutError)") for _, reply, _ in replies)
            os.kill(server_redis.proc.pid, signal.SIGCONT)
            time.sleep(float(replies[-1][2]["Retry-After"]) + 0.1)
            assert call(f"{base}/lease?k=1&labeler=ann")[0] == 200
        finally:
            os.kill(server_redis.proc.pid, signal.SIGCONT)
            api.shutdown()
            api.server_close()
    finally:
        server_redis.stop()


SURROGATES = ["\ud800", "\udfff", "a\ud83d", "\udc00b", "x\ud800y\udc00"]


def test_lone_surrogates_in_ids_are_400s_naming_the_field_never_500s(api) -> None:
    base, bus, topics, queue = api
    codes: Counter[int] = Counter()
    cases = [("/labels", name) for name in ("item_id", "labeler_id", "label_id", "label")] + [("/skip", name) for name in ("item_id", "labeler_id")]
    for bad in SURROGATES * 4:  # 120 requests: 20 values x 6 (route, field)s
        for path, name in cases:
            body = {"item_id": "a", "labeler_id": "ann", "label": 1, "label_id": "L1", name: bad}
            code, reply, _ = call(base + path, body)
            codes[code] += 1
            assert code == 400 and f"field '{name}': not valid Unicode text" in reply["error"], (path, name, reply)
    assert codes == {400: 120}
    assert not bus.messages(topics.labels) and queue.depth() == 3 and queue.n_leased() == 0
    code, reply, _ = call(f"{base}/labels", {"item_id": "a", "labels": ["ok", "\udfff"], "labeler_id": "ann"})
    assert code == 400 and "field 'labels[1]': not valid Unicode text" in reply["error"]
    assert call(f"{base}/labels", {"item_id": "a", "label": 1, "labeler_id": "ann"})[:2] == (200, {"accepted": True})


def test_other_methods_are_a_json_405_and_run_no_route(api) -> None:
    import http.client

    base, bus, topics, queue = api
    for method in ("HEAD", "OPTIONS", "DELETE", "PATCH", "PUT"):
        conn = http.client.HTTPConnection(base.removeprefix("http://").split(":")[0], int(base.rsplit(":", 1)[1]), timeout=10)
        conn.request(method, "/lease?k=3&labeler=ann")
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 405, method
        assert method == "HEAD" or json.loads(body)["error"].startswith(f"{method}: not supported")
        conn.close()
    assert queue.n_leased() == 0 and not bus.messages(topics.labels)


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(api) -> None:
    # (netcat-style clients shut their side down after sending; uvicorn alone would drop a reply
    # computed on a worker thread. The http.server API answered them, as this one does.)
    import socket

    base, bus, topics, queue = api
    port = int(base.rsplit(":", 1)[1])
    for request, expected in ((b"GET /status HTTP/1.1\r\n\r\n", b'"pending": 3'), (b"GET /lease?k=%00&labeler=a HTTP/1.1\r\n\r\n", b"query 'k'"),
                              (b"GET /status HTTP/1.1\r\n\r\nGET /lease?k=1&labeler=ann HTTP/1.1\r\n\r\n", b'"id": "a"')):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: s.recv(65536), b""))  # (and the server closes: no 30 s keep-alive wait)
        assert expected in reply, reply
    assert queue.lease_holder("a") == "ann"


def test_a_body_that_never_comes_whole_closes_the_connection_without_a_logged_failure(api, monkeypatch, caplog) -> None:
    # A security audit: a POST whose body stopped halfway held its connection for good; closed by the request timeout,
    # it then logged a ClientDisconnect traceback as a 500 per connection (a log flood for whoever opens them).
    import logging
    import socket

    from activestream.labeling import webserver

    monkeypatch.setattr(webserver, "REQUEST_TIMEOUT_SECONDS", 1.0, raising=False)
    base, bus, topics, queue = api
    port = int(base.rsplit(":", 1)[1])
    with caplog.at_level(logging.INFO), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        # (the server was started before the patch: a new connection reads the setting when it opens)
        s.sendall(b"POST /labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        assert s.recv(100) == b""
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not bus.messages(topics.labels) and queue.depth() == 3


@pytest.mark.parametrize("name", ["label_id", "labeler_id", "label"])
def test_ids_and_labels_over_512_characters_are_refused_not_kept_for_good(api, name: str) -> None:
    # A security audit: a label_id (or, without tokens, a labeler_id) of 1 MB was accepted: it stayed in Redis for good
    # (the label_ids set; labeler ids name keys) and on the labels topic, which keeps every record; one per item.
    base, bus, topics, queue = api
    body: dict[str, Any] = {"item_id": "a", "label": 1, "labeler_id": "ann", name: "x" * 513}
    code, reply, _ = call(f"{base}/labels", body)
    assert code == 400 and f"field {name!r}: 513 characters, over the limit of 512" in reply["error"], reply
    assert len(reply["error"]) < 300 and not bus.messages(topics.labels) and queue.depth() == 3
    code, reply, _ = call(f"{base}/lease?k=1&labeler={'y' * 513}")
    assert code == 400 and "query 'labeler': 513 characters, over the limit of 512" in reply["error"]
    code, reply, _ = call(f"{base}/labels", {"item_id": 10**600, "label": 1, "labeler_id": "ann"})
    assert code == 400 and len(reply["error"]) < 300
    assert call(f"{base}/labels", {"item_id": "a", "label": 1, "labeler_id": "a" * 512, "label_id": "l" * 512})[:2] == (200, {"accepted": True})


def test_another_sites_page_cannot_lease_label_or_skip_through_a_visitors_browser(api) -> None:
    # A security audit: without tokens (compose's default, on loopback), a page on any site could have its visitor's
    # browser POST a label as text/plain (no preflight) under any labeler id, and it was published; an <img> pointing
    # at /lease?k=1000 leased the queue away from the labelers for the lease's time.
    base, bus, topics, queue = api
    host = base.split("://")[1]

    def send(path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict]:
        req = urllib.request.Request(base + path, data=body, method="POST" if body is not None else "GET", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    label = json.dumps({"item_id": "a", "label": 1, "labeler_id": "ann"}).encode()
    form = {"Content-Type": "text/plain;charset=UTF-8"}
    for headers in ({**form, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
                    {**form, "Origin": "https://evil.example"},  # (a browser before Sec-Fetch-Site)
                    {**form, "Origin": "null", "Sec-Fetch-Site": "cross-site"}):  # (a sandboxed frame)
        code, reply = send("/labels", label, headers)
        assert code == 403 and "another site's page" in reply["error"], (headers, reply)
        assert send("/skip", json.dumps({"item_id": "a", "labeler_id": "ann"}).encode(), headers)[0] == 403
    code, reply = send("/lease?k=1000&labeler=x", None, {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"})
    assert code == 403 and queue.n_leased() == 0 and not bus.messages(topics.labels)
    assert send("/status", None, {"Sec-Fetch-Site": "cross-site"})[0] == 200  # (the open routes hold no item; no CORS: unread)
    # The page served here (same origin), and scripts (no such headers), go on as before.
    page = {"Content-Type": "application/json", "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    assert send("/lease?k=1&labeler=ann", None, {"Sec-Fetch-Site": "same-origin"})[0] == 200
    assert send("/labels", label, page) == (200, {"accepted": True})
    assert send("/labels", json.dumps({"item_id": "b", "label": 1, "labeler_id": "bob"}).encode(), {"Origin": f"http://{host}"})[0] == 200
    assert send("/labels", json.dumps({"item_id": "c", "label": 1, "labeler_id": "cy"}).encode(), {})[0] == 200
