"""What the Yahoo and Cboe emulators share: faults, holds, recorded hits and the serving thread.

An emulator subclasses `Emulator` (naming its FAULT_KINDS and OPTIONS_PREFIX) and gives
`handler` a subclass of `EmulatorHandler` that answers GET requests; `run_main` runs one in a
process of its own until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

CONTROL_PREFIX = "/_emulator/"  # the emulator's own endpoints, never recorded as hits
HOLD_TIMEOUT = 60.0  # seconds a held request waits at most: a hang guard, never a test's clock


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  # matches any date, including none


class _Dated:
    def __repr__(self) -> str:
        return "DATED"


DATED: Any = _Dated()  # matches any request for one expiration (with a date), not the first one


def _date_matches(wanted: Any, day: int | None) -> bool:
    if wanted is ANY:
        return True
    if wanted is DATED:
        return day is not None
    return wanted == day


@dataclass
class Hit:
    """One request the emulator received."""

    path: str
    date: int | None
    crumb: str | None
    status: int  # -1 while being answered, 0 when the emulator hung or dropped the connection
    fault: str | None
    at: float  # time.monotonic() on arrival


@dataclass
class Fault:
    """A fault served to requests whose path matches `path` (a regex, searched) and `date`."""

    kind: str
    path: re.Pattern[str]
    date: Any = ANY
    times: int | None = None  # None: every matching request; else this many more
    fired: int = 0

    def matches(self, path: str, day: int | None) -> bool:
        """Return True when the fault applies to this request and has uses left."""
        if self.times is not None and self.fired >= self.times:
            return False
        return bool(self.path.search(path)) and _date_matches(self.date, day)


class Hold:
    """Keep requests that match `path` (a regex, searched) and `date` waiting until released.

    With `until`, the hold releases itself once that many requests have arrived: a barrier
    that proves they were all under way at the same moment. A released hold lets everything
    through. A request never waits longer than `timeout` seconds (then `timed_out` is set).
    """

    def __init__(
        self,
        path: str,
        date: Any = ANY,
        until: int | None = None,
        timeout: float = HOLD_TIMEOUT,
    ):
        self.path = re.compile(path)
        self.date = date
        self.until = until
        self.timeout = timeout
        self.arrived: list[tuple[str, int | None]] = []  # (path, date) in order of arrival
        self.timed_out = False
        self._released = threading.Event()
        self._changed = threading.Condition()

    @property
    def released(self) -> bool:
        """Return whether the hold has let its requests go."""
        return self._released.is_set()

    def matches(self, path: str, day: int | None) -> bool:
        """Return True when a request to `path` for `day` must wait here."""
        return not self.released and bool(self.path.search(path)) and _date_matches(self.date, day)

    def wait_here(self, path: str, day: int | None) -> None:
        """Hold one request until the hold is released (or its timeout runs out)."""
        with self._changed:
            self.arrived.append((path, day))
            if self.until is not None and len(self.arrived) >= self.until:
                self._released.set()
            self._changed.notify_all()
        if not self._released.wait(self.timeout):
            self.timed_out = True

    def wait_for_arrivals(
        self,
        count: int,
        timeout: float = HOLD_TIMEOUT,
        give_up: Callable[[], bool] | None = None,
    ) -> list:
        """Wait until `count` requests have arrived and return them; fail after `timeout` s
        or as soon as give_up() says the client is gone (e.g. a child process exited)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.arrived) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (give_up is not None and give_up()):
                    raise AssertionError(
                        f"{len(self.arrived)} of {count} requests reached the hold on"
                        f" {self.path.pattern} ({'gave up' if left > 0 else f'{timeout:g} s'}):"
                        f" {self.arrived}"
                    )
                self._changed.wait(min(left, 0.1))
            return list(self.arrived)

    def release(self) -> None:
        """Let every held request and every later one through."""
        self._released.set()


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server that does not keep the process alive."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class EmulatorHandler(BaseHTTPRequestHandler):
    """Serve one emulator's requests: control endpoints here, the rest in do_GET."""

    owner: Any  # the Emulator, set on the subclass start() makes
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: unbuffered small writes meet Nagle's algorithm
    # and the client's delayed ACK, ~40 ms per request on loopback.
    wbufsize = 64 * 1024

    def setup(self) -> None:
        """Disable Nagle's algorithm on the connection."""
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes, content_type: str) -> int:
        raise NotImplementedError

    def _answered_control(self, path: str) -> bool:
        """Answer GET /_emulator/hits and return True, or return False for any other path."""
        if path != CONTROL_PREFIX + "hits":
            return False
        body = json.dumps({"hits": [asdict(hit) for hit in self.owner.hits]}).encode()
        self._send(200, body, "application/json")
        return True

    def do_POST(self) -> None:
        """Answer the emulator's own control requests (POST /_emulator/reset)."""
        if urlsplit(self.path).path == CONTROL_PREFIX + "reset":
            self.owner.reset()
            self._send(200, b'{"reset": true}', "application/json")
        else:
            self._send(404, b"Not Found", "text/plain")

    def _hang(self) -> int:
        """Keep the request unanswered until the emulator closes, then drop the connection."""
        self.owner._closing.wait(self.owner.hang_seconds)
        self.close_connection = True
        return 0


