"""Live scan events over Server-Sent Events at GET /stream: flask-sse's blueprint, extended.

flask-sse 1.0.0 as shipped opens a Redis connection per browser and a new client per publish,
sends nothing until the first event, lets any client pick a channel, ignores Last-Event-ID and
lets a newline in an event's type or id inject lines. This subclass keeps its API but:

- publishes through ScanEvents on the app's shared Redis client (no app context needed);
- opens ONE pub/sub subscription per process and fans it out to per-client queues from a
  background thread (a greenlet under gunicorn's gevent worker, where threading is patched);
- sends ``retry:`` and a comment at once, then a heartbeat comment every
  SSE_HEARTBEAT_SECONDS, and drops a client whose socket is closed at the next heartbeat;
- replays what a reconnecting browser missed after its Last-Event-ID;
- fixes the channel server-side and writes every field so it cannot break out of its line.
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
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import redis
from flask import Flask, Response, abort, current_app, has_app_context, jsonify, request
from flask_sse import Message, ServerSentEventsBlueprint

from optscan.extensions import services
from optscan.store.events import ScanEvents, event_id_key, is_event_id

# The unpatched poll: probing a socket must never wait, even under gevent. Without
# gevent.monkey loaded nothing is patched, and importing gevent here would cost ~0.1 s.
_monkey = sys.modules.get("gevent.monkey")
_poll = _monkey.get_original("select", "poll") if _monkey is not None else select.poll

logger = logging.getLogger(__name__)

EXTENSION_KEY = "optscan.stream"
# How long a new stream waits for the process's subscription before giving up (the browser
# then reconnects after `retry` ms).
READY_TIMEOUT_SECONDS = 5.0
# Events queued for one client before it counts as too slow and is cut off (it reconnects
# with Last-Event-ID and gets the backlog from the log instead).
CLIENT_QUEUE_SIZE = 1000

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
_RESYNC = object()  # the subscription was re-established: events may have been missed
_CLOSE = object()  # the process is shutting down: end the stream, the browser reconnects


class _Subscriber:
    """One stream's queue in the fan-out."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(CLIENT_QUEUE_SIZE)
        self.overflowed = False


class FanOut:
    """Share one Redis subscription among all streams of this process."""

    def __init__(self, client: redis.Redis, channel: str, *, poll_seconds: float = 1.0):
        self.client = client
        self.channel = channel
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
        self._broadcast(_CLOSE)
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
                            self._broadcast(_RESYNC)
                        confirmed_before = True
                        self._ready.set()
                    elif message["type"] == "message":
                        parsed = SafeMessage.from_wire(message["data"])
                        if parsed is None:
                            logger.warning("ignoring a malformed message on %s", self.channel)
                        else:
                            self._broadcast(parsed)
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


def _peer_closed(sock: Any) -> bool:
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


class _Hub:
    """Per-app state of the stream: settings, the event log and the process's fan-out."""

    def __init__(self, app: Flask):
        self.app = app
        settings = services(app).settings
        self.heartbeat_seconds = settings.sse_heartbeat_seconds
        self.retry_ms = settings.sse_retry_ms

    @cached_property
    def events(self) -> ScanEvents:
        """Return the app's ScanEvents, on its shared Redis client."""
        found = services(self.app)
        return ScanEvents(found.redis, found.settings.redis_prefix)

    @cached_property
    def fanout(self) -> FanOut:
        """Return the process's one subscription to the scan channel."""
        return FanOut(services(self.app).redis, self.events.channel)


