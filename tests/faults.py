"""Shared pieces of the fault tests: a Redis server a test may restart, a browser-like SSE
client, the gunicorn worker pids, and small HTTP helpers against a real server."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis

from optscan.store.redisserver import redis_executable
from tests.servers import BaseURL, free_port

FETCH = {"X-Requested-With": "fetch"}
SECRET_KEY = "fault-tests-secret-key-0123456789abcdef"
# Lifts the shared Yahoo pacing so that a test's scan is bounded by the emulator's latency alone.
UNPACED = {"OPTSCAN_YAHOO_RATE_PER_SECOND": "1000", "OPTSCAN_YAHOO_BURST": "1000"}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; return that, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def alias_names(prefix: str, count: int) -> list[str]:
    """Return `count` valid ticker-like symbols: PREFIX00, PREFIX01, ..."""
    width = max(2, len(str(count - 1)))
    return [f"{prefix}{n:0{width}d}" for n in range(count)]


def child_pids(pid: int) -> list[int]:
    """Return the pids of a process's live children (gunicorn's master: its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields follow the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        state, parent = fields[0], int(fields[1])
        if parent == pid and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


# -- HTTP against a real server ------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.text)


def request(
    base: BaseURL,
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,  # a hang guard
) -> Answer:
    """Send one request on a fresh connection and return the whole answer."""
    connection = http.client.HTTPConnection(base.host, base.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
    finally:
        connection.close()


def answers(base: BaseURL, path: str = "/scan/status") -> Answer | None:
    """Return the answer to GET path, or None while no worker accepts connections."""
    try:
        return request(base, "GET", path, timeout=5)
    except (OSError, http.client.HTTPException):
        return None


def session_and_token(base: BaseURL) -> tuple[str, str]:
    """Open the page once and return its session cookie and the form's CSRF token."""
    page = request(base, "GET", "/")
    assert page.status == 200, page.text[:2000]
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, "no CSRF token on the page"
    return cookie, token.group(1)


def post_scan(base: BaseURL, side: str = "put", *, fetch: bool = True) -> Answer:
    """Click Scan (forced) as the page's script would, with a fresh session and token."""
    cookie, token = session_and_token(base)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    if fetch:
        headers.update(FETCH)
    body = urlencode({"side": side, "force": "1", "csrf_token": token})
    return request(base, "POST", "/scan", body=body, headers=headers, timeout=30)


def scan_status(base: BaseURL) -> dict:
    """Return GET /scan/status as JSON (it must answer 200)."""
    answer = request(base, "GET", "/scan/status")
    assert answer.status == 200, (answer.status, answer.text[:500])
    return answer.json()


# -- a Redis server of one test's own ------------------------------------------------------


class RedisServer:
    """A redis-server on a free 127.0.0.1 port, owned by one test so that it may restart it.

    With `persist`, an append-only file keeps the data across restarts, as the embedded server
    of the instance folder does; without, a restart comes back empty.
    """

    def __init__(self, *, persist: bool = True):
        self.persist = persist
        self.port = free_port()
        # Short: redis-server and its files live here for the test's duration only.
        self.directory = Path(tempfile.mkdtemp(prefix="optscan-r-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Return the redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """Return a new client that decodes to str."""
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        """Start the server (again) on the same port and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        args = [
            redis_executable(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "everysec",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.starts += 1
        deadline = time.monotonic() + 60  # a hang guard
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer: {self.log()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server as a service manager would (SIGTERM: it flushes its file, exits)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """Return the server's log."""
        try:
            return (self.directory / "redis.log").read_text(errors="replace")
        except OSError:
            return ""

    def _answers(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# -- a browser's EventSource ---------------------------------------------------------------


@dataclass
class Connection:
    """One connection of a BrowserStream, as the browser would see it."""

    opened_at: float
    status: int | None = None
    content_type: str | None = None
    last_event_id_sent: str | None = None
    ended_at: float | None = None
    ended_by: str | None = None  # "eof", an exception's name, or "stopped"


@dataclass
class Received:
    """One event a BrowserStream dispatched."""

    at: float
    type: str
    data: str
    id: str


@dataclass
class _Buffers:
    data: list[str] = field(default_factory=list)
    type: str = ""
    id: str | None = None


class BrowserStream(threading.Thread):
    """Follow /stream the way a browser's EventSource does, in a thread.

    It parses the WHATWG event-stream format on its own, honours `retry:`, reconnects after
    that many milliseconds whenever the stream ends or the connection fails, sends the last id
    it saw as Last-Event-ID, and, like a browser, gives up for good on an answer that is not
    200 text/event-stream. Times are time.monotonic().
    """

    def __init__(
        self,
        base: BaseURL,
        path: str = "/stream",
        *,
        retry_ms: int = 3000,
        reconnect_gate: threading.Event | None = None,
    ):
        super().__init__(name=f"browser-stream-{path}", daemon=True)
        self.base = base
        self.path = path
        self.retry_ms = retry_ms  # Chromium's default before the server sends its own
        # When given, a reconnection also waits for this to be set: the test decides what
        # has happened by the time the browser's retry timer fires.
        self.reconnect_gate = reconnect_gate
        self.last_event_id = ""
        self.events: list[Received] = []
        self.connections: list[Connection] = []
        self.bytes_at: list[float] = []  # when each line arrived, heartbeats included
        self.failed: str | None = None  # why the stream gave up for good, as a browser would
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def stop(self) -> None:
        """Close the stream (as closing the tab) and wait for the thread."""
        self._closing.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.join(timeout=10)

    def events_after(self, moment: float) -> list[Received]:
        """Return the events dispatched after a moment."""
        return [event for event in list(self.events) if event.at > moment]

    def run(self) -> None:
        """Connect, read, and reconnect until stopped or failed."""
        while not self._closing.is_set():
            self._connect_once()
            if self.failed or self._closing.wait(self.retry_ms / 1000):
                return
            while self.reconnect_gate is not None and not self.reconnect_gate.wait(0.05):
                if self._closing.is_set():
                    return

    def _connect_once(self) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        record = Connection(time.monotonic(), last_event_id_sent=self.last_event_id or None)
        self.connections.append(record)
        connection = http.client.HTTPConnection(self.base.host, self.base.port, timeout=60)
        try:
            connection.request("GET", self.path, headers=headers)
            with self._lock:
                self._sock = connection.sock
            response = connection.getresponse()
            record.status = response.status
            record.content_type = response.getheader("Content-Type", "")
            if response.status != 200 or not record.content_type.startswith("text/event-stream"):
                # A browser "fails the connection" here and never reconnects.
                self.failed = f"HTTP {response.status} {record.content_type!r}"
                record.ended_by = "failed"
                return
            self._read(response)
            record.ended_by = "stopped" if self._closing.is_set() else "eof"
        except (OSError, http.client.HTTPException) as exc:
            record.ended_by = "stopped" if self._closing.is_set() else type(exc).__name__
        finally:
            record.ended_at = time.monotonic()
            with self._lock:
                self._sock = None
            connection.close()

    def _read(self, response: http.client.HTTPResponse) -> None:
        buffers = _Buffers()
        first = True
        while True:
            raw = response.readline()
            if not raw:
                return
            self.bytes_at.append(time.monotonic())
            line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if first:
                line = line.removeprefix("\ufeff")
                first = False
            if line == "":
                self._dispatch(buffers)
                buffers = _Buffers()
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                buffers.type = value
            elif name == "data":
                buffers.data.append(value)
            elif name == "id" and "\0" not in value:
                buffers.id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry_ms = int(value)

    def _dispatch(self, buffers: _Buffers) -> None:
        if buffers.id is not None:
            self.last_event_id = buffers.id
        if not buffers.data:
            return
        self.events.append(
            Received(
                time.monotonic(),
                buffers.type or "message",
                "\n".join(buffers.data),
                self.last_event_id,
            )
        )


def server_env(**extra: str) -> dict[str, str]:
    """Return the settings every fault test's server shares, updated with `extra`."""
    env = {"OPTSCAN_SECRET_KEY": SECRET_KEY, **UNPACED}
    env.update(extra)
    return env
