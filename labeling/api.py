"""A small JSON HTTP API for labelers and labeling UIs: lease, submit, skip, status.

    GET  /lease?k=10&labeler=ann       -> {"items": [queue_entry.v1, ...]}
    POST /labels  {"item_id", "label" | "labels", "labeler_id", "seconds", "label_id"}
                                        -> {"accepted": true | false (duplicate label id)}
    POST /skip    {"item_id", "labeler_id"} -> {"skips": n}  (0: dropped, -1: unknown; each
                                        labeler counts once; an item leased to someone else: 409)
    GET  /status                        -> queue depth, leased, labeled, model version, classes, task,
                                           feature names, the live version's stop signal
    GET  /                              -> a labeling page (HTML) that uses the routes above

With a tokens file (:mod:`labeling.auth`) every route but ``GET /status`` and the page
(``GET /``, which holds no data) needs ``Authorization: Bearer <token>``, and the labeler is the token's: ``labeler`` /
``labeler_id`` may be left out, and naming another labeler is refused.

Errors are JSON ``{"error": "..."}``: 400 naming the item and the field, 401 without a known
token, 403 for a request naming another labeler than its token's, 404 for an unknown route,
405 for another method, 409 for a label or skip of an item another labeler holds, 413 for a
body over 1 MiB, 500 (details in the server's log).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlparse

from activestream.labeling.auth import LabelerTokens, TokenFile
from activestream.labeling.service import InvalidLabel, LabelService, LeasedToAnother, UnknownItem, control_flagged
from activestream.rankedqueue.keys import META_FEATURE_NAMES, META_STOP
from activestream.schemas import QueueEntry

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """A request the API refuses, with the reason (HTTP 400)."""


class NotFound(BadRequest):
    """No such route (HTTP 404)."""


class TooLarge(BadRequest):
    """A body over :data:`MAX_BODY_BYTES` (HTTP 413)."""


class Conflict(BadRequest):
    """The item's lease is another labeler's (HTTP 409)."""


class Unauthorized(BadRequest):
    """No known bearer token, where the API has tokens (HTTP 401)."""


class Forbidden(BadRequest):
    """A request naming another labeler than its token's (HTTP 403)."""


# The HTTP status of each refusal; any other BadRequest is a 400.
_STATUS: dict[type[BadRequest], int] = {Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, TooLarge: 413}


def _labeler(given: str | None, caller: str | None, where: str) -> str:
    """The labeler a request acts for: its token's (``caller``) if the API has tokens, else the one it names.

    ``where`` names the field in errors, e.g. ``"item 'a': field 'labeler_id'"``.
    """
    if caller is None:
        if not given:
            raise BadRequest(f"{where}: missing")
        return given
    if given not in (None, "", caller):
        raise Forbidden(f"{where}: {given!r} is not the labeler of this request's token")
    return caller


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], item: str | None, required: bool = True) -> Any:
    v = body.get(name)
    if v is None:
        if required:
            raise BadRequest(f"item {item!r}: field {name!r}: missing")
        return None
    if isinstance(v, bool) or not isinstance(v, kinds):
        raise BadRequest(f"item {item!r}: field {name!r}: expected {' or '.join(k.__name__ for k in kinds)}")
    return v


def _caller(tokens: LabelerTokens | TokenFile | None, method: str, path: str, authorization: str | None) -> str | None:
    """The labeler of the request's token (``None`` when the API has no tokens or for ``GET /status``). Raises :class:`Unauthorized`."""
    if tokens is None or (method == "GET" and path == "/status"):
        return None
    caller = tokens.labeler(authorization)
    if caller is None:
        raise Unauthorized("header 'Authorization': expected 'Bearer <token>' with a token of this API's tokens file")
    return caller


def handle(
    service: LabelService, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any], caller: str | None = None
) -> dict[str, Any]:
    """Route one request (pure of HTTP, so it is easy to test). Raises :class:`BadRequest`.

    ``caller`` : the labeler of the request's token, when the API has tokens.
    """
    if method == "GET" and path == "/lease":
        try:
            k = int(query.get("k", ["10"])[0])
        except ValueError:
            raise BadRequest("query 'k': expected an integer") from None
        if not 1 <= k <= 1000:
            raise BadRequest(f"query 'k': expected 1 <= k <= 1000, got {k}")
        labeler = _labeler(query.get("labeler", [""])[0], caller, "query 'labeler'")
        version = int(service.queue.get_meta("model_version") or 0)
        items = [
            json.loads(QueueEntry(e.id, e.score, version, e.features, e.expires_at, control_flagged(e.metadata, e.control)).encode())
            for e in service.lease(k, labeler)
        ]
        return {"items": items}
    if method == "POST" and path == "/labels":
        item = _field(body, "item_id", (str, int), None)
        item = str(item)
        labeler = _labeler(_field(body, "labeler_id", (str,), item, required=caller is None), caller, f"item {item!r}: field 'labeler_id'")
        label = _field(body, "label", (str, int), item, required=False)
        labels = _field(body, "labels", (list,), item, required=False)
        if (label is None) == (labels is None):
            raise BadRequest(f"item {item!r}: field 'label': give exactly one of 'label' or 'labels'")
        seconds = _field(body, "seconds", (int, float), item, required=False) or 0.0
        try:
            seconds = float(seconds)
        except OverflowError:
            raise BadRequest(f"item {item!r}: field 'seconds': too large") from None
        label_id = _field(body, "label_id", (str,), item, required=False)
        try:
            ok = service.submit(item, labeler_id=labeler, label=label, labels=labels, seconds=seconds, label_id=label_id)
        except LeasedToAnother as exc:
            raise Conflict(str(exc)) from None
        except (UnknownItem, InvalidLabel) as exc:
            raise BadRequest(str(exc.args[0]) if exc.args else str(exc)) from None  # (a KeyError's str() adds quotes)
        return {"accepted": ok}
    if method == "POST" and path == "/skip":
        item = str(_field(body, "item_id", (str, int), None))
        labeler = _labeler(_field(body, "labeler_id", (str,), item, required=caller is None), caller, f"item {item!r}: field 'labeler_id'")
        skips = service.skip(item, labeler)
        if skips == -2:
            raise Conflict(f"item {item!r}: field 'labeler_id': {labeler!r} does not hold its lease (another labeler does)")
        return {"skips": skips}
    if method == "GET" and path == "/status":
        q = service.queue
        # (an expired lease counts as pending, whether or not anyone leased since)
        meta = q.get_meta_fields("model_version", "classes", "task", META_FEATURE_NAMES, META_STOP)
        return {"pending": q.n_waiting(), "leased": q.n_leased(), "labeled": q.n_labeled(), "model_version": int(meta["model_version"] or 0),
                "classes": meta_classes(meta["classes"]), "task": meta["task"] or "multiclass", **page_facts(meta)}
    raise NotFound(f"no route {method} {path}")


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
    names = meta_classes(meta.get(META_FEATURE_NAMES), META_FEATURE_NAMES)
    try:
        stop = json.loads(meta.get(META_STOP) or "null")
    except ValueError:
        log.warning("queue meta %r is not JSON: taken as no stop signal", META_STOP)
        stop = None
    if not (isinstance(stop, dict) and isinstance(stop.get("fired"), dict)):
        stop = None
    return {"feature_names": [str(n) for n in names], "stop": stop}


