"""A small JSON HTTP API for labelers and labeling UIs: lease, submit, skip, status.

    GET  /lease?k=10&labeler=ann       -> {"items": [queue_entry.v1, ...]}
    POST /labels  {"item_id", "label" | "labels", "labeler_id", "seconds", "label_id"}
                                        -> {"accepted": true | false (duplicate label id)}
    POST /skip    {"item_id", "labeler_id"} -> {"skips": n}  (0: dropped, -1: unknown; each
                                        labeler counts once; an item leased to someone else: 400)
    GET  /status                        -> queue depth, leased, labeled, model version

Errors are 400 with ``{"error": "..."}`` naming the item and the field.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from labeling.service import InvalidLabel, LabelService, UnknownItem
from schemas import QueueEntry

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """A request the API refuses, with the reason."""


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], item: str | None, required: bool = True) -> Any:
    v = body.get(name)
    if v is None:
        if required:
            raise BadRequest(f"item {item!r}: field {name!r}: missing")
        return None
    if isinstance(v, bool) or not isinstance(v, kinds):
        raise BadRequest(f"item {item!r}: field {name!r}: expected {' or '.join(k.__name__ for k in kinds)}")
    return v


def handle(service: LabelService, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
    """Route one request (pure of HTTP, so it is easy to test). Raises :class:`BadRequest`."""
    if method == "GET" and path == "/lease":
        try:
            k = int(query.get("k", ["10"])[0])
        except ValueError:
            raise BadRequest("query 'k': expected an integer") from None
        labeler = query.get("labeler", [""])[0]
        if not labeler or not 1 <= k <= 1000:
            raise BadRequest("query: give labeler=<id> and 1 <= k <= 1000")
        version = int(service.queue.get_meta("model_version") or 0)
        items = [
            json.loads(QueueEntry(e.id, e.score, version, e.features, e.expires_at, {**e.metadata, **({"control": True} if e.control else {})}).encode())
            for e in service.lease(k, labeler)
        ]
        return {"items": items}
    if method == "POST" and path == "/labels":
        item = _field(body, "item_id", (str, int), None)
        item = str(item)
        labeler = _field(body, "labeler_id", (str,), item)
        label = _field(body, "label", (str, int), item, required=False)
        labels = _field(body, "labels", (list,), item, required=False)
        if (label is None) == (labels is None):
            raise BadRequest(f"item {item!r}: field 'label': give exactly one of 'label' or 'labels'")
        seconds = _field(body, "seconds", (int, float), item, required=False) or 0.0
        label_id = _field(body, "label_id", (str,), item, required=False)
        try:
            ok = service.submit(item, labeler_id=labeler, label=label, labels=labels, seconds=float(seconds), label_id=label_id)
        except (UnknownItem, InvalidLabel) as exc:
            raise BadRequest(str(exc.args[0]) if exc.args else str(exc)) from None  # (a KeyError's str() adds quotes)
        return {"accepted": ok}
    if method == "POST" and path == "/skip":
        item = str(_field(body, "item_id", (str, int), None))
        labeler = _field(body, "labeler_id", (str,), item)
        skips = service.skip(item, labeler)
        if skips == -2:
            raise BadRequest(f"item {item!r}: field 'labeler_id': {labeler!r} does not hold its lease (another labeler does)")
        return {"skips": skips}
    if method == "GET" and path == "/status":
        q = service.queue
        return {"pending": q.depth(), "leased": q.n_leased(), "labeled": q.n_labeled(), "model_version": int(q.get_meta("model_version") or 0)}
    raise BadRequest(f"no route {method} {path}")


def serve(service: LabelService, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve the API on a daemon thread (port 0 = any free port)."""
    lock = threading.Lock()  # one labeling service, many request threads

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            body: dict[str, Any] = {}
            if method == "POST":
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError as exc:
                    self._reply(400, {"error": f"body: not valid JSON ({exc})"})
                    return
                if not isinstance(body, dict):
                    self._reply(400, {"error": "body: expected a JSON object"})
                    return
            try:
                with lock:
                    self._reply(200, handle(service, method, url.path, parse_qs(url.query), body))
            except BadRequest as exc:
                self._reply(400, {"error": str(exc)})
            except Exception as exc:  # a reply, not a dropped connection; the server keeps serving
                log.exception("%s %s failed", method, url.path)
                self._reply(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._dispatch("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="labeler-api", daemon=True).start()
    return server
