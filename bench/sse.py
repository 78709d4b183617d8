"""(3) SSE fan-out: many EventSource clients on ONE gunicorn gevent worker.

For each client count N a fresh server (the real app, gunicorn.conf.py, one gevent worker)
streams GET /stream to N raw-socket clients held by one epoll loop in this process. The loop
also publishes through ScanEvents, as `flask scan` does: the events of simulated 26-symbol
scans, each stamped with time.monotonic() at publication (CLOCK_MONOTONIC, one clock for the
whole machine), so that every client's receipt gives a publish-to-receipt latency. Redis
connections are counted with CLIENT LIST (the bench's own excluded; the server is the only
other client of this Redis), and the worker's memory is its RSS from /proc.
"""

from __future__ import annotations

import errno
import http.client
import json
import re
import resource
import selectors
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.report import Table, count, seconds
from optscan.store.events import ScanEvents
from optscan.store.redisserver import EmbeddedRedis
from tests.faults import child_pids
from tests.servers import gunicorn_server

FULL_CLIENTS = (100, 500, 1000)
SMOKE_CLIENTS = (20,)
SCAN_SYMBOLS = 26  # a simulated scan: scan-started, symbol-done + progress per symbol, finished
FULL_SCANS, SMOKE_SCANS = 2, 1
FULL_INTERVAL, SMOKE_INTERVAL = 0.075, 0.02  # seconds between events
ROWS_PER_SYMBOL = 3  # a symbol-done event's rows, rendered to HTML by the worker once per event
WARM_CLIENTS = 5
CONNECT_TIMEOUT = 60.0  # seconds for all N streams to open
DRAIN_TIMEOUT = 15.0  # seconds for the last event to reach every client
_SENT = re.compile(rb'"sent":([0-9.eE+-]+)')
_RETRY = re.compile(rb"^retry: ?([0-9]+)$", re.MULTILINE)


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft limit of open files to `needed` if it is lower; return it.

    Child processes (the gunicorn server) inherit the limit, and both ends hold a socket per client.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target < needed:
            raise RuntimeError(f"need {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def worker_pids(master: int, expected: int, timeout: float = 10.0) -> list[int]:
    """Return the workers of a gunicorn master, waiting until `expected` of them run."""
    deadline = time.monotonic() + timeout
    while True:
        pids = child_pids(master)
        if len(pids) == expected:
            return pids
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn {master} has workers {pids}, expected {expected}")
        time.sleep(0.1)


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile_ms(values: list[float], q: float) -> float:
    """Return the q-th percentile of durations in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(values), q)) * 1000.0


def millis(value: float) -> str:
    """Return milliseconds with one decimal."""
    return f"{value:.1f}"


class ChunkedBody:
    """Decode an HTTP/1.1 chunked body as it arrives; `feed` returns the new payload bytes."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._left = 0  # payload bytes still due in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk still to skip
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Add received bytes and return the payload they complete."""
        self._raw += data
        out = bytearray()
        while self._raw and not self.finished:
            if self._crlf:
                skip = min(self._crlf, len(self._raw))
                del self._raw[:skip]
                self._crlf -= skip
            elif self._left:
                take = min(self._left, len(self._raw))
                out += self._raw[:take]
                del self._raw[:take]
                self._left -= take
                if not self._left:
                    self._crlf = 2
            else:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(bytes(self._raw[:end]).split(b";")[0], 16)
                del self._raw[: end + 2]
                if size == 0:
                    self.finished = True
                else:
                    self._left = size
        return bytes(out)


@dataclass
class StreamClient:
    """One EventSource-like client: GET /stream over HTTP/1.1, reading the chunked events."""

    sock: socket.socket | None = None
    head: bytearray = field(default_factory=bytearray)
    body: ChunkedBody | None = None
    events: bytearray = field(default_factory=bytearray)
    opened: bool = False  # the opening (retry:) arrived and the stream has not ended since
    retry_seconds: float = 3.0  # EventSource's reconnection delay, from the stream's retry:
    reconnect_at: float | None = None
    received: int = 0

    def reset(self) -> None:
        """Forget the ended stream's state (the reconnection delay is kept)."""
        self.sock, self.body, self.opened = None, None, False
        self.head.clear()
        self.events.clear()

    def on_data(self, data: bytes, now: float, latencies: list[float]) -> bool:
        """Take bytes received at `now`, record each stamped event; return False at the end."""
        if self.body is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return True
            status_line = bytes(self.head[: self.head.find(b"\r\n")])
            headers = bytes(self.head[:end]).lower()
            if b" 200 " not in status_line or b"transfer-encoding: chunked" not in headers:
                raise RuntimeError(f"unexpected stream answer: {bytes(self.head[:end])!r}")
            self.body = ChunkedBody()
            data = bytes(self.head[end + 4 :])
            self.head.clear()
        self.events += self.body.feed(data)
        # Events end with a blank line; a block without a stamp is the opening or a heartbeat.
        end = self.events.rfind(b"\n\n")
        if end >= 0:
            complete = bytes(self.events[: end + 2])
            del self.events[: end + 2]
            if not self.opened and (retry := _RETRY.search(complete)):
                self.opened = True
                self.retry_seconds = int(retry.group(1)) / 1000
            for match in _SENT.finditer(complete):
                latencies.append(now - float(match.group(1)))
                self.received += 1
        return not self.body.finished


class StreamSwarm:
    """N stream clients on one selector, served between the bench's other work.

    A stream the server ends is reopened after its retry: delay, as EventSource does, while
    `reconnect` is set (the connecting phase); afterwards an ended stream counts as lost.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.selector = selectors.DefaultSelector()
        self.clients: list[StreamClient] = []
        self.latencies: list[float] = []
        self.reconnect = True
        self.ended = 0  # streams the server ended while connecting (reopened after retry:)
        self.lost = 0  # streams that ended afterwards
        self.request = (
            f"GET /stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"
        ).encode()

    def connect(self, n: int) -> None:
        """Start connecting n clients at once (as browsers do after a restart)."""
        for _ in range(n):
            client = StreamClient()
            self.clients.append(client)
            self._open(client)

    def _open(self, client: StreamClient) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, f"connect to {self.host}:{self.port} failed")
        client.sock = sock
        client.reconnect_at = None
        self.selector.register(sock, selectors.EVENT_WRITE, client)

    def opened(self) -> int:
        """Return how many streams are open (their opening arrived, they have not ended)."""
        return sum(1 for client in self.clients if client.opened)

    def pump(self, timeout: float) -> None:
        """Serve ready sockets and due reconnections once, waiting at most `timeout` s."""
        now = time.monotonic()
        for client in self.clients:
            if client.reconnect_at is not None and client.reconnect_at <= now:
                self._open(client)
        for key, mask in self.selector.select(max(timeout, 0.0)):
            client: StreamClient = key.data
            sock = client.sock
            assert sock is not None
            if mask & selectors.EVENT_WRITE:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, "stream client could not connect")
                sock.sendall(self.request)  # ~150 bytes: fits the empty send buffer
                self.selector.modify(sock, selectors.EVENT_READ, client)
                continue
            try:
                data = sock.recv(1 << 16)
            except ConnectionError:
                data = b""
            now = time.monotonic()
            if not data or not client.on_data(data, now, self.latencies):
                self._end(client, now)

    def run_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump until done() or raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
            self.pump(0.05)

    def _end(self, client: StreamClient, now: float) -> None:
        if client.sock is not None:
            self.selector.unregister(client.sock)
            client.sock.close()
        client.reset()
        if self.reconnect:
            self.ended += 1
            client.reconnect_at = now + client.retry_seconds
        else:
            self.lost += 1

    def close(self) -> None:
        """Close every client socket."""
        self.reconnect = False
        for client in self.clients:
            if client.sock is not None:
                self.selector.unregister(client.sock)
                client.sock.close()
        self.clients.clear()
        self.selector.close()


class RedisProbe:
    """The bench's one Redis connection: publishes events and counts the other connections."""

    def __init__(self, url: str, prefix: str):
        self.client = redis.Redis.from_url(url, single_connection_client=True)
        self.own_id = self.client.client_id()
        self.events = ScanEvents(self.client, prefix)

    def connections(self) -> tuple[int, int]:
        """Return (connections other than this one, of which subscribed to pub/sub)."""
        others = [c for c in self.client.client_list() if int(c["id"]) != self.own_id]
        subscribed = sum(1 for c in others if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0)
        return len(others), subscribed

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def _row(symbol: str, n: int) -> dict[str, Any]:
    """Return a Match-shaped row, as a scan publishes it (the worker renders the HTML)."""
    return {
        "symbol": symbol, "side": "put", "contract": f"{symbol}250822P{n:08d}",
        "expiration": "2025-08-22", "dte": 7, "strike": 200.0 + n, "bid": 1.25, "ask": 1.35,
        "mid": 1.30, "spread_pct": 7.7, "otm_pct": 5.2, "annualized_return": 32.5, "iv": 0.31,
        "delta": -0.15, "pop_otm": 0.83, "open_interest": 1200, "volume": 310,
        "breakeven": 198.75 + n, "flags": [],
    }  # fmt: skip


def simulated_scan(symbols: int) -> list[tuple[str, dict[str, Any]]]:
    """Return the events of a scan of `symbols` symbols, shaped like LiveScan's."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("scan-started", {"scan_id": "bench", "side": "put", "total": symbols, "trigger": "cli"})
    ]
    for index in range(1, symbols + 1):
        symbol = f"SYM{index:02d}"
        rows = [_row(symbol, n) for n in range(ROWS_PER_SYMBOL)]
        events.append(
            ("symbol-done", {"symbol": symbol, "status": "ok", "count": len(rows), "rows": rows})
        )
        events.append(
            ("progress", {"index": index, "total": symbols, "symbol": symbol, "eta_s": 1.0})
        )
    events.append(("scan-finished", {"success": True, "message": "bench", "scan_id": "bench"}))
    return events


def stream_stats(host: str, port: int) -> dict[str, Any]:
    """Return the worker's fan-out counters (GET /stream/stats; the server runs with TESTING)."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/stream/stats")
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/stream/stats answered {answer.status}")
        return json.loads(body)
    finally:
        connection.close()


@dataclass
class FanOutFigures:
    """What one client count measured."""

    clients: int
    connect_seconds: float
    published: int
    delivered: int
    latencies: list[float]
    conns_before: int
    conns_with_clients: int
    conns_peak: int
    subscribed: int
    rss_before_kib: int
    rss_with_clients_kib: int
    refused: int
    refusals_logged: int  # "Too many connections" in the server's log
    subscriptions: int  # made while serving the clients (the warm-up's not counted)
    dropped_slow: int
    lost: int


def publish_scans(
    swarm: StreamSwarm, probe: RedisProbe, scans: int, interval: float, symbols: int
) -> int:
    """Publish `scans` simulated scans, one event every `interval` s, serving the clients."""
    published = 0
    for _ in range(scans):
        for kind, data in simulated_scan(symbols):
            due = time.monotonic() + interval
            probe.events.publish(kind, {**data, "sent": time.monotonic()})
            published += 1
            while (left := due - time.monotonic()) > 0:
                swarm.pump(left)
    return published


def measure(n: int, redis_url: str, tmp: Path, smoke: bool) -> FanOutFigures:
    """Serve n stream clients from one fresh one-worker server and measure the fan-out."""
    prefix = f"optscan-bench-sse:{uuid.uuid4().hex[:8]}:"
    instance = tmp / f"instance-{n}"
    instance.mkdir()
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": prefix,
        "OPTSCAN_SECRET_KEY": "bench-sse-secret-key-0123456789abcdef",
        "OPTSCAN_TESTING": "true",  # only for GET /stream/stats, the fan-out's counters
        # The configured 1000 would leave no room for the stats request beside 1,000 streams.
        "GUNICORN_CMD_ARGS": f"--worker-connections {max(1000, n + 100)}",
        "GUNICORN_LOGLEVEL": "warning",
    }
    scans = SMOKE_SCANS if smoke else FULL_SCANS
    interval = SMOKE_INTERVAL if smoke else FULL_INTERVAL
    symbols = 3 if smoke else SCAN_SYMBOLS
    probe = RedisProbe(redis_url, prefix)
    try:
        with gunicorn_server(env, workers=1) as url:
            (worker,) = worker_pids(url.pid, 1)
            _warm_up(url.host, url.port, probe)
            rss_before = rss_kib(worker)
            conns_before, _ = probe.connections()
            subscriptions_before = int(stream_stats(url.host, url.port)["subscriptions"])

            swarm = StreamSwarm(url.host, url.port)
            try:
                started = time.monotonic()
                swarm.connect(n)
                peak = conns_before
                deadline = started + CONNECT_TIMEOUT
                # Open when every client has its opening and the worker counts them all (a
                # refused stream sends the opening too, then ends).
                while swarm.opened() < n or stream_stats(url.host, url.port)["clients"] != n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{swarm.opened()} of {n} streams open after {CONNECT_TIMEOUT:g} s"
                            f" ({swarm.ended} ended by the server)"
                        )
                    swarm.pump(0.1)
                    peak = max(peak, probe.connections()[0])
                connect_seconds = time.monotonic() - started
                swarm.reconnect = False
                time.sleep(0.5)  # let the worker finish whatever the burst left behind
                rss_with = rss_kib(worker)
                conns_with, subscribed = probe.connections()
                peak = max(peak, conns_with)

                published = publish_scans(swarm, probe, scans, interval, symbols)
                expected = published * n
                swarm.run_until(
                    lambda: len(swarm.latencies) >= expected or bool(swarm.lost),
                    DRAIN_TIMEOUT,
                    f"{expected} deliveries (have {len(swarm.latencies)})",
                )
                conns_after, _ = probe.connections()
                stats = stream_stats(url.host, url.port)
                figures = FanOutFigures(
                    clients=n,
                    connect_seconds=connect_seconds,
                    published=published,
                    delivered=len(swarm.latencies),
                    latencies=list(swarm.latencies),
                    conns_before=conns_before,
                    conns_with_clients=max(conns_with, conns_after),
                    conns_peak=max(peak, conns_after),
                    subscribed=subscribed,
                    rss_before_kib=rss_before,
                    rss_with_clients_kib=rss_with,
                    refused=swarm.ended,
                    refusals_logged=url.log().count("Too many connections"),
                    subscriptions=int(stats["subscriptions"]) - subscriptions_before,
                    dropped_slow=int(stats["dropped_slow"]),
                    lost=swarm.lost,
                )
                if stats["clients"] != n:
                    raise RuntimeError(f"the worker counts {stats['clients']} streams, not {n}")
            finally:
                # Closed before the server stops: open streams would hold its worker.
                swarm.close()
    finally:
        probe.close()
    return figures