# The labeling page served at / (labeling/ui.html; it calls the routes above from the browser).
PAGE = files(__package__).joinpath("ui.html").read_bytes()


def _page_headers(page: bytes) -> dict[str, str]:
    """The page's headers: a Content-Security-Policy letting only its own inline script and style run (by hash).

    Defence in depth behind setting every producer-given value as text: were one ever to become
    markup, no script of its own would run, and no request could leave for another origin but
    images (metadata image URLs are shown). No framing: another site cannot overlay the buttons.
    """
    text = page.decode("utf-8")

    def digest(tag: str) -> str:
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"

    csp = (f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; img-src http: https: data:; "
           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


PAGE_HEADERS = _page_headers(PAGE)

# Request bodies are small JSON objects (one label); anything larger is refused unread.
MAX_BODY_BYTES = 1 << 20
# A client that sends or reads nothing for this long is dropped (it holds one thread, no lock).
CLIENT_TIMEOUT_SECONDS = 30.0


def _read_body(handler: BaseHTTPRequestHandler) -> dict[str, Any]:
    """The request's JSON object. Raises :class:`BadRequest` (or :class:`TooLarge`) saying what is wrong."""
    raw_length = handler.headers.get("Content-Length") or "0"
    try:
        length = int(raw_length)
    except ValueError:
        raise BadRequest(f"header 'Content-Length': not an integer ({raw_length[:40]!r})") from None
    if length < 0:
        raise BadRequest("header 'Content-Length': negative")
    if length > MAX_BODY_BYTES:
        raise TooLarge(f"body: {length} bytes, the limit is {MAX_BODY_BYTES}")
    raw = handler.rfile.read(length)
    try:
        body = json.loads(raw.decode("utf-8") if raw else "{}")
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # (JSONDecodeError is a ValueError; so is a 5000-digit number)
        raise BadRequest(f"body: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    return body


def serve(service: LabelService, port: int, host: str = "127.0.0.1", tokens: LabelerTokens | TokenFile | None = None) -> ThreadingHTTPServer:
    """Serve the API on a daemon thread (port 0 = any free port); with ``tokens``, only to their holders."""
    lock = threading.Lock()  # one labeling service, many request threads

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_SECONDS

        def _reply(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json", headers)

        def _send(self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            if method == "GET" and url.path in ("/", "/index.html"):  # (the page holds no data: no token needed)
                self._send(200, PAGE, "text/html; charset=utf-8", PAGE_HEADERS)
                return
            try:
                # Before the body: a stranger's is not read. Only GET /status is open (POST /status would read one, for a 404).
                caller = _caller(tokens, method, url.path, self.headers.get("Authorization"))
                body = _read_body(self) if method == "POST" else {}
                with lock:  # the answer is computed under the lock and sent after it: a slow client holds no one up
                    payload = handle(service, method, url.path, parse_qs(url.query), body, caller)
            except BadRequest as exc:
                code = _STATUS.get(type(exc), 400)
                if code in (401, 413):
                    self.close_connection = True  # the body was not read
                extra = {"WWW-Authenticate": 'Bearer realm="activestream"'} if code == 401 else None
                self._reply(code, {"error": str(exc)}, extra)
                return
            except Exception as exc:  # a reply, not a dropped connection; the server keeps serving
                log.exception("%s %s failed", method, url.path)  # the details stay in the server's log
                self._reply(500, {"error": f"internal error ({type(exc).__name__}); see the labeler-api log"})
                return
            self._reply(200, payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._dispatch("POST")

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own errors (unsupported method, malformed request line) as JSON too
            self.close_connection = True
            try:
                self._reply(405 if code == 501 else code, {"error": f"{self.command or 'request'}: {message or 'not supported'}"})
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="labeler-api", daemon=True).start()
    return server
