"""(4) The index page under load: GET / latency, idle and while a scan runs.

The real app under gunicorn (gunicorn.conf.py, two gevent workers) scans the 26-symbol
default watchlist from the Yahoo emulator (tests/yahoo_emulator.py in a process of its own,
every symbol served from the AAPL recordings with a fixed latency). Clients in one epoll loop
in this process request GET / over keep-alive connections, at a fixed pace or back to back,
first with no scan, then while scans started with POST /scan (as the page's button does) run
one after another. In the latter rows only requests sent while a scan held the lock count.
"""

from __future__ import annotations

import errno
import http.client
import re
import selectors
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import redis

from bench.report import Table, count, median, ratio
from bench.scan import RECORDED, EmulatorProcess
from bench.sse import millis, percentile_ms, raise_fd_limit, worker_pids
from optscan.store.events import ScanEvents
from optscan.store.redisserver import EmbeddedRedis
from optscan.store.watchlist import DEFAULT_SYMBOLS, Watchlist
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server

WORKERS = 2
FULL = {"clients": 20, "seconds": 10.0, "symbols": len(DEFAULT_SYMBOLS), "latency": 0.1}
SMOKE = {"clients": 4, "seconds": 0.5, "symbols": 3, "latency": 0.01}
# Seconds between one client's requests (None: back to back). A page left open without
# script reloads every 5 s during a scan; 1 s is a brisk reader, 0.2 s a stress test.
PACES = (1.0, 0.2, None)
MAX_REQUESTS = 50_000  # per phase: a bound whatever the machine's speed
WARM_UP_SCANS = 2  # scans before measuring: a worker's first scan imports and builds its source
SCAN_TIMEOUT = 120.0  # seconds one scan may take before the bench gives up
# Only a page rendered while a scan runs has this (a no-script refresh every 5 s).
RUNNING_MARK = b'http-equiv="refresh"'


@dataclass
class Sample:
    """One GET / answer."""

    sent: float  # time.monotonic() when the request was due (paced) or left
    seconds: float
    status: int
    running: bool  # the page showed a running scan
    size: int  # bytes of the body


@dataclass
class PageClient:
    """One browser reloading the page over a keep-alive connection."""

    sock: socket.socket | None = None
    connected: bool = False
    busy: bool = False  # a request is out
    due: float = 0.0  # when the next request should leave (time.monotonic())
    started: float = 0.0  # when the request out counts from: its due time
    buffer: bytearray = field(default_factory=bytearray)
    status: int = 0
    length: int | None = None
    keep_alive: bool = True