def _warm_up(host: str, port: int, probe: RedisProbe) -> None:
    """Open and close a few streams, so that the baseline has served /stream before."""
    swarm = StreamSwarm(host, port)
    swarm.connect(WARM_CLIENTS)
    swarm.run_until(lambda: swarm.opened() == WARM_CLIENTS, 30, "the warm-up streams")
    probe.events.publish("progress", {"index": 0, "total": 0, "sent": time.monotonic()})
    swarm.run_until(lambda: len(swarm.latencies) == WARM_CLIENTS, 10, "the warm-up event")
    swarm.close()
    # The worker notices a closed stream when a write to it fails: a few more events end them
    # (else the heartbeat would, after SSE_HEARTBEAT_SECONDS).
    deadline = time.monotonic() + 60
    while stream_stats(host, port)["clients"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up streams did not end")
        probe.events.publish("progress", {"index": 0, "total": 0, "sent": time.monotonic()})
        time.sleep(0.05)
    # With no client left the worker drops its subscription (its reader looks every second):
    # wait for that, so that the baseline counts no subscription connection.
    while probe.connections()[1]:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up subscription did not end")
        time.sleep(0.05)


def run(smoke: bool = False) -> list[Table]:
    """Measure the fan-out for each client count against one Redis and return the table."""
    sizes = SMOKE_CLIENTS if smoke else FULL_CLIENTS
    raise_fd_limit(2 * max(sizes) + 256)
    tmp = Path(tempfile.mkdtemp(prefix="optscan-bench-"))  # short: a unix socket lives here
    redis_server = EmbeddedRedis(tmp / "redis")
    try:
        redis_url = redis_server.ensure_running()
        figures = [measure(n, redis_url, tmp, smoke) for n in sizes]
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return [_table(figures, smoke)]


def _table(figures: list[FanOutFigures], smoke: bool) -> Table:
    scans = SMOKE_SCANS if smoke else FULL_SCANS
    interval = SMOKE_INTERVAL if smoke else FULL_INTERVAL
    symbols = 3 if smoke else SCAN_SYMBOLS
    table = Table(
        f"(3) SSE fan-out: one gunicorn gevent worker, {scans} simulated"
        f" {symbols}-symbol scan(s), one event every {interval * 1000:g} ms",
        [
            "clients",
            "all open in s",
            "refused, reopened",
            "deliveries",
            "p50 ms",
            "p99 ms",
            "max ms",
            "Redis conns before / with clients / peak",
            "pub/sub conns",
            "worker RSS MiB before / with clients",
            "KiB per client",
        ],
    )
    for f in figures:
        table.add(
            count(f.clients),
            seconds(f.connect_seconds),
            count(f.refused),
            f"{count(f.delivered)} of {count(f.published * f.clients)}",
            millis(percentile_ms(f.latencies, 50)),
            millis(percentile_ms(f.latencies, 99)),
            millis(max(f.latencies) * 1000),
            f"{f.conns_before} / {f.conns_with_clients} / {f.conns_peak}",
            f.subscribed,
            f"{f.rss_before_kib / 1024:.1f} / {f.rss_with_clients_kib / 1024:.1f}",
            f"{(f.rss_with_clients_kib - f.rss_before_kib) / f.clients:.1f}",
        )
    table.notes += [
        "Clients: one epoll loop in the bench process, HTTP/1.1 GET /stream as EventSource"
        " sends it, all N connecting at once (as browsers do after a restart); a stream the"
        " worker ends at once is reopened after its retry: delay (3 s), as EventSource does."
        " A fresh server per row, with --worker-connections max(1000, N + 100) (through"
        " GUNICORN_CMD_ARGS) so that 1,000 streams leave room for GET /stream/stats.",
        "Latency: from ScanEvents.publish in the bench process (as `flask scan` publishes) to"
        " the client's recv(), over every delivery to every client; the clients' own loop"
        " shares the machine's 2 CPUs with the worker and Redis, and is part of it.",
        f"Events: scan-started, then symbol-done (with {ROWS_PER_SYMBOL} Match rows, which the"
        " worker renders to HTML once per event) and progress per symbol, then scan-finished.",
        "Redis conns: CLIENT LIST minus the bench's own connection; before = after a warm-up"
        f" of {WARM_CLIENTS} streams has ended (its subscription too) and before the clients;"
        " peak = sampled while they connected; pub/sub = subscribed connections.",
        "KiB per client: (worker RSS with N clients - before) / N.",
        "Worker's counters (GET /stream/stats; the app runs with TESTING for it): "
        + "; ".join(
            f"{count(f.clients)} clients: {f.subscriptions} subscription,"  # after the warm-up
            f" {f.dropped_slow} cut as too slow, {f.lost} streams lost,"
            f" 'Too many connections' logged {f.refusals_logged} times"
            for f in figures
        )
        + ".",
    ]
    return table
