"""The labeler HTTP API (FastAPI on uvicorn): lease, submit, skip, status, the labeling page, its OpenAPI document.

    GET  /lease?k=10&labeler=ann       -> {"items": [queue_entry.v1, ...]}
    POST /labels  {"item_id", "label" | "labels", "labeler_id", "seconds", "label_id"}
                                        -> {"accepted": true | false (duplicate label id)}
    POST /skip    {"item_id", "labeler_id"} -> {"skips": n}  (0: dropped, -1: unknown; each
                                        labeler counts once; an item leased to someone else: 409)
    GET  /status                        -> queue depth, leased, labeled, model version, classes, task,
                                           feature names, the live version's stop signal
    GET  /campaign                      -> the live version's estimates (with intervals), stop rules, auto-accept
                                           state and the queue depth (:mod:`labeling.campaign`)
    GET  /                              -> a labeling page (HTML) that uses the routes above
    GET  /openapi.json                  -> this API's OpenAPI 3.1 document

With a tokens file (:mod:`labeling.auth`) every route but ``GET /status``, ``GET /campaign``, the page and the
OpenAPI document (which hold no data) needs ``Authorization: Bearer <token>``, and the labeler
is the token's: ``labeler`` / ``labeler_id`` may be left out, and naming another labeler is refused.

Errors are JSON ``{"error": "..."}``: 400 naming the item and the field, 401 without a known
token, 403 for a request naming another labeler than its token's, 404 for an unknown route,
405 for another method, 409 for a label or skip of an item another labeler holds, 413 for a
body over 1 MiB, 429 after too many failed token checks, 503 while Redis (or, for a label, the Kafka broker) cannot be reached,
500 (details in the server's log). What each route checks is :mod:`labeling.routes`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from activestream.labeling import openapi, routes
from activestream.labeling.auth import FailureLimiter, LabelerTokens, TokenFile
from activestream.labeling.campaign import Campaign
from activestream.labeling.routes import BadRequest, TooLarge, TooManyFailures, Unauthorized, meta_classes
from activestream.labeling.service import LabelService
from activestream.labeling.webserver import ThreadedServer, content_length_problem
from activestream.streams.bus import BrokerUnavailable
from activestream.streams.kafka_logs import RepeatFilter

__all__ = ["MAX_BODY_BYTES", "PAGE", "PAGE_HEADERS", "create_app", "meta_classes", "serve"]

log = logging.getLogger(__name__)
# A request refused for a backend outage: each kind of line once a minute with the count it held back (an ops audit: one
# labeler retrying through a 75 s Redis outage wrote 57 lines; every labeler adds as many).
outage_log = logging.getLogger(__name__ + ".outage")
outage_log.addFilter(RepeatFilter())

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


def _json(code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    # (json.dumps' ASCII escapes: any text, lone surrogates in an echoed id included, encodes)
    return Response(json.dumps(payload).encode(), code, headers, media_type="application/json")


def _error(exc: BadRequest) -> Response:
    code = routes.STATUS.get(type(exc), 400)
    headers: dict[str, str] = {}
    if code in (401, 413, 429):
        headers["Connection"] = "close"  # the body was not read
    if code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="activestream"'
    if isinstance(exc, TooManyFailures | routes.Unavailable):
        headers["Retry-After"] = str(max(1, math.ceil(getattr(exc, "retry_after", 1.0))))
    return _json(code, {"error": str(exc)}, headers)


async def _read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object. Raises :class:`BadRequest` (or :class:`TooLarge`) saying what is wrong."""
    raw_length = request.headers.get("content-length")
    if raw_length is not None:
        problem = content_length_problem(raw_length)
        if problem is not None:
            raise BadRequest(problem)
        if int(raw_length) > MAX_BODY_BYTES:
            raise TooLarge(f"body: {int(raw_length)} bytes, the limit is {MAX_BODY_BYTES}")
    raw = b""
    try:
        async for chunk in request.stream():  # (a chunked body has no Content-Length: counted as it comes)
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise TooLarge(f"body: over {MAX_BODY_BYTES} bytes, the limit is {MAX_BODY_BYTES}")
    except ClientDisconnect:  # (gone, or closed by the server's request timeout: no one to answer, nothing to log)
        raise BadRequest("body: the connection closed before the whole body came") from None
    try:
        body = json.loads(raw.decode("utf-8") if raw else "{}")
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # (JSONDecodeError is a ValueError; so is a 5000-digit number)
        raise BadRequest(f"body: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    return body


def cross_site(request: Request) -> str | None:
    """Why a request that leases or labels comes from another site's page (a 403), or ``None``.

    A page on any site can make its visitor's browser send a GET (an image) or a form-like POST (``text/plain``, no
    preflight) to this API: without tokens it would lease the queue away or label and skip items under any name. Browsers
    say where such a request comes from (``Sec-Fetch-Site``, ``Origin``); scripts and tools send neither.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:  # (a browser's own word; it holds behind a reverse proxy that rewrites Host, as Origin does not)
        if site in ("same-origin", "none"):
            return None
        return f"header 'Sec-Fetch-Site': {site!r}: requests from another site's page are refused (use the labeling page served here)"
    origin = request.headers.get("origin")  # (browsers before Sec-Fetch-Site)
    if origin is not None and origin.partition("://")[2].rstrip("/").lower() != (request.headers.get("host") or "").lower():
        return f"header 'Origin': {origin[:100]!r} is not this API's origin: requests from another site's page are refused"
    return None


class TokenGate:
    """Who a request comes from: the labeler of its bearer token, with failed checks rate-limited per client address."""

    def __init__(self, tokens: LabelerTokens | TokenFile | None, failures: FailureLimiter) -> None:
        self.tokens, self.failures = tokens, failures

    def __call__(self, request: Request) -> str | None:
        """The labeler of the request's token (``None`` when the API has no tokens).

        Raises :class:`routes.Forbidden` for a request another site's page sent (:func:`cross_site`, before the
        token), :class:`Unauthorized`, or :class:`TooManyFailures` (its token unchecked).
        """
        problem = cross_site(request)
        if problem is not None:
            raise routes.Forbidden(problem)
        if self.tokens is None:
            return None
        client = request.client.host if request.client else "unknown"
        wait = self.failures.wait(client)
        if wait > 0:
            raise TooManyFailures(f"header 'Authorization': too many failed token checks from {client}; retry in {math.ceil(wait)} s", wait)
        authorization = request.headers.get("authorization")
        caller = self.tokens.labeler(authorization)
        if caller is None:
            if authorization:  # (a request without one guesses nothing: the page's first call, a probe)
                self.failures.failed(client)
            raise Unauthorized("header 'Authorization': expected 'Bearer <token>' with a token of this API's tokens file")
        return caller


class _NoSniff:
    """ASGI middleware: every answer carries ``X-Content-Type-Options: nosniff``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_nosniff(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_nosniff if scope["type"] == "http" else send)


