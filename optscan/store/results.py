"""The results store: the last good scan per side, kept in Redis until replaced."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import redis


class ResultStore:
    """Keep the last completed scan and the last attempt for each side."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    def _key(self, kind: str, side: str) -> str:
        return f"{self.prefix}scan:{kind}:{side}"

    def save_completed(self, result: dict[str, Any]) -> None:
        """Store a completed scan as the last good one and as the last attempt."""
        body = json.dumps(result, allow_nan=False)
        # No expiry: old results are shown as stale, never silently deleted.
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("last", result["side"]), body)
            pipe.set(self._key("attempt", result["side"]), body)
            pipe.execute()

    def save_attempt(self, result: dict[str, Any]) -> None:
        """Store a failed or interrupted scan without touching the last good one."""
        body = json.dumps(result, allow_nan=False)
        self.client.set(self._key("attempt", result["side"]), body)

    def last(self, side: str) -> dict[str, Any] | None:
        """Return the last good scan of a side, or None."""
        raw = self.client.get(self._key("last", side))
        return json.loads(raw) if raw else None

    def last_attempt(self, side: str) -> dict[str, Any] | None:
        """Return the most recent scan of a side, good or not, or None."""
        raw = self.client.get(self._key("attempt", side))
        return json.loads(raw) if raw else None


def is_stale(result: dict[str, Any], now: datetime, stale_after_minutes: float) -> bool:
    """Return whether a stored result finished longer ago than the staleness limit."""
    finished = datetime.fromisoformat(result["finished_at"])
    return now - finished > timedelta(minutes=stale_after_minutes)
