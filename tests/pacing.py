"""Record what a token bucket granted, and when, so that tests can check its bound.

A grant happens somewhere between the taker's last wake-up and acquire() returning: `Takers`
records that interval for each grant, and every wait the bucket asked for. Counting only the
grants whose whole interval fits a window means a taker the machine was slow to run can only
make a check looser, never fail it.
"""

from __future__ import annotations

import threading
import time

from optscan.store.ratelimit import RedisTokenBucket


def max_inside_window(grants: list[tuple[float, float]], window: float) -> int:
    """Return the most grants whose whole (earliest, latest) interval fits one window."""
    return max(
        sum(1 for start, end in grants if since <= start and end <= since + window)
        for since, _ in grants
    )


class Takers:
    """Record, per grant, the interval it must lie in, and every wait the bucket asked for."""

    def __init__(self) -> None:
        self.grants: list[tuple[float, float]] = []
        self.waits: list[float] = []
        self._lock = threading.Lock()
        self._woke = threading.local()

    def sleep(self, seconds: float) -> None:
        """Sleep as the bucket asks, noting the wait and when this taker woke."""
        with self._lock:
            self.waits.append(seconds)
        time.sleep(seconds)
        self._woke.at = time.monotonic()

    def take(self, bucket: RedisTokenBucket) -> float:
        """Acquire a token from `bucket` (built with sleep=self.sleep) and record the grant."""
        called = time.monotonic()
        self._woke.at = called
        waited = bucket.acquire()
        with self._lock:
            self.grants.append((max(called, self._woke.at), time.monotonic()))
        return waited


class RecordedLimiter:
    """A limiter for a source: takes its tokens from `bucket` through `takers`."""

    def __init__(self, bucket: RedisTokenBucket, takers: Takers):
        self.bucket, self.takers = bucket, takers
        self.rate, self.burst = bucket.rate, bucket.burst

    def acquire(self) -> float:
        """Take a token, recording the grant."""
        return self.takers.take(self.bucket)

    def pause(self, seconds: float) -> None:
        """Pause the bucket."""
        self.bucket.pause(seconds)
