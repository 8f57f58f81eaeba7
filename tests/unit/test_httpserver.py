"""The services' /healthz and /metrics endpoint (no external services)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Gauge

from activestream.httpserver import Health, serve


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_healthz_says_what_is_down_and_metrics_that_cannot_be_read_are_a_503() -> None:
    registry = CollectorRegistry()
    reachable = {"redis": True}

    def depth() -> float:
        if not reachable["redis"]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        return 3.0

    Gauge("pending_items", "items waiting", registry=registry).set_function(depth)
    health = Health("labeler-api")
    server = serve(registry, health, 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(f"{base}/healthz")[0] == 200 and b"pending_items 3.0" in get(f"{base}/metrics")[1]
        reachable["redis"] = False
        health.down("redis: ConnectionError: Error 111")  # the service loop's probe failed
        code, body = get(f"{base}/healthz")
        assert code == 503 and json.loads(body)["problem"].startswith("redis:")
        code, body = get(f"{base}/metrics")
        assert code == 503 and b"ConnectionError" in body
        reachable["redis"] = True
        health.tick()  # the next probe succeeded
        assert get(f"{base}/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()



def test_a_service_waiting_for_redis_answers_503_with_the_reason_and_200_once_it_resumes() -> None:
    import signal

    from activestream.wiring import Stop, run_loop

    health = Health("scorer")
    server = serve(CollectorRegistry(), health, 0)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    stop = Stop()
    seen: list[tuple[int, dict]] = []  # /healthz as each step starts
    problems = ["Redis unreachable: ConnectionError: Error 111 connecting", None, None]

    def step() -> int:
        code, body = get(url)
        seen.append((code, json.loads(body)))
        stop.requested = len(seen) == 3
        return 0

    try:
        run_loop(step, health, stop, burst=False, max_messages=None, problem=lambda: problems[len(seen) - 1])
    finally:
        server.shutdown()
        server.server_close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert seen[0][0] == 200
    assert seen[1][0] == 503 and seen[1][1]["problem"].startswith("Redis unreachable")  # paused: says why
    assert seen[2][0] == 200 and "problem" not in seen[2][1]  # resumed


def test_healthz_says_so_while_one_step_of_the_loop_runs_past_stuck_after() -> None:
    # (a fault-day audit: with Redis SIGSTOPped the scorer's /healthz said ok for a minute and more: a step held in a
    # Redis call up to its 30 s timeout, the pause's probe another, and the loop reported only after them)
    import threading
    import time

    from activestream.wiring import run_loop

    health = Health("scorer", stuck_after=0.2)
    seen: list[tuple[int, dict]] = []

    def step() -> int:
        time.sleep(0.5)  # (a call that waits for a backend)
        return 1

    def watch() -> None:
        time.sleep(0.35)
        seen.append(health.status())

    t = threading.Thread(target=watch)
    t.start()
    run_loop(step, health, lambda: False, burst=False, max_messages=1)  # type: ignore[arg-type]
    t.join()
    code, body = seen[0]
    assert code == 503 and body["problem"].startswith("one step of the loop has run for 0 s: waiting for Redis or Kafka?"), body
    assert health.status()[0] == 200  # (the step ended)
    assert Health("retrainer").status()[0] == 200  # (not watched by default)


def _metrics_server():
    registry = CollectorRegistry()
    Gauge("up_items", "items", registry=registry).set(1)
    server = serve(registry, Health("scorer"), 0)
    return server, server.server_port


def test_a_request_of_endless_headers_is_a_431_not_held_in_memory() -> None:
    # A security audit: one request to /metrics (or the labeler API) with 200 MB of headers was taken whole, the
    # process growing by as much (httptools keeps every header; uvicorn sets no limit), then answered 200.
    import socket

    from activestream.labeling import webserver

    limit = getattr(webserver, "MAX_HEAD_BYTES", 64 * 1024)
    server, port = _metrics_server()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sent, refused = 0, False
            try:
                while sent < 20 * limit:
                    s.sendall(b"X-%d: %s\r\n" % (sent, b"a" * 4000))
                    sent += 4000
            except OSError:
                refused = True  # (the server answered and closed while we were still sending)
            reply = s.recv(4096)
            assert reply.startswith(b"HTTP/1.1 431 "), (refused, reply[:200])
            assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == f"request: line and headers over {limit} bytes"
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # (an ordinary request is served as before)
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_whose_request_never_arrives_whole_is_closed(monkeypatch) -> None:
    # A security audit: connections that sent nothing, or half a request line and headers, stayed open for good
    # (uvicorn's 30 s idle timeout runs only between requests): a client could hold every file descriptor.
    import socket
    import time

    from activestream.labeling import webserver

    monkeypatch.setattr(webserver, "REQUEST_TIMEOUT_SECONDS", 1.0, raising=False)
    server, port = _metrics_server()
    try:
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        partial = socket.create_connection(("127.0.0.1", port), timeout=5)
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        stalled_body = socket.create_connection(("127.0.0.1", port), timeout=5)
        stalled_body.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.5)
        partial.sendall(b"X-a: b\r\n")  # (trickling headers does not buy time)
        t0 = time.monotonic()
        for s in (silent, partial):
            assert s.recv(100) == b"", "closed without an answer"
            s.close()
        while stalled_body.recv(4096):  # (this route answers without reading the body; the connection waits for the rest)
            pass
        stalled_body.close()
        assert time.monotonic() - t0 < 5
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # (a whole request is answered; its connection then idles 30 s)
    finally:
        server.shutdown()
        server.server_close()


def test_one_endless_header_value_is_a_431_before_it_ends() -> None:
    # (a review: the head limit counted only headers httptools had completed; one header whose line never ends reached no
    # callback while httptools kept its value, 154 MB in 30 s, until the request timer closed the connection)
    import socket

    from activestream.labeling import webserver

    server, port = _metrics_server()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                for _ in range(32):  # 32 x 64 KiB = 2 MiB of one header's value, never ended
                    s.sendall(b"a" * webserver.MAX_HEAD_BYTES)
            except OSError:
                pass  # (answered and closed while we were sending: what the limit should do)
            s.settimeout(3.0)
            try:
                reply = s.recv(4096)
            except TimeoutError:
                reply = b"(no answer: the server is still taking the header in)"
            assert reply.startswith(b"HTTP/1.1 431 "), reply[:120]
    finally:
        server.shutdown()
        server.server_close()
