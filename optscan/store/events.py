"""Scan progress events: a capped Redis Stream for replay, plus pub/sub for live delivery.

A publisher (the web app, `flask scan`, the systemd timer) appends each event to a capped Redis
Stream, whose ids increase monotonically, and publishes the same event, with that id, on one
pub/sub channel in flask-sse's wire format: JSON ``{"data": ..., "type": ..., "id": ...}``.
Readers follow the channel live and use ``since()`` to replay what a reconnecting browser
missed (its Last-Event-ID). Plain Redis code: no Flask, no app context, no gevent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

EVENT_TYPES = (
    "scan-started", "progress", "symbol-done", "scan-finished", "scan-failed",
    "alert",  # published by optscan.notify after a scan: how its alert went
)  # fmt: skip

# Older than any id XADD can give: where a stream that found the log empty starts from.
BEFORE_ANY_EVENT = "0-0"
# A Redis Stream id: milliseconds, dash, sequence number.
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # ASCII: \d also matches other scripts

# XADD and PUBLISH in one script: the id exists only after XADD, and running both atomically
# means subscribers see events in id order even if two processes publish at once, and an
# event is on the channel only if it is also in the log (so a replay never misses it). The
# channel's message wraps the logged data as it is: the data is encoded once, in Python.
_PUBLISH_SCRIPT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                      'type', ARGV[2], 'data', ARGV[3])
redis.call('PUBLISH', ARGV[4],
           '{"data":' .. ARGV[3] .. ',"type":"' .. ARGV[2] .. '","id":"' .. id .. '"}')
return id
"""


def is_event_id(value: object) -> bool:
    """Return whether a value has the shape of a stream id ("digits-digits")."""
    return isinstance(value, str) and _STREAM_ID.fullmatch(value) is not None


def event_id_key(value: str) -> tuple[int, int]:
    """Return a stream id as a sortable (milliseconds, sequence) pair."""
    if not is_event_id(value):
        raise ValueError(f"not an event id: {value!r}")
    millis, seq = value.split("-")
    return int(millis), int(seq)


@dataclass(frozen=True)
class Event:
    """One published scan event, as kept in the log."""

    id: str
    type: str
    data: dict


class ScanEvents:
    """Publish scan events to Redis, replay them after an id, and keep a progress snapshot."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        history: int = 500,
        state_ttl_seconds: int = 300,
    ):
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        if state_ttl_seconds < 1:
            raise ValueError(f"state_ttl_seconds must be at least 1, got {state_ttl_seconds}")
        self.client = client
        self.prefix = prefix
        self.history = history
        # The snapshot expires unless refreshed, so a scan killed without cleaning up
        # stops showing as "in progress" after this many seconds.
        self.state_ttl_seconds = state_ttl_seconds
        self._publish_script = client.register_script(_PUBLISH_SCRIPT)

    @property
    def channel(self) -> str:
        """Return the one pub/sub channel every scan event goes to."""
        return f"{self.prefix}sse:scan"

    @property
    def log_key(self) -> str:
        """Return the key of the capped Redis Stream that keeps recent events."""
        return f"{self.prefix}sse:scan:log"

    @property
    def state_key(self) -> str:
        """Return the key of the snapshot of the scan in progress."""
        return f"{self.prefix}sse:scan:state"

    def publish(self, type: str, data: dict) -> str:
        """Append an event to the log, publish it on the channel, and return its id."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; expected one of {EVENT_TYPES}")
        if not isinstance(data, dict):
            raise TypeError(f"event data must be a dict, got {data.__class__.__name__}")
        # msgspec writes a missing number (NaN) as null: always JSON that browsers parse. One
        # symbol's rows can be a few hundred kilobytes; msgspec encodes them ~8x faster.
        data_json = msgspec.json.encode(data)
        event_id = self._publish_script(
            keys=[self.log_key], args=[self.history, type, data_json, self.channel]
        )
        if isinstance(event_id, bytes):
            event_id = event_id.decode()
        return str(event_id)

    def since(self, last_id: str) -> list[Event]:
        """Return the events after last_id, oldest first; [] when last_id is not in the log."""
        if not is_event_id(last_id):
            return []
        # One XRANGE from last_id inclusive: its first entry proves the id is known (a
        # trimmed, foreign or made-up id cannot say what the client missed).
        entries = self.client.xrange(self.log_key, min=last_id, max="+", count=self.history + 1)
        if not entries or _text(entries[0][0]) != last_id:
            return []
        return [_entry_to_event(entry) for entry in entries[1:]]

    def after(self, last_id: str) -> list[Event]:
        """Return the logged events newer than last_id, oldest first, even if it is gone."""
        if not is_event_id(last_id):
            return []
        millis, seq = event_id_key(last_id)
        entries = self.client.xrange(
            self.log_key, min=f"{millis}-{seq + 1}", max="+", count=self.history
        )
        return [_entry_to_event(entry) for entry in entries]

    def logged(self) -> list[Event]:
        """Return every event still in the capped log, oldest first."""
        return [_entry_to_event(e) for e in self.client.xrange(self.log_key, min="-", max="+")]

    def last_id(self) -> str | None:
        """Return the id of the newest event in the log, or None when it is empty."""
        entries = self.client.xrevrange(self.log_key, max="+", min="-", count=1)
        return _text(entries[0][0]) if entries else None

    def set_state(self, state: dict) -> None:
        """Store the snapshot of the scan in progress (refreshing its expiry)."""
        payload = json.dumps(state, separators=(",", ":"), allow_nan=False)
        self.client.set(self.state_key, payload, ex=self.state_ttl_seconds)

    def get_state(self) -> dict | None:
        """Return the snapshot of the scan in progress, or None when no scan runs."""
        payload = self.client.get(self.state_key)
        if payload is None:
            return None
        try:
            state = json.loads(payload)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def clear_state(self) -> None:
        """Forget the snapshot (the scan finished or failed)."""
        self.client.delete(self.state_key)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_to_event(entry: tuple[Any, dict[Any, Any]]) -> Event:
    entry_id, fields = entry
    fields = {_text(k): _text(v) for k, v in fields.items()}
    return Event(id=_text(entry_id), type=fields["type"], data=json.loads(fields["data"]))
