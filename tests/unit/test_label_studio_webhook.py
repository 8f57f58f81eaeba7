"""The Label Studio webhook receiver under hostile clients (no Label Studio needed)."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request

from activestream.labeling import label_studio_webhook
from activestream.labeling.label_studio_project import WEBHOOK_SECRET_HEADER
from activestream.labeling.label_studio_webhook import serve_webhook

SECRET = "s" * 32


def post(port: int, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_forged_or_malformed_delivery_queues_nothing() -> None:
    events: queue.SimpleQueue = queue.SimpleQueue()
    server = serve_webhook(events, SECRET, 0)
    try:
        payload = json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "result": []}}).encode()
        assert post(server.server_port, {}, payload)[0] == 401
        assert post(server.server_port, {WEBHOOK_SECRET_HEADER: SECRET[:-1]}, payload)[0] == 401
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:  # (a Content-Length that is no number)
            s.sendall(f"POST /webhook HTTP/1.1\r\nHost: x\r\n{WEBHOOK_SECRET_HEADER}: {SECRET}\r\nContent-Length: abc\r\n\r\n{{}}".encode())
            assert s.recv(100).startswith(b"HTTP/1.0 400 ")
        assert events.empty()
        assert post(server.server_port, {WEBHOOK_SECRET_HEADER: SECRET}, payload) == (200, {"ok": True}) and events.qsize() == 1
    finally:
        server.shutdown()
        server.server_close()


def test_connections_that_send_nothing_do_not_hold_a_thread_for_good(monkeypatch) -> None:
    # A security audit: 300 connections that sent nothing held 300 threads of the receiver for as long as they stayed
    # open (http.server sets no timeout); anyone who reaches its port could pile threads up until none could start.
    monkeypatch.setattr(label_studio_webhook, "SOCKET_TIMEOUT_SECONDS", 1.0, raising=False)
    server = serve_webhook(queue.SimpleQueue(), SECRET, 0)
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(20)]
    try:
        for s in socks:
            assert s.recv(100) == b""  # (closed by the server: its read timed out)
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= before
    finally:
        for s in socks:
            s.close()
        server.shutdown()
        server.server_close()