class ScanEventStream(ServerSentEventsBlueprint):
    """flask-sse's blueprint on one fixed channel, with heartbeats, replay and one subscription."""

    def __init__(self, name: str, import_name: str, **kwargs: Any):
        super().__init__(name, import_name, **kwargs)
        self._last_app: Flask | None = None
        self.add_url_rule("/stream", endpoint="stream", view_func=self.stream, methods=["GET"])
        self.add_url_rule("/stream/stats", endpoint="stats", view_func=self.stats)
        self.record_once(self._on_register)

    def _on_register(self, state: Any) -> None:
        # Validate the config at start-up and remember the app, so publish() works from a bare
        # thread or greenlet without an app context.
        state.app.extensions[EXTENSION_KEY] = _Hub(state.app)
        self._last_app = state.app

    def _hub(self, app: Flask | None = None) -> _Hub:
        if app is None:
            if has_app_context():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            elif self._last_app is not None:
                app = self._last_app
            else:
                raise RuntimeError("the stream blueprint is not registered on any app")
        return app.extensions[EXTENSION_KEY]

    @property
    def redis(self) -> redis.Redis:
        """Return the app's shared Redis client (flask-sse built a new one per call)."""
        return services(self._hub().app).redis

    def events(self, app: Flask | None = None) -> ScanEvents:
        """Return the ScanEvents of the given, current or last registered app."""
        return self._hub(app).events

    def publish(
        self,
        data: dict,
        type: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        channel: str | None = None,
    ) -> str:
        """Publish a scan event through ScanEvents and return the id the log gave it."""
        events = self.events()
        if channel is not None and channel != events.channel:
            raise ValueError(f"scan events have one channel, {events.channel!r}")
        if id is not None:
            raise ValueError("event ids are assigned by the event log")
        if retry is not None:
            raise ValueError("the stream sets retry itself (SSE_RETRY_MS)")
        if type is None:
            raise ValueError("a scan event needs a type")
        return events.publish(type, data)

    def messages(self, channel: str | None = None) -> Iterator[Message]:
        """Yield the live scan events as flask-sse Messages."""
        # Resolved now, not at the first next(): the caller may iterate in another thread.
        hub = self._hub()
        if channel is not None and channel != hub.events.channel:
            raise ValueError(f"scan events have one channel, {hub.events.channel!r}")
        return self._live(hub.fanout)

    @staticmethod
    def _live(fanout: FanOut) -> Iterator[Message]:
        subscriber = fanout.attach()
        try:
            fanout.wait_ready(READY_TIMEOUT_SECONDS)
            while not subscriber.overflowed:
                item = subscriber.queue.get()
                if item is _CLOSE:
                    return
                if isinstance(item, Message):
                    yield item
        finally:
            fanout.detach(subscriber)

    def close_streams(self, app: Flask | None = None) -> int:
        """End this process's open streams, e.g. when its worker stops; return how many."""
        return self._hub(app).fanout.close_all()

    def stream(self) -> Response:
        """Stream the scan events; `?channel=` is ignored, Last-Event-ID is honoured."""
        hub = self._hub()
        requested = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
        sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
        response = hub.app.response_class(
            self._generate(hub, (requested or "").strip(), sock),
            mimetype="text/event-stream",
        )
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response

    def stats(self) -> Response:
        """Return the fan-out's counters as JSON (only when the app is testing)."""
        if not current_app.testing:
            abort(404)
        return jsonify(self._hub().fanout.stats())

    def _generate(self, hub: _Hub, requested: str, sock: Any) -> Iterator[bytes]:
        events, fanout = hub.events, hub.fanout
        opening = f"retry: {hub.retry_ms}\n: optscan scan events\n\n".encode()
        if fanout.closed:  # shutting down: a browser that reconnected here must go elsewhere
            yield opening
            return
        # Where replay starts: the browser's last id, else the newest id read BEFORE
        # subscribing, so an event published while the subscription starts is replayed.
        start: str | None = requested if is_event_id(requested) else None
        trusted = False
        if start is None:
            try:
                start = events.last_id()
            except redis.RedisError as exc:
                # Browsers retry every few seconds: one line each, not a traceback.
                logger.warning("SSE stream refused: Redis unavailable (%s)", exc)
                yield opening
                return
            trusted = start is not None
        subscriber = fanout.attach()
        try:
            if not fanout.wait_ready(READY_TIMEOUT_SECONDS):
                # No subscription: end the stream; the browser retries after `retry` ms.
                yield opening
                return
            yield opening
            last = start if trusted else None
            try:
                backlog = events.since(start) if start else []
            except redis.RedisError as exc:
                logger.warning("SSE replay failed: Redis unavailable (%s)", exc)
                return
            for event in backlog:
                yield format_event(event.data, type=event.type, id=event.id).encode()
                last = event.id
            while not subscriber.overflowed:
                try:
                    item = subscriber.queue.get(timeout=hub.heartbeat_seconds)
                except queue.Empty:
                    if _peer_closed(sock):
                        return
                    yield b": heartbeat\n\n"
                    continue
                if item is _CLOSE:
                    return
                if item is _RESYNC:
                    try:
                        # `last` was sent by this stream: what is newer was missed, even if
                        # Redis lost `last` itself (restarted empty). A browser's id is only
                        # trusted while the log still holds it.
                        if last is not None:
                            missed = events.after(last)
                        else:
                            missed = events.since(start) if start else []
                    except redis.RedisError:
                        return
                    for event in missed:
                        if last is None or event_id_key(event.id) > event_id_key(last):
                            yield format_event(event.data, type=event.type, id=event.id).encode()
                            last = event.id
                    continue
                if is_event_id(item.id):
                    # Already sent by the replay: the subscription overlaps the log.
                    if last is not None and event_id_key(item.id) <= event_id_key(last):
                        continue
                    last = item.id
                yield item.encoded
        finally:
            fanout.detach(subscriber)


bp = ScanEventStream("stream", __name__)
