"""Per-client sliding-window limits kept in Redis (scan triggers, failed logins)."""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple

import redis

# Trim the window, then count one more action only if the allowance is not used up: one
# script, so no other worker or process can count between the check and the record.
# KEYS[1]: the client's sorted set; ARGV: now, window seconds, limit, a fresh member.
_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return {0, redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], window)
return {1, ARGV[1]}
"""


class Admission(NamedTuple):
    """Whether an action was counted, and if not how long to wait before trying again."""

    allowed: bool
    retry_after: int  # seconds; 0 when allowed


class Throttle:
    """Count one client's actions over a sliding window, shared by every worker."""

    def __init__(self, client: redis.Redis, key_prefix: str, *, limit: int, window_seconds: int):
        self.client = client
        self.key_prefix = key_prefix
        self.limit = limit
        self.window_seconds = window_seconds
        self._take = client.register_script(_TAKE)

    def _key(self, who: str) -> str:
        return f"{self.key_prefix}{who}"

    def _wait(self, oldest: float, now: float) -> int:
        return max(1, int(oldest + self.window_seconds - now + 0.999))

    def _count(self, who: str, now: float) -> int:
        key = self._key(who)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, 0, now - self.window_seconds)
            pipe.zcard(key)
            return int(pipe.execute()[1])

    def take(self, who: str, *, now: float | None = None) -> Admission:
        """Count one action of the client now, atomically, unless the allowance is used up."""
        if self.limit <= 0:
            return Admission(True, 0)
        now = time.time() if now is None else now
        counted, oldest = self._take(
            keys=[self._key(who)],
            args=[repr(now), self.window_seconds, self.limit, uuid.uuid4().hex],
        )
        if counted:
            return Admission(True, 0)
        return Admission(False, self._wait(float(oldest), now))

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
        return self._wait(oldest[0][1], now)

    def reset(self, who: str) -> None:
        """Forget the client's counted actions."""
        self.client.delete(self._key(who))
