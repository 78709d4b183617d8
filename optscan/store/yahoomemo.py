"""What Yahoo said about symbols, kept in Redis between scans: each New York day's calendar
events per symbol, and the symbols Yahoo does not know (shown on the watchlist page).

A memo is a convenience, never a reason for a scan to fail: when Redis does not answer, a
read finds nothing and a write is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date, datetime

import redis

log = logging.getLogger(__name__)

# A day's calendar entry outlives its day a little, for a scan running across midnight UTC.
CALENDAR_TTL_SECONDS = 2 * 86400


class YahooMemo:
    """Per-day calendar events and the unknown symbols, under one key prefix."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        today: Callable[[], date],
        clock: Callable[[], datetime] | None = None,
    ):
        self.client = client
        self.prefix = prefix
        self.today = today  # the New York trading day the calendar entries belong to
        self.clock = clock

    @property
    def unknown_key(self) -> str:
        """Return the key of the hash {symbol: JSON note} of symbols Yahoo does not know."""
        return f"{self.prefix}yahoo:unknown"

    def calendar_key(self, symbol: str) -> str:
        """Return the key of a symbol's calendar events for today (New York)."""
        return f"{self.prefix}yahoo:calendar:{self.today().isoformat()}:{symbol}"

    def calendar(self, symbol: str) -> str | None:
        """Return today's stored calendar events of a symbol (JSON), or None."""
        try:
            found = self.client.get(self.calendar_key(symbol))
        except redis.RedisError as exc:
            log.debug("calendar memo not read: %s", exc)
            return None
        return found.decode() if isinstance(found, bytes) else found

    def save_calendar(self, symbol: str, events: str) -> None:
        """Keep a symbol's calendar events (JSON) for the rest of today."""
        try:
            self.client.set(self.calendar_key(symbol), events, ex=CALENDAR_TTL_SECONDS)
        except redis.RedisError as exc:
            log.debug("calendar memo not written: %s", exc)

    def mark_unknown(self, symbol: str, message: str) -> None:
        """Note that Yahoo does not know a symbol."""
        note = {"message": message}
        if self.clock is not None:
            note["at"] = self.clock().isoformat()
        try:
            self.client.hset(self.unknown_key, symbol, json.dumps(note))
        except redis.RedisError as exc:
            log.debug("unknown symbol not noted: %s", exc)

    def mark_known(self, symbol: str) -> None:
        """Forget an earlier note that Yahoo did not know a symbol."""
        try:
            self.client.hdel(self.unknown_key, symbol)
        except redis.RedisError as exc:
            log.debug("unknown symbol note not cleared: %s", exc)

    def unknown(self) -> dict[str, str]:
        """Return {symbol: message} for the symbols Yahoo did not know when last asked."""
        try:
            raw = self.client.hgetall(self.unknown_key)
        except redis.RedisError as exc:
            log.warning("unknown symbols not read: %s", exc)
            return {}
        found = {}
        for symbol, note in raw.items():
            name = symbol.decode() if isinstance(symbol, bytes) else str(symbol)
            try:
                found[name] = str(json.loads(note)["message"])
            except (ValueError, KeyError, TypeError):
                continue
        return found
