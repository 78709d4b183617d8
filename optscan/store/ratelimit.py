"""Token buckets that pace requests to Yahoo: one in Redis shared by every process, one local.

A bucket holds up to `burst` tokens and gains `rate` tokens per second; every request takes
one. Over any interval of W seconds at most burst + rate * W requests leave, whichever
process or thread sends them. A pause (the circuit breaker's answer to repeated 429s) empties
the bucket and holds every taker back until it ends; afterwards requests resume at `rate`,
without a burst, so that a rate-limited Yahoo is not hit by a wave the moment the pause ends.

The Redis bucket keeps its state in one hash (tokens, last refill, pause end) updated by a Lua
script that reads Redis's own clock, so processes on different machines or with skewed clocks
share one consistent bucket. Takers never queue in Redis: a script call either takes a token
or says how long until one is due, and the taker sleeps that long (cooperatively under
gevent: time.sleep is looked up at call time) and asks again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

log = logging.getLogger(__name__)

__all__ = ["LocalTokenBucket", "RateLimiter", "RedisTokenBucket"]


class RateLimiter(Protocol):
    """Something that paces requests: a token bucket, local or shared."""

    rate: float  # tokens per second
    burst: int  # tokens the bucket holds when full

    def acquire(self) -> float:
        """Block until one request may be sent; return the seconds waited."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every taker back for `seconds` and restart at the steady rate."""
        ...


def _sleep(seconds: float) -> None:
    # Looked up at call time: gevent may patch time.sleep after this module is imported.
    time.sleep(seconds)


def _check_rate(rate: float, burst: int) -> None:
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of tokens per second, got {rate!r}")
    if not (isinstance(burst, int) and not isinstance(burst, bool) and burst >= 1):
        raise ValueError(f"burst must be a whole number of tokens >= 1, got {burst!r}")


class _Bucket:
    """What both buckets share: waiting for a token by polling try_acquire()."""

    _sleep: Callable[[float], None]

    def try_acquire(self) -> float:
        """Take a token and return 0, or return the seconds until one may be there."""
        raise NotImplementedError

    def acquire(self) -> float:
        """Block until a token is taken; return the seconds waited."""
        waited = 0.0
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)
            waited += wait
        return waited


class LocalTokenBucket(_Bucket):
    """A token bucket for the threads (or greenlets) of one process."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = _sleep,
    ):
        _check_rate(rate, burst)
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()  # when _tokens was last brought up to date
        self._paused_until = float("-inf")

    def try_acquire(self) -> float:
        """Take a token if one is there and return 0, else return the seconds until one is."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.rate)
            self._stamp = max(self._stamp, now)
            # Within rounding of a whole token counts as one: a wait shorter than the clock's
            # resolution would never arrive.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return max((1.0 - self._tokens) / self.rate, 1e-6)

    def pause(self, seconds: float) -> None:
        """Empty the bucket and hold takers back for `seconds` (never shortens a pause)."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            if until > self._paused_until:
                self._paused_until = until
                self._tokens = 0.0
                self._stamp = until  # refill starts when the pause ends


# KEYS[1]: the bucket hash. ARGV: rate (tokens/s), burst (tokens), pause (us; 0 = take a token).
# Returns {taken (1/0), microseconds to wait before asking again}. Times are Redis's TIME in
# microseconds (~1.7e15, exact in a Lua double); numbers are written with string.format so
# that Lua's 14-digit default formatting does not round them.
_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, burst, pause = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'until')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
local hold = tonumber(state[3]) or 0
local taken, wait = 0, 0
if pause > 0 then
  if now + pause > hold then
    hold = now + pause
    tokens = 0
    stamp = hold
  end
elseif now < hold then
  wait = hold - now
else
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000000)
  stamp = math.max(stamp, now)
  if tokens >= 1 then
    tokens = tokens - 1
    taken = 1
  else
    wait = math.ceil((1 - tokens) * 1000000 / rate)
  end
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens),
  'stamp', string.format('%.0f', stamp), 'until', string.format('%.0f', hold))
-- Once full again (and past any pause) the state is the same as no state: let it expire.
local idle_us = math.max(hold, stamp) - now + (burst - tokens) * 1000000 / rate
redis.call('PEXPIRE', KEYS[1], math.ceil(idle_us / 1000) + 1000)
return {taken, wait}
"""


class RedisTokenBucket(_Bucket):
    """A token bucket in Redis, shared by every process that uses the same key.

    When Redis fails, takers fall back to a local bucket of the same rate (logged once per
    outage) rather than failing the request: the scan lock keeps a second scan from running
    meanwhile, so this process alone still keeps to the rate, and a Redis blip mid-scan does
    not turn every remaining symbol into an error. Redis is asked again `retry_after` seconds
    after a failure, not on every request (a client's own retries can take seconds).
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        rate: float,
        burst: int,
        *,
        sleep: Callable[[float], None] = _sleep,
        retry_after: float = 5.0,
    ):
        _check_rate(rate, burst)
        self.client = client
        self.key = key
        self.rate = float(rate)
        self.burst = burst
        self._sleep = sleep
        self._script = client.register_script(_SCRIPT)
        self.fallback = LocalTokenBucket(rate, burst, sleep=sleep)
        self.retry_after = retry_after
        self._degraded = False
        self._redis_again_at = float("-inf")  # time.monotonic() after which to try Redis

    def try_acquire(self) -> float:
        """Take a token if one is there and return 0, else return the seconds until one is."""
        if time.monotonic() < self._redis_again_at:
            return self.fallback.try_acquire()
        try:
            taken, wait_us = self._script(keys=[self.key], args=[self.rate, self.burst, 0])
        except redis.RedisError as exc:
            self._redis_again_at = time.monotonic() + self.retry_after
            if not self._degraded:
                log.warning("rate limiter %s: Redis failed (%s); pacing locally", self.key, exc)
                self._degraded = True
            return self.fallback.try_acquire()
        if self._degraded:
            log.info("rate limiter %s: Redis is back; pacing shared again", self.key)
            self._degraded = False
        return 0.0 if int(taken) else int(wait_us) / 1e6

    def pause(self, seconds: float) -> None:
        """Empty the shared bucket and hold every process's takers back for `seconds`."""
        self.fallback.pause(seconds)
        pause_us = max(1, math.ceil(seconds * 1e6))
        try:
            self._script(keys=[self.key], args=[self.rate, self.burst, pause_us])
        except redis.RedisError as exc:
            log.warning("rate limiter %s: pause kept local, Redis failed: %s", self.key, exc)