Answer = Callable[..., Awaitable[Response]]


def _open_routes(app: FastAPI, service: LabelService, answer: Answer) -> None:
    """The read-only routes anyone may call (they hold counts and the campaign's figures, no item)."""

    @app.get("/status", responses=openapi.responses("Status", 503), openapi_extra=openapi.STATUS)
    async def status(request: Request) -> Response:
        return await answer(request, lambda caller, body: routes.status(service), open_=True)

    @app.get("/campaign", response_model=Campaign, responses=openapi.responses("Campaign", 503), openapi_extra=openapi.CAMPAIGN)
    async def campaign(request: Request) -> Response:
        return await answer(request, lambda caller, body: routes.campaign(service), open_=True)


# After a backend outage, requests are answered 503 at once for this long before the next one tries the backend again:
# with a hung Redis each try waits out the API's Redis timeout, and requests go one at a time (one labeling service).
OUTAGE_HOLD_SECONDS = 1.0  # (the Retry-After of a 503)


class OutageHold:
    """Entered around each request's work, under the service's lock: after a backend outage it answers 503 at once for
    :data:`OUTAGE_HOLD_SECONDS` (noted before the lock is let go, so the next request in line does not try again)."""

    def __init__(self) -> None:
        self.until = 0.0  # (monotonic) a backend counts as away until then
        self.answer = ""

    def __enter__(self) -> None:
        if time.monotonic() < self.until:  # (a hung Redis: each request queued behind the lock would wait its timeout out)
            raise routes.Unavailable(self.answer)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and routes.outage(exc):
            backend = "Kafka" if isinstance(exc, BrokerUnavailable) else "Redis"
            self.until = time.monotonic() + OUTAGE_HOLD_SECONDS
            self.answer = f"backend: {backend} unavailable ({type(exc).__name__}); retry later (a label resent with the same label_id is taken once)"


