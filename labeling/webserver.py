"""An ASGI app (the labeler API, a service's ``/metrics``) served by uvicorn on a daemon thread.

The listening socket is bound before the thread starts, so a taken port is an ``OSError`` in
the caller, and port 0 gives a free port at once (:attr:`ThreadedServer.server_port`).
Requests uvicorn's HTTP parser (httptools, i.e. Node's llhttp) refuses before they reach the
app (a ``Content-Length`` that is no number, a malformed request line) are answered with the
API's JSON error body too, naming the header when it is the ``Content-Length``. (httptools
rather than h11: h11 refuses an HTTP/1.1 request without a ``Host`` header, which
``http.server`` took and scripts send.)
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

# A keep-alive connection idle this long is closed.
IDLE_TIMEOUT_SECONDS = 30
# A request's line and headers may take this many bytes at most (a 431 over it): httptools keeps every header it parses,
# so without a limit one request of endless headers grows the process by as much as a client sends.
MAX_HEAD_BYTES = 64 * 1024
# A request must arrive whole (line, headers, body) within this many seconds of its first byte, or of the connection
# opening: uvicorn's idle timeout runs only between requests, so a client that sends half a request (or nothing) would
# hold its connection, and a file descriptor, for good.
REQUEST_TIMEOUT_SECONDS = 30


def content_length_problem(raw: str) -> str | None:
    """Why a ``Content-Length`` header value is refused (``None`` when it is a length)."""
    try:
        length = int(raw)
    except ValueError:
        return f"header 'Content-Length': not an integer ({raw[:40]!r})"
    return "header 'Content-Length': negative" if length < 0 else None


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose own 400s (a request it cannot parse) are ``{"error": ...}``, as the app's are."""

    _head = b""
    _eof = False
    _head_bytes = 0  # the current request's line and headers so far
    _head_too_large = False
    _in_head = True  # the current request's line and headers are not all in yet
    _raw_head = 0  # bytes received while they were not (httptools keeps a header's value whole until its line ends)
    _heads_done = 0  # requests whose headers were all in (a chunk that completed one is no head still coming)
    _request_timer: Any = None  # (asyncio.TimerHandle) closes a connection whose request does not arrive in time

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def _start_request_timer(self) -> None:
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(REQUEST_TIMEOUT_SECONDS, self._request_timed_out)

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._request_timer is None:  # (a pipelined or keep-alive request: its own time from its first byte)
            self._start_request_timer()

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise ValueError("request head too large")  # (httptools: a parser error, answered by send_400_response)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_request_timer()  # (the answer may take its time: the request is in)
        self._in_head, self._raw_head = True, 0  # (the next request's head comes next)
        super().on_message_complete()

    def eof_received(self) -> bool:  # type: ignore[override]  # (asyncio: a true value keeps the transport open)
        # A client that half-closes after its request (shutdown(SHUT_WR), as netcat-style
        # scripts do) still gets its answer: uvicorn would close at once, dropping a reply
        # computed on a worker thread. The connection closes once no answer is pending.
        self._eof = True
        if not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        # The bytes of the request being parsed, so a refusal can name the header at fault.
        self._head = (self._head + data)[-65536:]
        heads_done, in_head = self._heads_done, self._in_head
        super().data_received(data)
        # (a chunk that ended a body, or held a whole head, is no head still coming)
        if in_head and self._in_head and self._heads_done == heads_done and not self.transport.is_closing():
            # (counted raw too: one header whose line never ends reaches no on_header, and httptools keeps its value)
            self._raw_head += len(data)
            if self._raw_head > MAX_HEAD_BYTES:
                self._head_too_large = True
                self.send_400_response("request head too large")

    def on_response_complete(self) -> None:
        self._head = b""
        more = bool(self.pipeline)  # (a pipelined request starts next)
        super().on_response_complete()
        if self._eof and not more and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._cancel_request_timer()
        if self._head_too_large:
            body = json.dumps({"error": f"request: line and headers over {MAX_HEAD_BYTES} bytes"}).encode()
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                                 b"x-content-type-options: nosniff\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
            self.transport.close()
            return
        exc = sys.exc_info()[1]  # (called while the parser's HttpParserError is being handled)
        reason = str(exc) if exc is not None else msg
        match = re.search(rb"(?im)^content-length:[ \t]*([^\r\n]*)", self._head)
        problem = content_length_problem(match.group(1).decode("latin-1").strip()) if match else None
        body = json.dumps({"error": problem or f"request: not valid HTTP/1.1 ({reason})"}).encode()
        head = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(head + body)
        self.transport.close()


class ThreadedServer:
    """uvicorn serving ``app`` on a daemon thread; the interface of ``http.server``'s servers that callers use.

    Parameters
    ----------
    app : the ASGI application.
    port : 0 for any free port.
    host : the address to listen on.
    name : the thread's name.
    """

    def __init__(self, app: Any, port: int, host: str = "127.0.0.1", name: str = "http") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections. Without it a reply's headers and body go as two
        # writes and the body waits for the client's delayed ACK: ~45 ms a request instead of <1 ms
        # (asyncio sets it on the sockets it creates, not on one it is given).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self._socket.set_inheritable(True)
        config = uvicorn.Config(app, http=JsonErrorHttpToolsProtocol, lifespan="off", log_config=None, access_log=False,
                                timeout_keep_alive=IDLE_TIMEOUT_SECONDS, timeout_graceful_shutdown=5, server_header=False,
                                date_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if not self._server.started:
            self.server_close()
            raise OSError(f"{name} server on {host}:{port} did not start (see the log)")

    @property
    def server_port(self) -> int:
        """The port it listens on."""
        return int(self._socket.getsockname()[1])

    def shutdown(self) -> None:
        """Stop serving (open requests finish first) and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(10.0)

    def server_close(self) -> None:
        """Close the listening socket (after :meth:`shutdown`)."""
        self._socket.close()
