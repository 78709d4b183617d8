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

import logging
import queue
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import redis
from flask import Flask, Response, abort, current_app, has_app_context, jsonify, request
from flask_sse import Message, ServerSentEventsBlueprint

from optscan.extensions import services
from optscan.store.events import (
    BEFORE_ANY_EVENT,
    Event,
    ScanEvents,
    event_id_key,
    is_event_id,
)
from optscan.web.liverows import RowRenderer
from optscan.web.sse import CLOSE, RESYNC, FanOut, format_event, peer_closed

logger = logging.getLogger(__name__)

EXTENSION_KEY = "optscan.stream"

# How long a new stream waits for the process's subscription before giving up (the browser
# then reconnects after `retry` ms).
READY_TIMEOUT_SECONDS = 5.0


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
    def rows(self) -> RowRenderer:
        """Return the process's renderer of live rows."""
        return RowRenderer(self.app)

    @cached_property
    def fanout(self) -> FanOut:
        """Return the process's one subscription to the scan channel."""
        return FanOut(services(self.app).redis, self.events.channel, transform=self.rows)

    def encode(self, event: Event) -> bytes:
        """Return a logged event as the stream sends it (rows rendered)."""
        data = self.rows(event.type, event.id, event.data)
        return format_event(data, type=event.type, id=event.id).encode()


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
                if item is CLOSE:
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
        # subscribing, so an event published while the subscription starts is replayed. An
        # empty log (a new Redis, or one restarted empty) starts before any id: every event
        # logged later is new to this stream.
        start = requested if is_event_id(requested) else ""
        trusted = not start
        if trusted:
            try:
                start = events.last_id() or BEFORE_ANY_EVENT
            except redis.RedisError as exc:
                # Browsers retry every few seconds: one line each, not a traceback.
                logger.warning("SSE stream refused: Redis unavailable (%s)", exc)
                yield opening
                return
        subscriber = fanout.attach()
        try:
            if not fanout.wait_ready(READY_TIMEOUT_SECONDS):
                # No subscription: end the stream; the browser retries after `retry` ms.
                yield opening
                return
            yield opening
            last = start if trusted else None
            try:
                # An id this stream read itself counts even if trimmed since; a browser's
                # only while the log still holds it.
                backlog = events.after(start) if trusted else events.since(start)
            except redis.RedisError as exc:
                logger.warning("SSE replay failed: Redis unavailable (%s)", exc)
                return
            for event in backlog:
                yield hub.encode(event)
                last = event.id
            while not subscriber.overflowed:
                try:
                    item = subscriber.queue.get(timeout=hub.heartbeat_seconds)
                except queue.Empty:
                    if peer_closed(sock):
                        return
                    yield b": heartbeat\n\n"
                    continue
                if item is CLOSE:
                    return
                if item is RESYNC:
                    try:
                        # `last` was sent by this stream: what is newer was missed, even if
                        # Redis lost `last` itself (restarted empty). A browser's id is only
                        # trusted while the log still holds it.
                        missed = events.after(last) if last is not None else events.since(start)
                    except redis.RedisError:
                        return
                    for event in missed:
                        if last is None or event_id_key(event.id) > event_id_key(last):
                            yield hub.encode(event)
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
