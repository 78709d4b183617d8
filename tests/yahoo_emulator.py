"""A local stand-in for Yahoo Finance that serves a replay directory the way Yahoo would.

It answers what yfinance asks for: /v7/finance/options/SYMBOL[?date=epoch] (the recorded raw
body; without a date the front recording; for a day not recorded, Yahoo's empty answer for
that day), /v10/finance/quoteSummary/SYMBOL?modules=calendarEvents (the body given in
`calendars` for the symbol, else Yahoo's 404 for a symbol without a calendar, or for an
unknown one), the cookie page (fc.yahoo.com, here "/") and /v1/test/getcrumb. Point a
YahooSource at it with base_url=emulator.base_url.

Latency (fixed or jittered) and faults (429, 500, 404, hang, dropped connection, truncated
or non-JSON or non-v7 bodies), by path pattern, expiration and count, make it usable for
error, retry and benchmark tests. Every request is recorded in `hits` (stamped on arrival,
before any hold or latency). `aliases` serves many symbols from one recording (each answer
rewritten to name the alias), for scans of any size; `delays` makes some paths slower than
the others.

Tests that must not depend on the machine's speed order things with holds instead of
latencies: `hold()` keeps matching requests waiting until the test releases them (or until a
given number of them have arrived: a barrier), so that "these were in flight at once" or
"this one finished last" follow from the test's own steps, never from a race against a
clock. `peak_in_flight` is the most options requests ever being answered at once.

Run in a process of its own (as the benchmarks do, so that it does not share their GIL):
`python -m tests.yahoo_emulator ROOT --latency 0.1 --alias AAPL=MSFT,NVDA` prints its base
URL, serves until its stdin closes, and answers GET /_emulator/hits (the hits as JSON) and
POST /_emulator/reset.

    with YahooEmulator(build_replay_dir(tmp_path, "aapl"), latency=(0.05, 0.15)) as yahoo:
        yahoo.inject("429", path="/AAPL$", times=2)
        ...
        assert yahoo.count("/v7/finance/options/AAPL", date=None) == 1
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from optscan.sources.base import SourceError
from optscan.sources.replay import ReplaySource
from optscan.sources.v7 import expiration_date, expiration_epoch
from tests.emulator import (
    ANY,
    DATED,
    HOLD_TIMEOUT,
    Emulator,
    EmulatorHandler,
    Fault,
    Hit,
    Hold,
    run_main,
)

__all__ = ["ANY", "DATED", "HOLD_TIMEOUT", "Fault", "Hit", "Hold", "YahooEmulator"]

OPTIONS_PREFIX = "/v7/finance/options/"
SUMMARY_PREFIX = "/v10/finance/quoteSummary/"
CALENDAR_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "yahoo-quotesummary"
# Calendar bodies for the symbols of the replay sets (see the fixtures' SOURCES.md).
CALENDARS = {
    "AAPL": CALENDAR_FIXTURES / "constructed" / "quoteSummary-calendarEvents-AAPL-2025-08.json",
}
CRUMB_PATH = "/v1/test/getcrumb"
COOKIE_PATH = "/"  # fc.yahoo.com, once a YahooSession has moved it under base_url
CRUMB = "emulatorCrumb0"

FAULT_KINDS = ("429", "500", "404", "hang", "drop", "truncated", "html", "not_v7")


class _Handler(EmulatorHandler):
    owner: YahooEmulator
    server_version = "YahooEmulator/1"

    def do_GET(self) -> None:
        """Answer one request as Yahoo would, after any latency and fault."""
        owner = self.owner
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if self._answered_control(path):
            return
        try:
            day = int(query["date"][0]) if "date" in query else None
        except ValueError:
            day = -1  # Yahoo would refuse it; nothing recorded matches it either
        crumb = query.get("crumb", [None])[0]

        counted = path.startswith(OPTIONS_PREFIX)
        if counted:
            owner._enter()
        self._counted = counted
        try:
            hold = owner._hold_for(path, day)
            if hold is not None:
                hold.wait_here(path, day)
            delay = owner._delay(path)
            if delay and owner._closing.wait(delay):
                return
            fault = owner._take_fault(path, day)
            hit = Hit(path, day, crumb, -1, fault, arrived)
            owner._record(hit)  # before answering, so that a hung request counts as it hangs
            self._hit = hit
            try:
                hit.status = self._answer(path, day, crumb, fault)
            finally:
                self._hit = None
        finally:
            self._done()

    def _done(self) -> None:
        # Once per request, before the client can see the answer and send its next request.
        if getattr(self, "_counted", False):
            self._counted = False
            self.owner._leave()

    def _answer(self, path: str, day: int | None, crumb: str | None, fault: str | None) -> int:
        owner = self.owner
        if fault == "hang":
            return self._hang()
        if fault == "drop":
            self.close_connection = True
            return 0
        if fault == "429":
            return self._send(429, b"Too Many Requests\r\n", "text/plain;charset=utf-8")
        if fault == "500":
            body = _finance_error("Internal Server Error", "Emulated internal error")
            return self._send(500, _json(body))
        if fault == "404":
            body = _finance_error("Not Found", "No data found, symbol may be delisted")
            return self._send(404, _json(body))
        if fault == "html":
            return self._send(200, b"<html><body>Will be right back</body></html>", "text/html")
        if fault == "not_v7":
            return self._send(200, _json({"finance": {"result": None, "error": None}}))

        if path == COOKIE_PATH:
            # fc.yahoo.com answers 404 and sets the A3 cookie yfinance wants.
            return self._send(
                404,
                b"Not Found",
                "text/plain",
                {"Set-Cookie": "A3=emulator; Max-Age=31536000; Path=/; HttpOnly"},
            )
        if path == CRUMB_PATH:
            return self._send(200, CRUMB.encode(), "text/plain;charset=utf-8")
        if not path.startswith((OPTIONS_PREFIX, SUMMARY_PREFIX)):
            return self._send(404, b"Not Found", "text/plain")
        if owner.require_crumb and crumb != CRUMB:
            return self._send(401, _json(_finance_error("Unauthorized", "Invalid Crumb")))
        if path.startswith(SUMMARY_PREFIX):
            symbol = path[len(SUMMARY_PREFIX) :].upper()
            status, body = owner._calendar_body(symbol)
            return self._send(status, body[: len(body) // 2] if fault == "truncated" else body)
        status, body = owner._options_body(path[len(OPTIONS_PREFIX) :], day)
        if fault == "truncated":
            body = body[: len(body) // 2]
        return self._send(status, body)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json;charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> int:
        hit = getattr(self, "_hit", None)
        if hit is not None:
            hit.status = status  # before the client can see the answer and read the hits
        self._done()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        return status


class YahooEmulator(Emulator):
    """Serve a replay directory as Yahoo's v7 options API on 127.0.0.1 (context manager)."""

    FAULT_KINDS = FAULT_KINDS
    OPTIONS_PREFIX = OPTIONS_PREFIX
    handler = _Handler

    def __init__(
        self,
        replay_root: Path,
        *,
        latency: float | tuple[float, float] = 0.0,
        latency_paths: str = OPTIONS_PREFIX,
        seed: int = 0,
        require_crumb: bool = True,
        unknown_symbol: str = "404",
        hang_seconds: float = 30.0,
        aliases: Mapping[str, str] | None = None,
        delays: Mapping[str, float] | None = None,
        calendars: Mapping[str, Path] | None = None,
    ):
        if unknown_symbol not in ("404", "empty"):
            raise ValueError("unknown_symbol must be '404' or 'empty'")
        super().__init__(hang_seconds=hang_seconds)
        self.replay = ReplaySource(replay_root)
        self.latency = latency  # seconds, or (low, high) for a uniform jitter
        self.latency_paths = re.compile(latency_paths)
        # path regex -> extra seconds on top of the latency, for symbols slower than others
        self.delays = [
            (re.compile(pattern), float(extra)) for pattern, extra in (delays or {}).items()
        ]
        self.require_crumb = require_crumb
        self.unknown_symbol = unknown_symbol
        # alias -> recorded symbol whose answers it gets, with every symbol field rewritten
        self.aliases = {a.upper(): t.upper() for a, t in (aliases or {}).items()}
        # symbol -> file of its quoteSummary calendarEvents body (an alias gets its target's)
        self.calendars = {s.upper(): Path(path) for s, path in (calendars or {}).items()}
        self._rewritten: dict[tuple[str, int | None], tuple[int, bytes]] = {}
        self._random = random.Random(seed)
        self._in_flight = 0
        self._peak_in_flight = 0

    # -- counts and serving ----------------------------------------------------------------

    @property
    def peak_in_flight(self) -> int:
        """Return the most options requests that were ever being answered at the same time."""
        with self._lock:
            return self._peak_in_flight

    def counts(self) -> Counter[str]:
        """Return the number of requests per path."""
        return Counter(hit.path for hit in self.hits)

    def reset_hits(self) -> None:
        """Forget the requests received so far (and the peak of those in flight)."""
        with self._lock:
            self._hits.clear()
            self._peak_in_flight = self._in_flight

    def _delay(self, path: str) -> float:
        extra = next((seconds for pattern, seconds in self.delays if pattern.search(path)), 0.0)
        if not self.latency_paths.search(path):
            return extra
        if isinstance(self.latency, tuple):
            low, high = self.latency
            with self._lock:
                return extra + self._random.uniform(low, high)
        return extra + float(self.latency)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _options_body(self, symbol: str, day: int | None) -> tuple[int, bytes]:
        recorded = self.aliases.get(symbol, symbol)
        if recorded == symbol:
            return self._recorded_body(symbol, day)
        # Recordings do not change while serving: rewrite each answer once per alias.
        with self._lock:
            cached = self._rewritten.get((symbol, day))
        if cached is None:
            status, body = self._recorded_body(recorded, day)
            if status == 200:
                body = self._rewrite(body, recorded, symbol)
            cached = (status, body)
            with self._lock:
                self._rewritten[(symbol, day)] = cached
        return cached

    def _recorded_body(self, symbol: str, day: int | None) -> tuple[int, bytes]:
        try:
            front = self.replay.front_path(symbol)
            if not front.exists():
                raise SourceError(symbol, "not recorded")
        except SourceError:
            if self.unknown_symbol == "empty":
                return 200, _json({"optionChain": {"result": [], "error": None}})
            return 404, _json(_finance_error("Not Found", "No data found, symbol may be delisted"))
        if day is None:
            return 200, front.read_bytes()
        recorded = self.replay.path_for(symbol, expiration_date(day))
        if recorded is not None and expiration_epoch(expiration_date(day)) == day:
            return 200, recorded.read_bytes()
        # What Yahoo sends for a day it lists nothing on (as recorded for AAPL 2022-03-01):
        # the usual answer with an empty chain for that day. A symbol without options gets
        # its answer without options.
        payload = json.loads(front.read_bytes())
        result = payload["optionChain"]["result"][0]
        if result.get("options"):
            result["options"] = [
                {"expirationDate": day, "hasMiniOptions": False, "calls": [], "puts": []}
            ]
        return 200, _json(payload)

    def _calendar_body(self, symbol: str) -> tuple[int, bytes]:
        recorded = self.aliases.get(symbol, symbol)
        path = self.calendars.get(symbol) or self.calendars.get(recorded)
        if path is not None:
            return 200, path.read_bytes()
        try:
            known = self.replay.front_path(recorded).exists()
        except SourceError:
            known = False
        if not known:
            error = _summary_error(f"Quote not found for ticker symbol: {symbol}")
            return 404, _json(error)
        # As recorded for BTC-USD: a symbol Yahoo knows but has no calendar for.
        return 404, _json(
            _summary_error("No fundamentals data found for any of the summaryTypes=calendarEvents")
        )

    @staticmethod
    def _rewrite(body: bytes, recorded: str, alias: str) -> bytes:
        """Return a recorded answer as it would name `alias` instead of `recorded`."""
        payload = json.loads(body)
        for result in payload["optionChain"]["result"]:
            result["underlyingSymbol"] = alias
            result["quote"]["symbol"] = alias
            for option in result.get("options", []):
                for side in ("calls", "puts"):
                    for contract in option.get(side, []):
                        name = contract.get("contractSymbol", "")
                        if name.startswith(recorded):
                            contract["contractSymbol"] = alias + name[len(recorded) :]
        return _json(payload)


def _finance_error(code: str, description: str) -> dict:
    return {"finance": {"result": None, "error": {"code": code, "description": description}}}


def _summary_error(description: str) -> dict:
    return {
        "quoteSummary": {"result": None, "error": {"code": "Not Found", "description": description}}
    }


def _json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> None:
    """Serve a replay directory until stdin closes, printing the base URL first."""
    run_main(
        YahooEmulator, argv, __spec__.name, "<root>/<SYMBOL>/<day>.json", "seconds per v7 answer"
    )


if __name__ == "__main__":
    main()
