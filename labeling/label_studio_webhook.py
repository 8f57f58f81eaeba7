"""The receiver of Label Studio's webhook: annotation payloads into the connector's event queue.

Label Studio POSTs JSON (``{"action": "ANNOTATION_CREATED", "annotation": {...}, "task": {...}}``)
with the header the connector registered (:data:`WEBHOOK_SECRET_HEADER`). The receiver only
checks that secret and queues the payload; the connector's loop turns it into a label, so a
lost or repeated delivery changes nothing (polling reads what a lost one missed).
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from activestream.labeling.label_studio_project import WEBHOOK_SECRET_HEADER

log = logging.getLogger(__name__)

MAX_BODY = 16 * 2**20  # a payload carries one annotation and its task: far less than this
# A connection's reads (the request line, headers, body) each wait this long at most: http.server's threads would
# otherwise wait for good on a client that sends nothing, one thread per connection.
SOCKET_TIMEOUT_SECONDS = 30.0


def serve_webhook(events: queue.SimpleQueue[dict[str, Any]], secret: str, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``POST /webhook`` on ``host:port`` (0: any free port) on a daemon thread.

    Parameters
    ----------
    events : where accepted payloads go (the connector's ``events``).
    secret : the value Label Studio must send in :data:`WEBHOOK_SECRET_HEADER`.

    Returns
    -------
    The server (``server.server_port``; ``shutdown()`` stops it).
    """

    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT_SECONDS  # (StreamRequestHandler: set on the connection's socket)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/webhook":
                return self._reply(404, {"error": "not found"})
            if not hmac.compare_digest(self.headers.get(WEBHOOK_SECRET_HEADER, ""), secret):
                return self._reply(401, {"error": f"missing or wrong {WEBHOOK_SECRET_HEADER} header"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0 or length > MAX_BODY:
                return self._reply(400, {"error": f"body: expected 1 to {MAX_BODY} bytes of JSON"})
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError as exc:
                return self._reply(400, {"error": f"body: not JSON ({exc})"})
            if not isinstance(payload, dict):
                return self._reply(400, {"error": "body: expected a JSON object"})
            if isinstance(payload.get("annotation"), dict):
                events.put(payload)
            return self._reply(200, {"ok": True})

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="labelstudio-webhook", daemon=True).start()
    return server
