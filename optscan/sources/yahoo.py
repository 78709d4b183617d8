"""Live option chains from Yahoo through yfinance's HTTP client, safe for threads and greenlets.

yfinance's YfData does the HTTP (cookie, crumb, consent, its retry with the other cookie
strategy); this module checks every v7 answer before anything reads it, so that an HTTP error
or a body of the wrong shape becomes a SourceError instead of yfinance's silent "no options",
and parses it with the same v7 parser the replay source uses. yf.Ticker is not used: it keeps
each answer's expirations and quote on the Ticker object, so two requests for one symbol could
not run at once; with the parser here a symbol's expirations can be fetched concurrently.

With a FetchPolicy the source also paces every request through a token bucket, retries 429s,
5xx, timeouts and connection errors with backoff, and stops when Yahoo keeps rate-limiting
(see policy.py). yfinance's own immediate retry of a 429 or 5xx with its other cookie strategy
is then skipped: it would double the load on a server that is refusing us, and it flips the
cookie strategy shared by every concurrent request.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yfinance as yf
from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import (
    ChunkedEncodingError,
    IncompleteRead,
    RequestException,
)
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import Timeout as CurlTimeout
from yfinance.const import _BASE_URL_ as YAHOO_BASE_URL
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError

from optscan.store.ratelimit import RateLimiter

from .base import Chain, EmptyChain, MalformedResponse, NoOptions, Quote, RateLimited, SourceError
from .policy import CircuitBreaker, FetchPolicy
from .v7 import (
    V7Answer,
    V7Result,
    expiration_epoch,
    load_body,
    normalise_symbol,
    parse_result,
    result_of,
)

__all__ = ["YahooSession", "YahooSource", "options_url", "running_under_gevent"]

_cache_lock = threading.Lock()
_cache_location: str | None = None

# Network failures worth asking again for; the others (bad URL, TLS, ...) will not heal.
_TRANSIENT_ERRORS = (CurlTimeout, CurlConnectionError, ChunkedEncodingError, IncompleteRead)


def running_under_gevent() -> bool:
    """Return True when gevent has monkey-patched the socket module of this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def options_url(symbol: str, epoch: int | None = None) -> str:
    """Return the v7 options URL yfinance requests for a symbol (and expiration epoch)."""
    url = f"{YAHOO_BASE_URL}/v7/finance/options/{symbol}"
    return url if epoch is None else f"{url}?date={epoch}"


