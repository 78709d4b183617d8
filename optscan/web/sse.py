"""Server-Sent Events plumbing: safe event blocks and one Redis subscription shared by streams.

`format_event` writes an event so that no field can inject lines or events; `FanOut` holds one
pub/sub subscription per process and fans it out to per-client queues from a background thread
(a greenlet under gunicorn's gevent worker, where threading is patched), re-subscribing after a
lost connection and telling streams to resynchronise; `peer_closed` notices a client that left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import redis
from flask_sse import Message

logger = logging.getLogger(__name__)

# The unpatched poll: probing a socket must never wait, even under gevent. Without
# gevent.monkey loaded nothing is patched, and importing gevent here would cost ~0.1 s.
_monkey = sys.modules.get("gevent.monkey")
_poll = _monkey.get_original("select", "poll") if _monkey is not None else select.poll

logger = logging.getLogger(__name__)

# Events queued for one client before it counts as too slow and is cut off (it reconnects
# with Last-Event-ID and gets the backlog from the log instead).
CLIENT_QUEUE_SIZE = 1000

# Rewrites an event's data in this process: (type, id, data) -> data.
Transform = Callable[[str | None, str | None, Any], Any]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the three line ends of the SSE grammar
_FIELD_UNSAFE = re.compile(r"[\r\n\x00]")


def _field(value: object) -> str:
    return _FIELD_UNSAFE.sub("", str(value))


def format_event(
    data: Any, type: str | None = None, id: str | None = None, retry: int | None = None
) -> str:
    """Return one SSE event block whose fields cannot inject lines or events."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = []
    if type:
        lines.append(f"event: {_field(type)}")
    # One "data:" line per line of the data, empty ones included; the space after the colon
    # is the one a parser strips, so data starting with a space survives.
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(text))
    if id:
        lines.append(f"id: {_field(id)}")
    if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0:
        lines.append(f"retry: {retry}")
    return "\n".join(lines) + "\n\n"


class SafeMessage(Message):
    """A flask-sse Message that serialises safely and is encoded once for all clients."""

    def __str__(self) -> str:
        return format_event(self.data, type=self.type, id=self.id, retry=self.retry)

    @cached_property
    def encoded(self) -> bytes:
        """Return the event block as UTF-8, ready to write."""
        return str(self).encode()

    @classmethod
    def from_wire(cls, raw: str | bytes) -> SafeMessage | None:
        """Parse a flask-sse wire message; return None when it is not one."""
        try:
            payload = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(payload, dict) or "data" not in payload:
            return None
        event_id, event_type, retry = payload.get("id"), payload.get("type"), payload.get("retry")
        return cls(
            payload["data"],
            type=str(event_type) if event_type else None,
            id=str(event_id) if event_id else None,
            retry=retry if isinstance(retry, int) else None,
        )


# Queue items other than messages.
RESYNC = object()  # the subscription was re-established: events may have been missed
CLOSE = object()  # the process is shutting down: end the stream, the browser reconnects


