"""A local stand-in for Cboe's delayed-quotes CDN, serving recorded documents the way Cboe does.

GET /api/global/delayed_quotes/options/<NAME>.json answers <root>/<SYMBOL>/cboe.json (NAME is
the symbol, an index's with a leading underscore: _SPX serves SPX's or ^SPX's folder) as the
CDN does (openbb-cboe 2.0.0's recorded exchange): Content-Type application/json, the body
gzip-encoded when the client accepts it, sent in chunks, with a Last-Modified header. A
symbol with no document gets what S3 behind the CDN answers for a missing key: 403 with an
AccessDenied XML body (or, with unknown_symbol="404", a 404).

Faults by path pattern and count: 429, 500, 404, 403 (S3's AccessDenied), blocked (a 403 HTML
block page), html (200 with a web page), malformed (200 JSON of another shape), truncated (the
body cut in half, properly framed), cut (the connection closed half-way through the body),
hang. Holds (tests/emulator.Hold) keep requests waiting until released; `aliases` serve
many symbols from one document, renamed, for scans of any size. Every request is recorded in
`hits`.

Run in a process of its own for benchmarks: `python -m tests.cboe_emulator ROOT --latency 0.1
--alias AAPL=MSFT,NVDA` prints its base URL, serves until stdin closes, and answers GET
/_emulator/hits and POST /_emulator/reset.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

from tests.emulator import Emulator, EmulatorHandler, Hit, run_main

OPTIONS_PREFIX = "/api/global/delayed_quotes/options/"
FAULT_KINDS = (
    "429", "500", "404", "403", "blocked", "html", "malformed", "truncated", "cut", "hang",
)  # fmt: skip
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)
BLOCK_PAGE = b"<html><head><title>Attention Required! | Cloudflare</title></head></html>"
CHUNK = 16 * 1024


class _Handler(EmulatorHandler):
    owner: CboeEmulator
    server_version = "CboeEmulator/1"

    def do_GET(self) -> None:
        """Answer one request as the CDN would, after any hold, latency and fault."""
        owner = self.owner
        arrived = time.monotonic()
        path = urlsplit(self.path).path
        if self._answered_control(path):
            return
        hold = owner._hold_for(path, None)
        if hold is not None:
            hold.wait_here(path, None)
        if owner.latency and owner._closing.wait(owner.latency):
            return
        fault = owner._take_fault(path, None)
        hit = Hit(path, None, None, -1, fault, arrived)
        owner._record(hit)
        self._hit = hit
        try:
            hit.status = self._answer(path, fault)
        finally:
            self._hit = None

    def _answer(self, path: str, fault: str | None) -> int:
        owner = self.owner
        if fault == "hang":
            return self._hang()
        if fault in ("429", "500", "404"):
            return self._send(int(fault), f"HTTP {fault}".encode(), "text/plain")
        if fault == "403":
            return self._send(403, ACCESS_DENIED, "application/xml")
        if fault == "blocked":
            return self._send(403, BLOCK_PAGE, "text/html")
        if fault == "html":
            return self._send(200, b"<html><body>Will be right back</body></html>", "text/html")
        if fault == "malformed":
            return self._send(200, b'{"data": {"error": "no such thing"}}', "application/json")
        name = path[len(OPTIONS_PREFIX) :] if path.startswith(OPTIONS_PREFIX) else ""
        body = owner.document(name.removesuffix(".json")) if name.endswith(".json") else None
        if body is None:
            if owner.unknown_symbol == "404":
                return self._send(404, b"Not Found", "text/plain")
            return self._send(403, ACCESS_DENIED, "application/xml")
        if fault == "truncated":
            body = body[: len(body) // 2]
        return self._send(200, body, "application/json", cut=fault == "cut")

    def _send(self, status: int, body: bytes, content_type: str, *, cut: bool = False) -> int:
        hit = getattr(self, "_hit", None)
        if hit is not None:
            hit.status = 0 if cut else status  # before the client can see the answer
        gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        if gzipped:
            with self.owner._lock:
                encoded = self.owner._gzipped.get(body)
            if encoded is None:
                encoded = gzip.compress(body, compresslevel=5)
                with self.owner._lock:
                    self.owner._gzipped[body] = encoded
            body = encoded
            with self.owner._lock:
                self.owner.gzipped += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Last-Modified", formatdate(usegmt=True))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        stop = len(body) // 2 if cut else len(body)
        for start in range(0, stop, CHUNK):
            piece = body[start : min(start + CHUNK, stop)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        if cut:
            self.wfile.flush()
            self.close_connection = True
            return 0
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return status


class CboeEmulator(Emulator):
    """Serve a replay directory's cboe.json documents as Cboe's CDN on 127.0.0.1."""

    FAULT_KINDS = FAULT_KINDS
    OPTIONS_PREFIX = OPTIONS_PREFIX
    handler = _Handler

    def __init__(
        self,
        replay_root: Path,
        *,
        latency: float = 0.0,
        unknown_symbol: str = "403",
        aliases: Mapping[str, str] | None = None,
        hang_seconds: float = 30.0,
    ):
        if unknown_symbol not in ("403", "404"):
            raise ValueError("unknown_symbol must be '403' or '404'")
        super().__init__(hang_seconds=hang_seconds)
        self.root = Path(replay_root)
        self.latency = latency
        self.unknown_symbol = unknown_symbol
        # alias -> recorded symbol whose document it gets, every symbol in it rewritten
        self.aliases = {a.upper(): t.upper() for a, t in (aliases or {}).items()}
        self._bodies: dict[str, bytes | None] = {}
        self._gzipped: dict[bytes, bytes] = {}  # body -> its gzip encoding, as a CDN caches it
        self.gzipped = 0  # answers sent gzip-encoded (the client asked for it)

    def document(self, name: str) -> bytes | None:
        """Return the (renamed) recorded document for a Cboe name (_SPX, AAPL), or None."""
        symbol = name.upper().lstrip("_")
        with self._lock:
            if symbol in self._bodies:
                return self._bodies[symbol]
        recorded = self.aliases.get(symbol, symbol)
        path = next(
            (
                self.root / folder / "cboe.json"
                for folder in (recorded, f"^{recorded}", recorded.replace(".", "-"))
                if (self.root / folder / "cboe.json").is_file()
            ),
            None,
        )
        body = None if path is None else path.read_bytes()
        if body is not None and recorded != symbol:
            body = _renamed(body, recorded, symbol)
        with self._lock:
            self._bodies[symbol] = body
        return body


def _renamed(body: bytes, recorded: str, alias: str) -> bytes:
    payload = json.loads(body)
    payload["symbol"] = alias
    data = payload["data"]
    data["symbol"] = alias
    for option in data.get("options", []):
        name = option["option"]
        if name.startswith(recorded):
            option["option"] = alias + name[len(recorded) :]
    return json.dumps(payload, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> None:
    """Serve a replay directory's Cboe documents until stdin closes, printing the base URL."""
    run_main(CboeEmulator, argv, __spec__.name, "<root>/<SYMBOL>/cboe.json", "seconds per document")


if __name__ == "__main__":
    main()