class YahooSession(curl_requests.Session):
    """A curl_cffi session for yfinance: cooperative under gevent, timeouts capped, every
    request paced by an optional rate limiter, and optionally every *.yahoo.com request sent
    to a Yahoo-compatible base URL instead."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        cooperative: bool | None = None,
        limiter: RateLimiter | None = None,
    ):
        # libcurl's I/O is invisible to gevent: unless perform() runs in gevent's threadpool
        # (thread="gevent"), one request freezes every greenlet of the worker.
        self.cooperative = running_under_gevent() if cooperative is None else cooperative
        super().__init__(impersonate="chrome", thread="gevent" if self.cooperative else None)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.max_timeout = float(timeout)
        self.limiter = limiter
        # Per thread (per greenlet under gevent): when this thread's last request left.
        self._sent = threading.local()

    @property
    def last_sent_at(self) -> float | None:
        """Return when the calling thread's last request left (time.monotonic), if any."""
        return getattr(self._sent, "at", None)

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request, paced, redirected to base_url and with the timeout capped."""
        if self.base_url is not None:
            url = self._redirect(url)
        # yfinance asks for 30 s on its cookie and crumb requests; a scan must not wait that long.
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, int | float) or timeout > self.max_timeout:
            kwargs["timeout"] = self.max_timeout
        if self.limiter is not None:
            self.limiter.acquire()
        self._sent.at = time.monotonic()
        return super().request(method, url, *args, **kwargs)

    def _redirect(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "yahoo.com" and not host.endswith(".yahoo.com"):
            return url
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.base_url}{parts.path or '/'}{query}"


class _ErrorStatus(Exception):
    """Yahoo answered an error that is no cookie problem (raised before yfinance would retry
    it on its own with the other cookie strategy)."""

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _OnePerSource(type(YfData)):
    """Make each YfData subclass instance private instead of yfinance's process singleton."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class _SourceData(YfData, metaclass=_OnePerSource):
    """yfinance's HTTP client (cookie, crumb) with this source's session, timeout, checks and,
    given a policy, its retries and circuit breaker."""

    def __init__(
        self, session: curl_requests.Session, timeout: float, policy: FetchPolicy | None = None
    ):
        super().__init__(session=session)
        self._timeout = timeout
        self._policy = policy
        self.breaker = CircuitBreaker(policy) if policy is not None else None

    def _get_cookie_basic(self, timeout: float = 30) -> bool:
        got = super()._get_cookie_basic(timeout)
        # yfinance remembers a fetched cookie only by reading it back from its disk cache,
        # which keeps cookies of yahoo domains alone: from a Yahoo-compatible server at
        # another host it would fetch the cookie page again before every request.
        if got and self._cookie is None:
            self._cookie = True
        return got

    def _make_request(self, url: str, request_method: Callable[..., Any], **kwargs: Any) -> Any:
        if self._policy is None:
            return super()._make_request(url, request_method, **kwargs)

        def send(**request_args: Any) -> Any:
            response = request_method(**request_args)
            # 401 and 403 may be a stale cookie or crumb: yfinance's retry is the cure there.
            if response.status_code >= 400 and response.status_code not in (401, 403):
                raise _ErrorStatus(response)
            return response

        return super()._make_request(url, send, **kwargs)

    def get(self, url: str, params: dict | None = None, timeout: float = 30) -> Any:
        """Return Yahoo's answer to a v7 request once it is known to be a v7 answer."""
        return self.fetch(url, params)[0]

    def fetch(self, url: str, params: dict | None = None) -> tuple[Any, V7Result]:
        """Return Yahoo's answer to a v7 request and its checked optionChain.result[0]."""
        symbol = urlsplit(url).path.rsplit("/", 1)[-1]
        if self._policy is None:
            # yfinance passes no timeout of its own here (its default is 30 s): the source's wins.
            response = super().get(url, params=params, timeout=self._timeout)
            return response, _check_response(symbol, response)
        return self._fetch_with_retries(symbol, url, params, self._policy)

    def _fetch_with_retries(
        self, symbol: str, url: str, params: dict | None, policy: FetchPolicy
    ) -> tuple[Any, V7Result]:
        assert self.breaker is not None
        attempts = policy.max_retries + 1
        for attempt in range(1, attempts + 1):
            self.breaker.before_request(symbol)
            started = time.monotonic()
            try:
                response = super().get(url, params=params, timeout=self._timeout)
            except _ErrorStatus as exc:
                status = exc.response.status_code
                if status != 429 and status < 500:
                    self.breaker.succeeded()
                    _check_response(symbol, exc.response)  # raises: it will not change
                failure: Exception = exc
                if status == 429:
                    self.breaker.rate_limited(self._sent_at(started))
            except YFRateLimitError as exc:  # a 429 after yfinance's retry of a 401
                failure = exc
                self.breaker.rate_limited(self._sent_at(started))
            except _TRANSIENT_ERRORS as exc:
                failure = exc
            else:
                self.breaker.succeeded()  # a 5xx would have raised _ErrorStatus
                return response, _check_response(symbol, response)
            if attempt == attempts:
                raise _final_error(symbol, failure, attempts, self._timeout) from failure
            time.sleep(policy.backoff(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _sent_at(self, started: float) -> float:
        sent = getattr(self._session, "last_sent_at", None)
        return sent if sent is not None and sent >= started else started


def _final_error(symbol: str, failure: Exception, attempts: int, timeout: float) -> SourceError:
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(failure, _ErrorStatus):
        try:
            _check_response(symbol, failure.response)
        except SourceError as exc:
            return type(exc)(symbol, f"{exc.message} ({tries})")
    if isinstance(failure, YFRateLimitError):
        return RateLimited(symbol, f"Yahoo answered 429 Too Many Requests ({tries})")
    if isinstance(failure, CurlTimeout):
        return SourceError(symbol, f"Yahoo did not answer within {timeout:g} s ({tries})")
    return SourceError(symbol, f"request to Yahoo failed: {_first_sentence(failure)} ({tries})")


def _check_response(symbol: str, response: Any) -> V7Result:
    status = response.status_code
    if status == 429:
        raise RateLimited(symbol, "Yahoo answered 429 Too Many Requests")
    if status >= 400:
        detail = _error_detail(response)
        if status == 404:
            raise SourceError(symbol, f"Yahoo does not know this symbol (HTTP 404{detail})")
        raise SourceError(symbol, f"Yahoo answered HTTP {status}{detail}")
    return result_of(symbol, load_body(symbol, response.content))


def _error_detail(response: Any) -> str:
    try:
        payload = response.json()
        error = next(
            value["error"]
            for value in payload.values()
            if isinstance(value, dict) and isinstance(value.get("error"), dict)
        )
        return f": {error.get('description') or error.get('code')}"
    except Exception:  # noqa: BLE001 - any non-JSON error page: the status alone says enough
        return ""


def _use_cache_dir(cache_dir: Path) -> None:
    # yfinance keeps its cookie, timezone and ISIN caches in one process-wide folder; moving
    # it closes the open databases, so move it only when a source asks for another folder.
    global _cache_location
    with _cache_lock:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if _cache_location != str(cache_dir):
            yf.set_tz_cache_location(str(cache_dir))
            # yfinance's cache objects keep the database they opened first; without a reset
            # they go on using the old folder (and fail once it is deleted).
            for manager, attribute in (
                ("_CookieCacheManager", "_Cookie_cache"),
                ("_TzCacheManager", "_tz_cache"),
                ("_ISINCacheManager", "_isin_cache"),
            ):
                holder = getattr(yf.cache, manager, None)
                if holder is not None and hasattr(holder, attribute):
                    setattr(holder, attribute, None)
            _cache_location = str(cache_dir)


class YahooSource:
    """Expirations, chains and quotes fetched live from Yahoo through yfinance's HTTP client.

    The answer without a date (expirations, quote and the nearest chain) and every chain are
    memoised for the life of the source, which is one scan; failures are not. Any number of
    threads or greenlets may ask at once: each answer is fetched once (a second asker waits
    for the first), and different symbols and expirations are fetched concurrently.

    base_url sends every *.yahoo.com request to a Yahoo-compatible server instead; a given
    session (curl_cffi) is used as is, and then it alone decides where requests go, whether
    they yield to gevent and how they are paced. policy adds pacing, retries and the circuit
    breaker; without one the source asks once (yfinance's own retry aside), as before.
    Build the source after gevent's monkey patching, never before.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        session: curl_requests.Session | None = None,
        timeout: float = 10.0,
        base_url: str | None = None,
        policy: FetchPolicy | None = None,
    ):
        if session is not None and base_url is not None:
            raise ValueError("pass base_url or a session, not both: base_url builds the session")
        if session is not None and policy is not None and policy.limiter is not None:
            raise ValueError("a policy's limiter paces the session the source builds, not yours")
        _use_cache_dir(Path(cache_dir))
        self.timeout = timeout
        self.policy = policy
        self._session = session or YahooSession(
            base_url, timeout=timeout, limiter=policy.limiter if policy else None
        )
        self._data = _SourceData(self._session, timeout, policy)
        self._guard = threading.Lock()
        self._flights: dict[tuple, threading.Lock] = {}
        self._listings: dict[str, V7Answer] = {}
        self._chains: dict[tuple[str, date], Chain] = {}

    @property
    def breaker(self) -> CircuitBreaker | None:
        """Return the circuit breaker of this source's requests (None without a policy)."""
        return self._data.breaker

    def expirations(self, symbol: str) -> list[date]:
        """Return the symbol's listed expirations, nearest first."""
        symbol = normalise_symbol(symbol)
        listing = self._listing(symbol)
        if not listing.expirations:
            raise NoOptions(symbol, "Yahoo lists no option expirations")
        return list(listing.expirations)

    def quote(self, symbol: str) -> Quote:
        """Return the underlying's quote from the answer without a date."""
        return self._listing(normalise_symbol(symbol)).quote

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one expiration's chain, reusing the nearest one from the first answer."""
        symbol = normalise_symbol(symbol)
        with self._flight(("chain", symbol, expiration)):
            memo = self._chains.get((symbol, expiration))
            if memo is not None:
                return memo
            answer = self._download(symbol, expiration_epoch(expiration))
            chain = answer.chain
            if chain is None and not answer.expirations:
                raise NoOptions(symbol, "Yahoo lists no option expirations")
            if chain is None:
                raise EmptyChain(symbol, f"Yahoo sent no chain for {expiration}")
            if chain.expiration != expiration:
                raise MalformedResponse(
                    symbol, f"asked for {expiration}, Yahoo answered {chain.expiration}"
                )
            if chain.calls.empty and chain.puts.empty:
                raise EmptyChain(symbol, f"Yahoo lists no contracts for {expiration}")
            with self._guard:
                self._chains[(symbol, expiration)] = chain
            return chain

    def fetch_raw(self, symbol: str, epoch: int | None) -> str:
        """Return Yahoo's raw v7 body for a symbol (and expiration epoch), checked, unmemoised."""
        symbol = normalise_symbol(symbol)
        with self._yahoo_errors(symbol):
            return self._data.get(options_url(symbol, epoch)).text

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> YahooSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _listing(self, symbol: str) -> V7Answer:
        with self._flight(("listing", symbol)):
            listing = self._listings.get(symbol)
            if listing is None:
                listing = self._download(symbol, None)
                chain = listing.chain
                with self._guard:
                    self._listings[symbol] = listing
                    if chain is not None and not (chain.calls.empty and chain.puts.empty):
                        self._chains.setdefault((symbol, chain.expiration), chain)
            return listing

    def _download(self, symbol: str, epoch: int | None) -> V7Answer:
        with self._yahoo_errors(symbol):
            _, result = self._data.fetch(options_url(symbol, epoch))
        return parse_result(symbol, result)

    def _flight(self, key: tuple) -> threading.Lock:
        # One lock per answer: the second asker for the same answer waits for the first
        # (and then finds it memoised); different answers do not wait for each other.
        with self._guard:
            return self._flights.setdefault(key, threading.Lock())

    @contextmanager
    def _yahoo_errors(self, symbol: str) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except YFRateLimitError as exc:
            raise RateLimited(symbol, "Yahoo answered 429 Too Many Requests") from exc
        except CurlTimeout as exc:
            raise SourceError(symbol, f"Yahoo did not answer within {self.timeout:g} s") from exc
        except RequestException as exc:
            raise SourceError(symbol, f"request to Yahoo failed: {_first_sentence(exc)}") from exc
        except Exception as exc:
            raise SourceError(
                symbol, f"yfinance failed: {type(exc).__name__}: {_first_sentence(exc)}"
            ) from exc


def _first_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    head, dot, _ = text.partition(". ")
    return (head + dot.strip()) if head else type(exc).__name__
