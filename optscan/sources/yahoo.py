"""Live option chains from Yahoo through yfinance, safe to call from gevent greenlets.

yfinance does the HTTP (cookie, crumb, its retry with the other cookie strategy) and turns
contracts into DataFrames; this module checks every v7 answer before yfinance reads it, so
that an HTTP error or a body of the wrong shape becomes a SourceError instead of yfinance's
silent "no options".
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yfinance as yf
from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import RequestException
from curl_cffi.requests.exceptions import Timeout as CurlTimeout
from yfinance.const import _BASE_URL_ as YAHOO_BASE_URL
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError
from yfinance.utils import is_isin

from .base import Chain, EmptyChain, MalformedResponse, NoOptions, Quote, RateLimited, SourceError
from .v7 import (
    V7Answer,
    chain_frame,
    expiration_date,
    expiration_epoch,
    load_body,
    normalise_symbol,
    parse_quote,
    result_of,
)

__all__ = ["YahooSession", "YahooSource", "options_url", "running_under_gevent"]

_cache_lock = threading.Lock()
_cache_location: str | None = None


def running_under_gevent() -> bool:
    """Return True when gevent has monkey-patched the socket module of this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def options_url(symbol: str, epoch: int | None = None) -> str:
    """Return the v7 options URL yfinance requests for a symbol (and expiration epoch)."""
    url = f"{YAHOO_BASE_URL}/v7/finance/options/{symbol}"
    return url if epoch is None else f"{url}?date={epoch}"


class YahooSession(curl_requests.Session):
    """A curl_cffi session for yfinance: cooperative under gevent, timeouts capped, and
    optionally every *.yahoo.com request sent to a Yahoo-compatible base URL instead."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        cooperative: bool | None = None,
    ):
        # libcurl's I/O is invisible to gevent: unless perform() runs in gevent's threadpool
        # (thread="gevent"), one request freezes every greenlet of the worker.
        self.cooperative = running_under_gevent() if cooperative is None else cooperative
        super().__init__(impersonate="chrome", thread="gevent" if self.cooperative else None)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.max_timeout = float(timeout)

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request, redirected to base_url and with the timeout capped."""
        if self.base_url is not None:
            url = self._redirect(url)
        # yfinance asks for 30 s on its cookie and crumb requests; a scan must not wait that long.
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, int | float) or timeout > self.max_timeout:
            kwargs["timeout"] = self.max_timeout
        return super().request(method, url, *args, **kwargs)

    def _redirect(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "yahoo.com" and not host.endswith(".yahoo.com"):
            return url
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.base_url}{parts.path or '/'}{query}"


class _OnePerSource(type(YfData)):
    """Make each YfData subclass instance private instead of yfinance's process singleton."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class _SourceData(YfData, metaclass=_OnePerSource):
    """yfinance's HTTP client (cookie, crumb) with this source's session, timeout and checks."""

    def __init__(self, session: curl_requests.Session, timeout: float):
        super().__init__(session=session)
        self._timeout = timeout

    def get(self, url: str, params: dict | None = None, timeout: float = 30) -> Any:
        """Return yfinance's response to a v7 request once it is known to be a v7 answer."""
        # yfinance passes no timeout of its own here (its default is 30 s): the source's wins.
        response = super().get(url, params=params, timeout=self._timeout)
        _check_response(urlsplit(url).path.rsplit("/", 1)[-1], response)
        return response


def _check_response(symbol: str, response: Any) -> None:
    status = response.status_code
    if status == 429:
        raise RateLimited(symbol, "Yahoo answered 429 Too Many Requests")
    if status >= 400:
        detail = _error_detail(response)
        if status == 404:
            raise SourceError(symbol, f"Yahoo does not know this symbol (HTTP 404{detail})")
        raise SourceError(symbol, f"Yahoo answered HTTP {status}{detail}")
    result_of(symbol, load_body(symbol, response.content))


