"""A local webhook for apprise's json:// scheme: records each POST, answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_GUARD_SECONDS = 60.0  # a held request is answered at the latest after this


class HookServer:
    """Serve POSTs on 127.0.0.1 and keep their JSON bodies.

    status: what to answer (200 or 500). hold: keep each request unanswered until release()
    (or the hang guard). on_request runs when a request arrives, before it is answered, and
    what it returns is kept beside the body (a test checks there what was true at that moment).
    """

    def __init__(
        self,
        status: int = 200,
        *,
        hold: bool = False,
        on_request: Callable[[], Any] | None = None,
    ):
        self.status = status
        self.hold = hold
        self.on_request = on_request
        self.requests: list[dict[str, Any]] = []
        self.seen: list[Any] = []  # what on_request returned, per request
        self.arrived = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                seen = owner.on_request() if owner.on_request else None
                with owner._lock:
                    owner.requests.append({"path": self.path, "body": body})
                    owner.seen.append(seen)
                owner.arrived.set()
                if owner.hold:
                    owner._released.wait(HANG_GUARD_SECONDS)
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting: that is what a hold tests

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        """Return the apprise URL that posts JSON to this server."""
        return f"json://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        """Answer the held requests (and any later ones at once)."""
        self._released.set()

    def bodies(self) -> list[dict[str, Any]]:
        """Return the JSON bodies received so far, oldest first."""
        with self._lock:
            return [r["body"] for r in self.requests]

    def __enter__(self) -> HookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
