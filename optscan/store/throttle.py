"""Per-client sliding-window limits kept in Redis (scan triggers, failed logins)."""

from __future__ import annotations

import time
import uuid

import redis


class Throttle:
    """Count one client's actions over a sliding window, shared by every worker."""

    def __init__(self, client: redis.Redis, key_prefix: str, *, limit: int, window_seconds: int):
        self.client = client
        self.key_prefix = key_prefix
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, who: str) -> str:
        return f"{self.key_prefix}{who}"

    def _count(self, who: str, now: float) -> int:
        key = self._key(who)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, 0, now - self.window_seconds)
            pipe.zcard(key)
            return int(pipe.execute()[1])

    def exceeded(self, who: str, *, now: float | None = None) -> bool:
        """Return whether the client has used up the window's allowance (0 means no limit)."""
        if self.limit <= 0:
            return False
        return self._count(who, time.time() if now is None else now) >= self.limit

    def record(self, who: str, *, now: float | None = None) -> None:
        """Count one action of the client now."""
        if self.limit <= 0:
            return
        now = time.time() if now is None else now
        key = self._key(who)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.expire(key, self.window_seconds)
            pipe.execute()

    def retry_after(self, who: str, *, now: float | None = None) -> int:
        """Return the seconds until the oldest counted action leaves the window."""
        now = time.time() if now is None else now
        oldest = self.client.zrange(self._key(who), 0, 0, withscores=True)
        if not oldest:
            return 0
        return max(1, int(oldest[0][1] + self.window_seconds - now + 0.999))

    def reset(self, who: str) -> None:
        """Forget the client's counted actions."""
        self.client.delete(self._key(who))