class _Subscriber:
    """One stream's queue in the fan-out."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(CLIENT_QUEUE_SIZE)
        self.overflowed = False


class FanOut:
    """Share one Redis subscription among all streams of this process."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        *,
        poll_seconds: float = 1.0,
        transform: Transform | None = None,
    ):
        self.client = client
        self.channel = channel
        # Applied once per message in this process, before it is queued to every client.
        self.transform = transform
        # How often the reader looks up from the socket to notice it has no clients left.
        self.poll_seconds = poll_seconds
        self._reset()

    def _reset(self) -> None:
        # Threads do not survive fork: a child process starts its own reader.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._clients: set[_Subscriber] = set()
        self._thread: threading.Thread | None = None
        self.closed = False
        self.reader_starts = 0
        self.subscriptions = 0
        self.delivered = 0
        self.dropped_slow = 0

    def attach(self) -> _Subscriber:
        """Register a new client, starting the reader if this is the first."""
        if os.getpid() != self._pid:
            self._reset()
        subscriber = _Subscriber()
        with self._lock:
            self._clients.add(subscriber)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="optscan-sse-fanout", daemon=True
                )
                self.reader_starts += 1
                self._thread.start()
        return subscriber

    def detach(self, subscriber: _Subscriber) -> None:
        """Unregister a client; the reader stops once none is left."""
        with self._lock:
            self._clients.discard(subscriber)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the subscription is confirmed; return whether it is."""
        return self._ready.wait(timeout)

    @property
    def client_count(self) -> int:
        """Return the number of attached clients."""
        with self._lock:
            return len(self._clients)

    def stats(self) -> dict[str, Any]:
        """Return counters that describe the fan-out of this process."""
        with self._lock:
            clients = len(self._clients)
            running = self._thread is not None
        return {
            "pid": os.getpid(),
            "clients": clients,
            "reader_running": running,
            "subscribed": self._ready.is_set(),
            "reader_starts": self.reader_starts,
            "subscriptions": self.subscriptions,
            "delivered": self.delivered,
            "dropped_slow": self.dropped_slow,
        }

    def _transformed(self, message: SafeMessage) -> SafeMessage:
        if self.transform is None:
            return message
        try:
            data = self.transform(message.type, message.id, message.data)
        except Exception:
            logger.exception("live rows of event %s could not be rendered", message.id)
            return message
        return SafeMessage(data, type=message.type, id=message.id, retry=message.retry)

    def _broadcast(self, item: Any) -> None:
        with self._lock:
            clients = list(self._clients)
        for subscriber in clients:
            try:
                subscriber.queue.put_nowait(item)
            except queue.Full:
                if not subscriber.overflowed:
                    subscriber.overflowed = True
                    self.dropped_slow += 1
        if isinstance(item, Message):
            self.delivered += 1

    def close_all(self) -> int:
        """End every stream, now and to come (they reconnect elsewhere); return how many."""
        with self._lock:
            self.closed = True
            count = len(self._clients)
        self._broadcast(CLOSE)
        return count

    def _should_stop(self) -> bool:
        # Checked and acted on under the lock, so attach() either sees the reader running or
        # starts a new one: a client is never left without a reader.
        with self._lock:
            if self._clients:
                return False
            self._thread = None
            self._ready.clear()
            return True

    def _run(self) -> None:
        backoff = 0.5
        confirmed_before = False
        while not self._should_stop():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._should_stop():
                    message = pubsub.get_message(timeout=self.poll_seconds)
                    if message is None:
                        continue
                    backoff = 0.5
                    if message["type"] == "subscribe":
                        # redis-py re-subscribes by itself after a reconnect; any confirmation
                        # after the first means events may have been missed meanwhile.
                        self.subscriptions += 1
                        if confirmed_before:
                            self._broadcast(RESYNC)
                        confirmed_before = True
                        self._ready.set()
                    elif message["type"] == "message":
                        parsed = SafeMessage.from_wire(message["data"])
                        if parsed is None:
                            logger.warning("ignoring a malformed message on %s", self.channel)
                        else:
                            self._broadcast(self._transformed(parsed))
                return
            except Exception as exc:
                self._ready.clear()
                logger.warning(
                    "SSE subscription to %s lost (%s: %s); retrying in %.1f s",
                    self.channel,
                    exc.__class__.__name__,
                    exc,
                    backoff,
                )
                logger.debug("SSE subscription failure", exc_info=True)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                # Closing a broken connection may fail too.
                with contextlib.suppress(Exception):
                    pubsub.close()


_POLLRDHUP = getattr(select, "POLLRDHUP", 0)  # Linux: the peer closed or shut down writing
_CLOSED_FLAGS = select.POLLHUP | select.POLLERR | select.POLLNVAL | _POLLRDHUP


def peer_closed(sock: Any) -> bool:
    """Return whether the client has closed its side of the socket (False when unknown)."""
    if sock is None:
        return False
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return True
    if fd < 0:
        return True
    poller = _poll()
    poller.register(fd, select.POLLIN | _POLLRDHUP)
    ready = poller.poll(0)
    if not ready:
        return False
    flags = ready[0][1]
    if flags & _CLOSED_FLAGS:
        return True
    # Readable: an SSE client sends nothing after its request, so this is EOF or an error.
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # ValueError: TLS sockets
        return False
    except OSError:
        return True
