"""How a live source paces, retries and backs off: the fetch policy and its circuit breaker.

Every live source (Yahoo, Cboe) has a policy of its own, with its own token bucket: one
vendor's 429s never pause the other's requests.

Retried: 429, 5xx, timeouts and connection errors, each up to `max_retries` more times after
an exponential backoff with jitter (retry n waits between half and all of
min(cap, base * 2 ** (n - 1)) seconds: never a synchronised wave, never less than half the
step). Not retried: answers that will not change on asking again (404, bodies that are not
v7, symbols without options). Failures are never memoised by the source.

The circuit breaker watches 429s: `breaker_threshold` of them with no success in between
(counting only requests sent after the last trip) pause every request for
`breaker_pause_seconds`, in this process and, through the shared bucket, in every other one.
If the vendor still rate-limits after a pause, the breaker opens for good: the source's remaining
requests fail at once as rate_limited instead of each waiting out its retries.

Reachability watches connection-level failures instead (DNS, connect, TLS: no answer of any
kind): `unreachable_after` of them with no answer in between and the vendor counts as unreachable
for the rest of the source's life (one scan). Every further request then fails at once, before
it is paced or sent, so that a scan without network ends in about one request's time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from optscan.store.ratelimit import RateLimiter

from .base import RateLimited

log = logging.getLogger(__name__)

__all__ = ["CircuitBreaker", "FetchPolicy", "Reachability"]

# Trips with no success in between after which the breaker stops waiting and gives up.
TRIPS_BEFORE_GIVING_UP = 2
# Connection-level failures in a row (no answer in between) after which a vendor is unreachable.
UNREACHABLE_AFTER = 3


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so that gevent's patch applies


@dataclass(frozen=True)
class FetchPolicy:
    """Pacing, retries and circuit breaking for one live source (all times in seconds)."""

    limiter: RateLimiter | None = None  # None: requests are not paced
    max_retries: int = 3  # further attempts after the first one
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    breaker_threshold: int = 3  # 429s without a success in between; 0: no breaker
    breaker_pause: float = 30.0
    unreachable_after: int = UNREACHABLE_AFTER  # connection failures in a row; 0: never give up
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.max_retries, self.breaker_threshold, self.unreachable_after) < 0:
            raise ValueError("max_retries, breaker_threshold and unreachable_after must be >= 0")
        if not 0 <= self.backoff_base <= self.backoff_cap:
            raise ValueError("backoff must satisfy 0 <= base <= cap")
        if self.breaker_pause < 0:
            raise ValueError("breaker_pause must be >= 0")

    def backoff(self, retry: int) -> float:
        """Return the seconds to wait before retry number `retry` (1 for the first retry)."""
        step = min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1))
        return step / 2 + self.rng.uniform(0, step / 2)


class CircuitBreaker:
    """Count 429s across a source's concurrent requests and pause or give up when they pile up."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        vendor: str = "Yahoo",
    ):
        self.policy = policy
        self.vendor = vendor
        self._clock = clock
        self._lock = threading.Lock()
        self._strikes = 0  # 429s since the last success or trip
        self._trips = 0  # trips since the last success
        self._tripped_at = float("-inf")
        self._paused_until = float("-inf")
        self.trips_total = 0

    @property
    def open(self) -> bool:
        """Return whether the breaker has given up for the rest of this source's life."""
        return self._trips >= TRIPS_BEFORE_GIVING_UP

    def before_request(self, symbol: str) -> None:
        """Wait out a pause of this process, or raise RateLimited once the breaker is open."""
        if self.open:
            raise RateLimited(
                symbol,
                f"{self.vendor} answered 429 Too Many Requests again after a"
                f" {self.policy.breaker_pause:g} s pause; not asking again in this scan",
            )
        # The shared limiter also holds requests back; this covers a source without one.
        remaining = self._paused_until - self._clock()
        if remaining > 0:
            _sleep(remaining)

    def succeeded(self) -> None:
        """Record a successful answer: rate limiting is over."""
        with self._lock:
            self._strikes = 0
            self._trips = 0

    def rate_limited(self, sent_at: float) -> None:
        """Record a 429 for a request sent at `sent_at` (clock time); maybe trip."""
        threshold = self.policy.breaker_threshold
        if threshold == 0:
            return
        with self._lock:
            if sent_at < self._tripped_at:
                return  # sent before the last pause began: already accounted for
            self._strikes += 1
            if self._strikes < threshold:
                return
            self._strikes = 0
            self._trips += 1
            self.trips_total += 1
            self._tripped_at = self._clock()
            self._paused_until = self._tripped_at + self.policy.breaker_pause
            trips = self._trips
        if trips >= TRIPS_BEFORE_GIVING_UP:
            log.error(
                "%s kept answering 429 after a pause; giving up on the rest of the scan",
                self.vendor,
            )
            return
        log.warning(
            "%s answered 429 %d times in a row; pausing requests for %g s",
            self.vendor,
            threshold,
            self.policy.breaker_pause,
        )
        if self.policy.limiter is not None:
            self.policy.limiter.pause(self.policy.breaker_pause)


class Reachability:
    """Count a source's connection-level failures; after `threshold` in a row, refuse the rest."""

    def __init__(self, threshold: int = UNREACHABLE_AFTER):
        self.threshold = threshold
        self._lock = threading.Lock()
        self._strikes = 0  # connection failures since the last answer
        self.failures = 0  # connection failures in all, the refused requests not counted
        self.refused = 0  # requests refused without touching the network once unreachable
        self.cause: str | None = None  # what made the vendor unreachable, once it is

    @property
    def unreachable(self) -> bool:
        """Return whether the vendor counts as unreachable for the rest of this source's life."""
        return self.cause is not None

    def check(self) -> str | None:
        """Return the cause if the vendor is unreachable (counting a refused request), else None."""
        with self._lock:
            if self.cause is not None:
                self.refused += 1
            return self.cause

    def failed(self, cause: str) -> bool:
        """Record a connection-level failure; return whether the vendor is now unreachable."""
        with self._lock:
            self.failures += 1
            if self.cause is None:
                self._strikes += 1
                if self.threshold and self._strikes >= self.threshold:
                    self.cause = cause
            return self.cause is not None

    def answered(self) -> None:
        """Record an answer of any kind: the vendor is reachable."""
        with self._lock:
            self._strikes = 0
