"""One request of a live source, asked again as its FetchPolicy says: the loop every vendor shares.

A Fetcher sends through a PacedSession (pacing, the "unreachable" breaker) and adds the
retries with backoff and the 429 circuit breaker of policy.py. What counts as an answer worth
keeping is the caller's `check`: it turns a response into data or raises a SourceError. 429
and 5xx answers, timeouts and dropped connections are asked again; other answers are final.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from curl_cffi.requests.exceptions import ChunkedEncodingError, IncompleteRead, RequestException
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import Timeout as CurlTimeout

from .base import RateLimited, SourceError, Unreachable
from .policy import CircuitBreaker, FetchPolicy, Reachability
from .session import ConnectionFailed

__all__ = ["Fetcher", "RateLimitedAnswer", "first_sentence"]

T = TypeVar("T")

# Network failures worth asking again for; the others (bad URL, ...) will not heal.
TRANSIENT_ERRORS = (CurlTimeout, CurlConnectionError, ChunkedEncodingError, IncompleteRead)


class RateLimitedAnswer(Exception):
    """The vendor answered 429, said by a client that keeps the response to itself."""


class _Status(Exception):
    """An answer worth asking again for (429, 5xx): the response, kept for the final error."""

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class Fetcher:
    """Send a source's requests with its policy (retries, backoff, circuit breaker).

    vendor names the server in messages ("Cboe"); unreachable_vendor is how an Unreachable
    names it; client names the HTTP client in messages about its own failures.
    """

    def __init__(
        self,
        session: Any,
        timeout: float,
        policy: FetchPolicy | None,
        reachability: Reachability,
        *,
        vendor: str,
        unreachable_vendor: str | None = None,
        client: str = "curl_cffi",
    ):
        self.session = session
        self.timeout = timeout
        self.policy = policy
        self.reachability = reachability
        self.vendor = vendor
        self.unreachable_vendor = unreachable_vendor or vendor
        self.client = client
        self.breaker = CircuitBreaker(policy, vendor=vendor) if policy is not None else None

    def fetch(
        self, symbol: str, send: Callable[[], Any], check: Callable[[str, Any], T]
    ) -> tuple[Any, T]:
        """Return send()'s response and what `check` makes of it, retrying as the policy says."""
        policy = self.policy
        attempts = 1 + (policy.max_retries if policy is not None else 0)
        for attempt in range(1, attempts + 1):
            if self.breaker is not None:
                self.breaker.before_request(symbol)
            started = time.monotonic()
            failure: Exception
            try:
                response = send()
            except RateLimitedAnswer as exc:
                failure = exc
                if self.breaker is not None:
                    self.breaker.rate_limited(self._sent_at(started))
            except ConnectionFailed as exc:
                if exc.final:
                    raise self._unreachable(symbol, exc.cause) from None
                failure = exc
            except TRANSIENT_ERRORS as exc:
                failure = exc
            except RequestException as exc:
                message = f"request to {self.vendor} failed: {first_sentence(exc)}"
                raise SourceError(symbol, message) from exc
            except Exception as exc:
                message = f"{self.client} failed: {type(exc).__name__}: {first_sentence(exc)}"
                raise SourceError(symbol, message) from exc
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    if self.breaker is not None:
                        self.breaker.succeeded()
                    return response, check(symbol, response)  # it will not change
                failure = _Status(response)
                if status == 429 and self.breaker is not None:
                    self.breaker.rate_limited(self._sent_at(started))
            if attempt == attempts:
                raise self._final_error(symbol, failure, attempts, check) from failure
            if self.reachability.cause is not None:  # given up while this one failed
                raise self._unreachable(symbol, self.reachability.cause) from None
            assert policy is not None
            time.sleep(policy.backoff(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _unreachable(self, symbol: str, cause: str) -> Unreachable:
        return Unreachable(symbol, cause, vendor=self.unreachable_vendor)

    def _sent_at(self, started: float) -> float:
        sent = getattr(self.session, "last_sent_at", None)
        return sent if sent is not None and sent >= started else started

    def _final_error(
        self, symbol: str, failure: Exception, attempts: int, check: Callable[[str, Any], Any]
    ) -> SourceError:
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if isinstance(failure, _Status):
            try:
                check(symbol, failure.response)
            except SourceError as exc:
                return exc.reworded(f"{exc.message}{tries}")
            status = failure.response.status_code
            return SourceError(symbol, f"{self.vendor} answered HTTP {status}{tries}")
        if isinstance(failure, ConnectionFailed):
            return self._unreachable(symbol, failure.cause)
        if isinstance(failure, RateLimitedAnswer):
            return RateLimited(symbol, f"{self.vendor} answered 429 Too Many Requests{tries}")
        if isinstance(failure, CurlTimeout):
            return SourceError(
                symbol, f"{self.vendor} did not answer within {self.timeout:g} s{tries}"
            )
        return SourceError(
            symbol, f"request to {self.vendor} failed: {first_sentence(failure)}{tries}"
        )


def first_sentence(exc: BaseException) -> str:
    """Return the first sentence of an exception's message (its type name if it has none)."""
    text = " ".join(str(exc).split())
    head, dot, _ = text.partition(". ")
    return (head + dot.strip()) if head else type(exc).__name__