def create_app(service: LabelService, tokens: LabelerTokens | TokenFile | None = None, limiter: FailureLimiter | None = None) -> FastAPI:
    """The API as an ASGI app over ``service``; with ``tokens``, only for their holders.

    ``limiter`` : the rate limit on failed token checks (default :class:`FailureLimiter`'s).
    """
    lock = threading.Lock()  # one labeling service, many request threads
    caller_of = TokenGate(tokens, limiter or FailureLimiter())
    app = FastAPI(title="activestream labeler API", version="1", description=openapi.DESCRIPTION, docs_url=None, redoc_url=None)

    outage = OutageHold()

    def locked(work: Callable[[], dict[str, Any]]) -> bytes:
        with lock, outage:  # the answer is computed under the lock and encoded and sent after it: a slow client holds no one up
            payload = work()
        return json.dumps(payload).encode()

    async def answer(request: Request, work: Callable[[str | None, dict[str, Any]], dict[str, Any]], open_: bool = False) -> Response:
        try:
            caller = None if open_ else caller_of(request)  # before the body: a stranger's is not read
            body = await _read_body(request) if request.method == "POST" else {}
            data = await run_in_threadpool(locked, lambda: work(caller, body))
        except BadRequest as exc:
            return _error(exc)
        except Exception as exc:  # a reply, not a dropped connection; the server keeps serving
            if routes.outage(exc):
                outage_log.warning("%s %s: %s: %s", request.method, request.url.path, outage.answer.split(";")[0], exc)
                return _error(routes.Unavailable(outage.answer))
            log.exception("%s %s failed", request.method, request.url.path)  # the details stay in the server's log
            return _json(500, {"error": f"internal error ({type(exc).__name__}); see the labeler-api log"})
        return Response(data, 200, media_type="application/json")

    @app.get("/lease", responses=openapi.responses("LeaseReply", 400, 401, 403, 429, 503), openapi_extra=openapi.LEASE)
    async def lease(request: Request) -> Response:
        q = request.query_params
        return await answer(request, lambda caller, _: routes.lease(service, q.get("k"), q.get("labeler"), caller))

    @app.post("/labels", responses=openapi.responses("LabelReply", 400, 401, 403, 409, 413, 429, 503), openapi_extra=openapi.LABELS)
    async def labels(request: Request) -> Response:
        return await answer(request, lambda caller, body: routes.label(service, body, caller))

    @app.post("/skip", responses=openapi.responses("SkipReply", 400, 401, 403, 409, 413, 429, 503), openapi_extra=openapi.SKIP)
    async def skip(request: Request) -> Response:
        return await answer(request, lambda caller, body: routes.skip(service, body, caller))

    @app.post("/return", responses=openapi.responses("ReturnReply", 400, 401, 403, 409, 413, 429, 503), openapi_extra=openapi.RETURN)
    async def give_back(request: Request) -> Response:
        return await answer(request, lambda caller, body: routes.give_back(service, body, caller))

    _open_routes(app, service, answer)

    @app.get("/", responses=openapi.PAGE, openapi_extra={"summary": "The labeling page (HTML; no token needed: it holds no data)"})
    @app.get("/index.html", include_in_schema=False)
    async def page() -> Response:
        return Response(PAGE, 200, PAGE_HEADERS, media_type="text/html; charset=utf-8")

    async def not_routed(request: Request, exc: Exception) -> Response:
        method, path = request.method, request.url.path
        if method not in ("GET", "POST"):  # (HEAD included, as before: no route runs for it)
            return _json(405, {"error": f"{method}: not supported (the API takes GET and POST)"})
        try:  # as before: only the open routes answer a stranger (another method on /status is no read-only count)
            caller_of(request)
        except BadRequest as refusal:
            return _error(refusal)
        return _json(404, {"error": f"no route {method} {path}"})

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _json(500, {"error": f"internal error ({type(exc).__name__}); see the labeler-api log"})

    app.add_exception_handler(StarletteHTTPException, not_routed)
    app.add_exception_handler(Exception, failed)
    app.openapi = openapi.document_of(app)  # type: ignore[method-assign]
    app.add_middleware(_NoSniff)
    return app


def serve(service: LabelService, port: int, host: str = "127.0.0.1", tokens: LabelerTokens | TokenFile | None = None,
          limiter: FailureLimiter | None = None) -> ThreadedServer:
    """Serve the API on a daemon thread (port 0 = any free port); with ``tokens``, only to their holders."""
    return ThreadedServer(create_app(service, tokens, limiter), port, host, name="labeler-api")