class PageLoad:
    """N clients requesting GET / on one selector, back to back or each at a fixed pace."""

    def __init__(self, host: str, port: int, cookie: str):
        self.host, self.port = host, port
        self.selector = selectors.DefaultSelector()
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/html\r\n"
            f"Cookie: {cookie}\r\nConnection: keep-alive\r\n\r\n"
        ).encode()
        self.samples: list[Sample] = []
        self.clients: list[PageClient] = []
        self.interval: float | None = None

    def run(self, clients: int, seconds: float, interval: float | None = None) -> list[Sample]:
        """Load the page for `seconds` s and return every answer.

        interval None: each client sends its next request as soon as an answer is in.
        Otherwise each client sends one every `interval` s (staggered), and a request's time
        counts from when it was due, so that a stalled server is not hidden by late sends.
        """
        self.samples, self.interval = [], interval
        start = time.monotonic()
        self.clients = [
            PageClient(due=start + (interval or 0.0) * number / clients)
            for number in range(clients)
        ]
        for client in self.clients:
            self._open(client)
        stop = start + seconds
        while time.monotonic() < stop and len(self.samples) < MAX_REQUESTS:
            self._step(stop)
        # Requests out at the end are waited for, so that no slow answer is left out.
        finishing = time.monotonic() + 30
        while any(c.busy for c in self.clients):
            if time.monotonic() > finishing:
                raise RuntimeError("GET / answers did not arrive within 30 s")
            self._step(stop)
        for client in self.clients:
            self._close(client)
        return self.samples

    def close(self) -> None:
        """Close the selector."""
        self.selector.close()

    def _step(self, stop: float) -> None:
        now = time.monotonic()
        waits = [0.1]
        for client in self.clients:
            if client.connected and not client.busy and client.due < stop:
                if client.due <= now:
                    self._send(client)
                else:
                    waits.append(client.due - now)
        for key, mask in self.selector.select(min(waits)):
            self._serve(key.data, mask, stop)

    def _open(self, client: PageClient) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, f"connect to {self.host}:{self.port} failed")
        client.sock, client.connected, client.keep_alive = sock, False, True
        self.selector.register(sock, selectors.EVENT_WRITE, client)

    def _close(self, client: PageClient) -> None:
        if client.sock is not None:
            self.selector.unregister(client.sock)
            client.sock.close()
        client.sock, client.connected = None, False

    def _send(self, client: PageClient) -> None:
        assert client.sock is not None
        client.buffer.clear()
        client.status, client.length, client.busy = 0, None, True
        # Paced: from when it was due; back to back: from now (it is due at once).
        client.started = client.due if self.interval else time.monotonic()
        client.sock.sendall(self.request)  # ~150 bytes: fits the empty send buffer

    def _serve(self, client: PageClient, mask: int, stop: float) -> None:
        sock = client.sock
        assert sock is not None
        if mask & selectors.EVENT_WRITE:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, "page client could not connect")
            client.connected = True
            self.selector.modify(sock, selectors.EVENT_READ, client)
            return
        try:
            data = sock.recv(1 << 17)
        except ConnectionError:
            data = b""
        now = time.monotonic()
        if not data:
            if client.busy:
                raise RuntimeError("the server closed a connection in the middle of an answer")
            # gunicorn ended an idle keep-alive connection: open a new one and go on.
            self._close(client)
            if now < stop:
                self._open(client)
            return
        client.buffer += data
        if client.length is None:
            end = client.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(client.buffer[:end]).decode("latin-1")
            del client.buffer[: end + 4]
            client.status = int(head.split(" ", 2)[1])
            found = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
            if found is None:
                raise RuntimeError(f"GET / answered without a Content-Length: {head!r}")
            client.length = int(found.group(1))
            client.keep_alive = re.search(r"(?im)^connection:\s*close\s*$", head) is None
        if len(client.buffer) < client.length:
            return
        body = bytes(client.buffer[: client.length])
        self.samples.append(
            Sample(
                client.started,
                now - client.started,
                client.status,
                RUNNING_MARK in body,
                len(body),
            )
        )
        client.busy = False
        client.due = client.due + self.interval if self.interval else now
        if not client.keep_alive:
            self._close(client)
            if now < stop:
                self._open(client)


class ScanDriver(threading.Thread):
    """Start scans with POST /scan one after another and note when each held the lock."""

    def __init__(
        self, host: str, port: int, cookie: str, token: str, events: ScanEvents, lock_key: str
    ):
        super().__init__(name="bench-scan-driver", daemon=True)
        self.host, self.port, self.cookie, self.token = host, port, cookie, token
        self.events, self.lock_key = events, lock_key
        self.ends: list[dict] = []  # each scan's scan-finished or scan-failed data
        self.stop = threading.Event()
        self.spans: list[tuple[float, float]] = []  # (started, ended), time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Scan until told to stop, then wait for the last scan to end."""
        try:
            while not self.stop.is_set():
                self.spans.append(self.scan_once())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def scan_once(self) -> tuple[float, float]:
        """Start one scan and wait until it releases the lock; return its span."""
        body = urlencode({"side": "put", "force": "1", "csrf_token": self.token})
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(
                "POST",
                "/scan",
                body=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": self.cookie,
                    "X-Requested-With": "fetch",
                },
            )
            answer = connection.getresponse()
            text = answer.read().decode(errors="replace")
        finally:
            connection.close()
        # The lock is taken before the answer leaves, so the scan runs from here on.
        started = time.monotonic()
        if answer.status != 202:
            raise RuntimeError(f"POST /scan answered {answer.status}: {text[:500]}")
        deadline = started + SCAN_TIMEOUT
        while self.events.client.exists(self.lock_key):
            if time.monotonic() > deadline:
                raise RuntimeError(f"a scan held the lock for over {SCAN_TIMEOUT:g} s")
            time.sleep(0.01)
        ended = time.monotonic()
        # The scan's last event precedes the lock's release (the log keeps the newest 500).
        last = [e for e in self.events.logged() if e.type in ("scan-finished", "scan-failed")]
        seen = {end.get("scan_id") for end in self.ends}
        if not last or last[-1].data.get("scan_id") in seen:
            raise RuntimeError("a scan released the lock without publishing how it ended")
        self.ends.append(last[-1].data)
        return started, ended