class Emulator:
    """Serve a site's stand-in on 127.0.0.1 with injectable faults and holds (context manager)."""

    FAULT_KINDS: ClassVar[tuple[str, ...]] = ()
    OPTIONS_PREFIX: ClassVar[str] = "/"
    handler: ClassVar[type[EmulatorHandler]] = EmulatorHandler

    def __init__(self, *, hang_seconds: float = 30.0):
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._hits: list[Hit] = []
        self._closing = threading.Event()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on an ephemeral port."""
        handler = type("Handler", (self.handler,), {"owner": self})
        self._server = EmulatorServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release any hung or held request."""
        self._closing.set()
        with self._lock:
            holds = list(self._holds)
        for hold in holds:
            hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """Return http://127.0.0.1:<port>, what a source's base_url takes."""
        assert self._server is not None, "start() the emulator first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults, holds and counts ----------------------------------------------------------

    def inject(
        self, kind: str, *, path: str | None = None, date: Any = ANY, times: int | None = None
    ) -> Fault:
        """Serve `kind` to matching requests (`times` of them, or all while it is in place)."""
        if kind not in self.FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}: expected one of {self.FAULT_KINDS}")
        fault = Fault(kind, re.compile(self.OPTIONS_PREFIX if path is None else path), date, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def hold(
        self,
        path: str | None = None,
        *,
        date: Any = ANY,
        until: int | None = None,
        timeout: float = HOLD_TIMEOUT,
    ) -> Hold:
        """Keep matching requests waiting until the returned Hold is released (see Hold)."""
        hold = Hold(self.OPTIONS_PREFIX if path is None else path, date, until, timeout)
        with self._lock:
            self._holds.append(hold)
        return hold

    @property
    def hits(self) -> list[Hit]:
        """Return a copy of the requests received so far."""
        with self._lock:
            return list(self._hits)

    def count(self, path: str | None = None, *, date: Any = ANY) -> int:
        """Return how many requests had exactly this path (any if None) and date."""
        return sum(
            1
            for hit in self.hits
            if (path is None or hit.path == path) and (date is ANY or hit.date == date)
        )

    def reset_hits(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._hits.clear()

    def reset(self) -> None:
        """Forget the requests received and the faults injected."""
        self.reset_hits()
        self.clear_faults()

    def _take_fault(self, path: str, day: int | None) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, day):
                    fault.fired += 1
                    return fault.kind
        return None

    def _hold_for(self, path: str, day: int | None) -> Hold | None:
        with self._lock:
            return next((h for h in self._holds if h.matches(path, day)), None)

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)


E = TypeVar("E", bound=Emulator)


def cleaned(emulator: E) -> Iterator[E]:
    """Yield a shared emulator without faults or hits, and remove its faults afterwards."""
    emulator.clear_faults()
    emulator.reset_hits()
    yield emulator
    emulator.clear_faults()


def parse_aliases(specs: list[str]) -> dict[str, str]:
    """Return {alias: recorded} from --alias RECORDED=A,B,... options."""
    aliases = {}
    for spec in specs:
        recorded, _, names = spec.partition("=")
        aliases.update({name: recorded for name in names.split(",") if name})
    return aliases


def run_main(
    factory: Callable[..., Emulator],
    argv: list[str] | None,
    module: str,
    layout: str,
    latency_help: str,
) -> None:
    """Serve a replay directory (laid out as `layout`) until stdin closes, printing the base URL."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=factory.__doc__)
    parser.add_argument("root", type=Path, help=f"replay directory ({layout})")
    parser.add_argument("--latency", type=float, default=0.0, help=latency_help)
    parser.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="RECORDED=A,B,...",
        help="serve symbols A, B, ... from RECORDED's recordings",
    )
    args = parser.parse_args(argv)
    aliases = parse_aliases(args.alias)
    with factory(args.root, latency=args.latency, aliases=aliases) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)