def _error_detail(response: Any) -> str:
    try:
        payload = response.json()
        error = next(
            value["error"]
            for value in payload.values()
            if isinstance(value, dict) and isinstance(value.get("error"), dict)
        )
        return f": {error.get('description') or error.get('code')}"
    except Exception:  # any non-JSON error page: the status alone says enough
        return ""


def _use_cache_dir(cache_dir: Path) -> None:
    # yfinance keeps its cookie, timezone and ISIN caches in one process-wide folder; moving
    # it closes the open databases, so move it only when a source asks for another folder.
    global _cache_location
    with _cache_lock:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if _cache_location != str(cache_dir):
            yf.set_tz_cache_location(str(cache_dir))
            _cache_location = str(cache_dir)


class YahooSource:
    """Expirations, chains and quotes fetched live from Yahoo through yfinance.

    One yf.Ticker per symbol; the answer without a date (expirations, quote and the nearest
    chain) and every chain are memoised for the life of the source, which is one scan;
    failures are not. Requests for one symbol go one at a time; symbols run concurrently.
    base_url sends every *.yahoo.com request to a Yahoo-compatible server instead; a given
    session (curl_cffi) is used as is, and then it alone decides where requests go and whether
    they yield to gevent. Build the source after gevent's monkey patching, never before.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        session: curl_requests.Session | None = None,
        timeout: float = 10.0,
        base_url: str | None = None,
    ):
        if session is not None and base_url is not None:
            raise ValueError("pass base_url or a session, not both: base_url builds the session")
        _use_cache_dir(Path(cache_dir))
        self.timeout = timeout
        self._session = session or YahooSession(base_url, timeout=timeout)
        self._data = _SourceData(self._session, timeout)
        self._guard = threading.Lock()
        self._symbol_locks: dict[str, threading.Lock] = {}
        self._tickers: dict[str, yf.Ticker] = {}
        self._listings: dict[str, V7Answer] = {}
        self._chains: dict[tuple[str, date], Chain] = {}

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
        with self._lock_for(symbol):
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
        with self._lock_for(symbol):
            listing = self._listings.get(symbol)
            if listing is None:
                listing = self._download(symbol, None)
                self._listings[symbol] = listing
                chain = listing.chain
                if chain is not None and not (chain.calls.empty and chain.puts.empty):
                    self._chains.setdefault((symbol, chain.expiration), chain)
            return listing

    def _download(self, symbol: str, epoch: int | None) -> V7Answer:
        with self._yahoo_errors(symbol):
            ticker = self._ticker(symbol)
            # A Ticker adds every answer's expirationDates to _expirations; keep only this
            # answer's (requests for one symbol are serialised by the caller's lock).
            ticker._expirations = {}
            option = ticker._download_options(epoch)
            quote = parse_quote(symbol, ticker._underlying)
            expirations = sorted(date.fromisoformat(day) for day in ticker._expirations)
            chain = None
            if option:
                chain = Chain(
                    symbol=symbol,
                    expiration=expiration_date(option["expirationDate"]),
                    quote=quote,
                    calls=chain_frame(ticker._options2df(option.get("calls", []))),
                    puts=chain_frame(ticker._options2df(option.get("puts", []))),
                )
        return V7Answer(quote, expirations, chain)

    def _ticker(self, symbol: str) -> yf.Ticker:
        with self._guard:
            ticker = self._tickers.get(symbol)
            if ticker is None:
                if is_isin(symbol):
                    # yf.Ticker would look an ISIN up through yfinance's own global session.
                    raise SourceError(symbol, "looks like an ISIN, not a ticker symbol")
                # No session argument: that would re-point yfinance's process-wide YfData.
                ticker = yf.Ticker(symbol)
                ticker.session = self._session
                ticker._data = self._data
                self._tickers[symbol] = ticker
            return ticker

    def _lock_for(self, symbol: str) -> threading.Lock:
        with self._guard:
            return self._symbol_locks.setdefault(symbol, threading.Lock())

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