@dataclass
class Phase:
    """The answers of one load phase and the scans that ran meanwhile."""

    load: str
    interval: float | None
    scanning: bool
    samples: list[Sample]
    started: float
    seconds: float
    spans: list[tuple[float, float]] = field(default_factory=list)

    def covered(self) -> float:
        """Return the share of the phase's time during which a scan held the lock."""
        end = self.started + self.seconds
        busy = sum(max(0.0, min(b, end) - max(a, self.started)) for a, b in self.spans)
        return busy / self.seconds

    def counted(self) -> list[Sample]:
        """Return the samples that count: all when idle, those during a scan otherwise."""
        return during(self.samples, self.spans) if self.scanning else self.samples


def session_and_token(host: str, port: int) -> tuple[str, str]:
    """Open the page once and return its session cookie and CSRF token."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/")
        answer = connection.getresponse()
        body = answer.read().decode()
        cookie = (answer.getheader("Set-Cookie") or "").split(";", 1)[0]
    finally:
        connection.close()
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    if answer.status != 200 or not cookie or found is None:
        raise RuntimeError(f"GET / answered {answer.status} without a session and a token")
    return cookie, found.group(1)


def during(samples: list[Sample], spans: list[tuple[float, float]]) -> list[Sample]:
    """Return the samples whose request left while one of the spans ran."""
    return [s for s in samples if any(start <= s.sent <= end for start, end in spans)]


def run(smoke: bool = False) -> list[Table]:
    """Load the page idle and while scans run; return the table."""
    sizes = SMOKE if smoke else FULL
    raise_fd_limit(4 * int(sizes["clients"]) + 256)
    symbols = list(DEFAULT_SYMBOLS)[: int(sizes["symbols"])]
    tmp = Path(tempfile.mkdtemp(prefix="optscan-bench-"))  # short: a unix socket lives here
    redis_server = EmbeddedRedis(tmp / "redis")
    try:
        redis_url = redis_server.ensure_running()
        root = build_replay_dir(tmp / "replay", "aapl")
        emulator = EmulatorProcess(
            root, float(sizes["latency"]), [s for s in symbols if s != RECORDED]
        )
        try:
            phases, finished = _measure(emulator.base_url, redis_url, tmp, symbols, sizes)
            hits = emulator.hits()
        finally:
            emulator.close()
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    v7 = sum(1 for hit in hits if hit["path"].startswith("/v7/finance/options/"))
    return [_table(phases, finished, sizes, symbols, v7)]


def _measure(
    base_url: str, redis_url: str, tmp: Path, symbols: list[str], sizes: dict
) -> tuple[list[Phase], list[dict]]:
    prefix = f"optscan-bench-index:{uuid.uuid4().hex[:8]}:"
    instance = tmp / "instance"
    Watchlist(instance / "watchlist.sqlite3", seed=symbols)
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": prefix,
        "OPTSCAN_SOURCE": f"yahoo:{base_url}",
        "OPTSCAN_SECRET_KEY": "bench-index-secret-key-0123456789abcdef",
        # Scans back to back for the whole phase: no per-client limit on started scans, and
        # no Yahoo pacing, so each scan is as short and as CPU-dense as the emulator allows.
        "OPTSCAN_SCAN_TRIGGER_LIMIT": "0",
        "OPTSCAN_YAHOO_RATE_PER_SECOND": "1000",
        "OPTSCAN_YAHOO_BURST": "1000",
        "GUNICORN_LOGLEVEL": "warning",
    }
    clients, seconds = int(sizes["clients"]), float(sizes["seconds"])
    loads = [
        (f"{clients} clients x {1 / pace:g}/s" if pace else f"{clients} clients back to back", pace)
        for pace in PACES
    ]
    probe = redis.Redis.from_url(redis_url, decode_responses=True)
    events = ScanEvents(probe, prefix)
    lock_key = f"{prefix}scan:lock"
    phases: list[Phase] = []
    try:
        with gunicorn_server(env, workers=WORKERS) as url:
            worker_pids(url.pid, WORKERS)
            cookie, token = session_and_token(url.host, url.port)
            warm = ScanDriver(url.host, url.port, cookie, token, events, lock_key)
            for _ in range(WARM_UP_SCANS):
                warm.scan_once()
            load = PageLoad(url.host, url.port, cookie)
            try:
                load.run(clients, min(seconds, 2.0))  # the page's warm-up, not counted
                for name, interval in loads:
                    started = time.monotonic()
                    samples = load.run(clients, seconds, interval)
                    elapsed = time.monotonic() - started
                    phases.append(Phase(name, interval, False, samples, started, elapsed))
                driver = ScanDriver(url.host, url.port, cookie, token, events, lock_key)
                driver.start()
                try:
                    for name, interval in loads:
                        started = time.monotonic()
                        samples = load.run(clients, seconds, interval)
                        # On a busy machine a short (smoke) row may fall between two scans: go
                        # on until a page sent during a scan showed it (a hang guard bounds it).
                        while not any(s.running for s in during(samples, driver.spans)):
                            if time.monotonic() - started > SCAN_TIMEOUT or not driver.is_alive():
                                raise RuntimeError("no page was served while a scan ran")
                            samples += load.run(clients, seconds, interval)
                        elapsed = time.monotonic() - started
                        phases.append(
                            Phase(name, interval, True, samples, started, elapsed, driver.spans)
                        )
                finally:
                    driver.stop.set()
                    driver.join(SCAN_TIMEOUT + 30)
                if driver.is_alive() or driver.error is not None:
                    raise RuntimeError(f"the scan driver failed: {driver.error!r}")
            finally:
                load.close()
    finally:
        probe.close()
    finished = warm.ends + driver.ends
    for data in finished:
        if not data.get("success"):
            raise RuntimeError(f"a scan failed: {data}")
        if data["counts"]["scanned"] != len(symbols):
            raise RuntimeError(f"a scan scanned {data['counts']} of {len(symbols)} symbols")
    # Idle rows beside the rows of the same load with a scan running.
    phases.sort(key=lambda phase: (-(phase.interval or 0), phase.scanning))
    return phases, finished


def _table(
    phases: list[Phase], finished: list[dict], sizes: dict, symbols: list[str], v7: int
) -> Table:
    table = Table(
        f"(4) Index page: GET / for {sizes['seconds']:g} s per row,"
        f" {WORKERS} gevent workers, idle and while scans run",
        [
            "load",
            "scan",
            "requests",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p99 vs idle",
            "not 200",
            "pages showing the scan",
        ],
    )
    idle_p99: dict[str, float] = {}
    for phase in phases:
        samples = phase.counted()
        rate = count(len(phase.samples) / phase.seconds)
        label = "running" if phase.scanning else "none"
        if not samples:  # a short smoke row may fall between two scans
            table.add(phase.load, label, 0, rate, "-", "-", "-", "-", 0, 0)
            continue
        times = [s.seconds for s in samples]
        p99 = percentile_ms(times, 99)
        idle_p99.setdefault(phase.load, p99)
        table.add(
            phase.load,
            label,
            count(len(samples)),
            rate,
            millis(percentile_ms(times, 50)),
            millis(p99),
            millis(max(times) * 1000),
            ratio(p99 / idle_p99[phase.load]),
            sum(1 for s in samples if s.status != 200),
            f"{sum(1 for s in samples if s.running):,}",
        )
    spans = next(phase.spans for phase in phases if phase.scanning)
    walls = [end - start for start, end in spans]
    coverage = [phase.covered() for phase in phases if phase.scanning]
    matches = finished[-1]["counts"]["matches"]
    idle_sizes = [x.size for phase in phases if not phase.scanning for x in phase.samples]
    live_sizes = [x.size for phase in phases if phase.scanning for x in phase.counted()]
    table.notes += [
        f"Scans: POST /scan (force) over the {len(symbols)}-symbol watchlist, one after"
        f" another through the 'running' rows ({len(spans)} scans, {min(walls):.2f}-"
        f"{max(walls):.2f} s each; a scan held the lock {min(coverage):.0%}-{max(coverage):.0%}"
        f" of each row's time); the emulator answers each v7 request after"
        f" {sizes['latency'] * 1000:g} ms; no Yahoo pacing (OPTSCAN_YAHOO_RATE_PER_SECOND=1000),"
        f" so the scans are as dense as they can be; {WARM_UP_SCANS} unmeasured scans first."
        f" {len(finished)} scans ended, each scanning every symbol ({matches} matches);"
        f" {v7:,} v7 requests in all.",
        f"The page: {median(idle_sizes) / 1024:.0f} KiB idle (the last results),"
        f" {min(live_sizes) / 1024:.0f}-{max(live_sizes) / 1024:.0f} KiB while a scan runs"
        " (its progress and the rows found so far).",
        "'running' rows count only the requests sent while a scan held the lock (requests/s:"
        " all answers in the row's time); 'pages showing the scan' were rendered with its"
        " progress.",
        "Loads: 'x N/s': each client asks N times a second (staggered), and a request's time"
        " counts from when it was due, so a stalled server is not hidden by late requests;"
        " 'back to back': each client asks again as soon as its answer is in, which keeps the"
        " server saturated (its figures are mostly queueing; requests/s is the capacity).",
        "Clients: one epoll loop in the bench process, keep-alive HTTP/1.1 with the session"
        " cookie; the clients, the emulator, Redis and both workers share the machine's CPUs.",
    ]
    return table
