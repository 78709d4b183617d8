"""Live option chains from Yahoo through yfinance's HTTP client, safe for threads and greenlets.

yfinance's YfData does the HTTP (cookie, crumb, consent, its retry with the other cookie
strategy; reached through yfadapter.py alone); this module checks every answer before anything
reads it, so that an HTTP error or a body of the wrong shape becomes a SourceError instead of
yfinance's silent "no options", and parses v7 answers with the same parser the replay source
uses. yf.Ticker is not used: it keeps each answer's expirations and quote on the Ticker object,
so two requests for one symbol could not run at once; here a symbol's expirations can be
fetched concurrently.

With a FetchPolicy the source also paces every request through a token bucket, retries 429s,
5xx, timeouts and connection errors with backoff, and stops when Yahoo keeps rate-limiting
(see policy.py and fetch.py). yfinance's own immediate retry of a 429 or 5xx with its other
cookie strategy is then skipped: it would double the load on a server that is refusing us, and
it flips the cookie strategy shared by every concurrent request. With or without a policy, a few
connection-level failures in a row make Yahoo unreachable for the rest of the scan: the
remaining symbols fail at once as `unreachable`, without a request.

Given a YahooMemo, the source also asks Yahoo's quoteSummary calendar for each symbol's
earnings and ex-dividend dates (once per symbol and New York day, kept in Redis) and notes
the symbols Yahoo does not know, for the watchlist page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from curl_cffi import requests as curl_requests

from optscan.store.yahoomemo import YahooMemo

from .base import (
    Chain,
    EmptyChain,
    MalformedResponse,
    NoOptions,
    Quote,
    RateLimited,
    SourceError,
    UnknownSymbol,
)
from .fetch import Fetcher, RateLimitedAnswer
from .live import LiveSource
from .policy import FetchPolicy
from .quotesummary import CalendarEvents, parse_calendar_events, stored_events
from .v7 import (
    V7Answer,
    V7Result,
    expiration_epoch,
    load_body,
    load_json,
    normalise_symbol,
    parse_result,
    result_of,
)
from .yahoohttp import YahooSession, running_under_gevent
from .yfadapter import RateLimitError, YfClient, use_cache_dir

__all__ = ["YahooSession", "YahooSource", "options_url", "running_under_gevent"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Yahoo's API host (yfinance's own default, query1 being the other).
YAHOO_API = "https://query2.finance.yahoo.com"
CALENDAR_PARAMS = {"modules": "calendarEvents", "formatted": "false"}


def options_url(symbol: str, epoch: int | None = None) -> str:
    """Return the v7 options URL for a symbol (and expiration epoch)."""
    url = f"{YAHOO_API}/v7/finance/options/{symbol}"
    return url if epoch is None else f"{url}?date={epoch}"


def calendar_url(symbol: str) -> str:
    """Return the quoteSummary URL whose calendarEvents module holds the symbol's dates."""
    return f"{YAHOO_API}/v10/finance/quoteSummary/{symbol}"


class _ErrorStatus(Exception):
    """Yahoo answered an error that is no cookie problem (raised before yfinance would retry
    it on its own with the other cookie strategy)."""

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _stop_on_error_status(response: Any) -> None:
    # 401 and 403 may be a stale cookie or crumb: yfinance's retry is the cure there.
    if response.status_code >= 400 and response.status_code not in (401, 403):
        raise _ErrorStatus(response)


class _YahooClient:
    """Send one request through yfinance's client, its error answers returned, not retried."""

    def __init__(self, session: curl_requests.Session, policy: FetchPolicy | None):
        # Without a policy yfinance's own retry of an error answer is left alone.
        self.client = YfClient(session, _stop_on_error_status if policy is not None else None)

    def sender(self, url: str, params: dict | None, timeout: float) -> Callable[[], Any]:
        """Return a function that sends the request once (what Fetcher.fetch calls)."""

        def send() -> Any:
            try:
                # yfinance's default timeout is 30 s: the source's wins.
                return self.client.get(url, params=params, timeout=timeout)
            except _ErrorStatus as exc:
                return exc.response
            except RateLimitError as exc:  # a 429 after yfinance's retry of a 401
                raise RateLimitedAnswer(str(exc)) from exc

        return send


def _check_status(symbol: str, response: Any) -> None:
    status = response.status_code
    if status == 429:
        raise RateLimited(symbol, "Yahoo answered 429 Too Many Requests")
    if status >= 400:
        raise SourceError(symbol, f"Yahoo answered HTTP {status}{_error_detail(response)}")


def _check_v7(symbol: str, response: Any) -> V7Result:
    if response.status_code == 404:
        raise UnknownSymbol(symbol)
    _check_status(symbol, response)
    return result_of(symbol, load_body(symbol, response.content))


def _check_calendar(symbol: str, response: Any) -> CalendarEvents:
    if response.status_code == 404:  # "No fundamentals data found": a fund, a currency, ...
        return CalendarEvents()
    _check_status(symbol, response)
    return parse_calendar_events(symbol, load_json(symbol, response.content))


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


class YahooSource(LiveSource):
    """Expirations, chains and quotes fetched live from Yahoo through yfinance's HTTP client.

    The answer without a date (expirations, quote and the nearest chain) and every chain are
    memoised for the life of the source, which is one scan; failures are not. Any number of
    threads or greenlets may ask at once: each answer is fetched once (a second asker waits
    for the first), and different symbols and expirations are fetched concurrently.

    base_url sends every *.yahoo.com request to a Yahoo-compatible server instead; a given
    session (curl_cffi) is used as is, and then it alone decides where requests go, whether
    they yield to gevent and how they are paced. policy adds pacing, retries and the circuit
    breaker; without one the source asks once (yfinance's own retry aside). memo adds the
    calendar dates and notes unknown symbols (see the module's docstring).
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
        memo: YahooMemo | None = None,
    ):
        super().__init__(
            session=session, base_url=base_url, timeout=timeout, policy=policy, memo=memo
        )
        if session is not None and policy is not None and policy.limiter is not None:
            raise ValueError("a policy's limiter paces the session the source builds, not yours")
        use_cache_dir(Path(cache_dir))
        self.policy = policy
        if session is None:
            session = YahooSession(
                base_url,
                timeout=timeout,
                limiter=policy.limiter if policy else None,
                reachability=self.reachability,
            )
        elif isinstance(session, YahooSession) and session.reachability is None:
            session.reachability = self.reachability
        self._session = session
        self._client = _YahooClient(session, policy)
        self._fetcher = Fetcher(
            session,
            timeout,
            policy,
            self.reachability,
            vendor="Yahoo",
            unreachable_vendor="Yahoo Finance",
            client="yfinance",
        )
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
        """Return the underlying's quote from the answer without a date, with its dates."""
        symbol = normalise_symbol(symbol)
        return self._dated(symbol, self._listing(symbol).quote)

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one expiration's chain, reusing the nearest one from the first answer."""
        symbol = normalise_symbol(symbol)
        key = (symbol, expiration)
        chain = self._once(
            ("chain", *key), self._chains, key, lambda: self._fetch_chain(symbol, expiration)
        )
        return self._dated_chain(symbol, chain)

    def fetch_raw(self, symbol: str, epoch: int | None) -> str:
        """Return Yahoo's raw v7 body for a symbol (and expiration epoch), checked, unmemoised."""
        symbol = normalise_symbol(symbol)
        response, _ = self._fetch(symbol, options_url(symbol, epoch), None, _check_v7)
        return str(response.text)

    def _fetch_chain(self, symbol: str, expiration: date) -> Chain:
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
        return chain

    def _listing(self, symbol: str) -> V7Answer:
        return self._once(
            ("listing", symbol), self._listings, symbol, lambda: self._first_answer(symbol)
        )

    def _first_answer(self, symbol: str) -> V7Answer:
        listing = self._noted(symbol, lambda: self._download(symbol, None))
        chain = listing.chain
        if chain is not None and not (chain.calls.empty and chain.puts.empty):
            with self._guard:
                self._chains.setdefault((symbol, chain.expiration), chain)
        return listing

    def _download(self, symbol: str, epoch: int | None) -> V7Answer:
        _, result = self._fetch(symbol, options_url(symbol, epoch), None, _check_v7)
        return parse_result(symbol, result)

    def _fetch(
        self, symbol: str, url: str, params: dict | None, check: Callable[[str, Any], T]
    ) -> tuple[Any, T]:
        send = self._client.sender(url, params, self.timeout)
        return self._fetcher.fetch(symbol, send, check)

    def _calendar(self, symbol: str) -> CalendarEvents | None:
        # Once per source (a failure too: the scan goes on without the dates), once per
        # New York day through the memo.
        memo = self.memo
        if memo is None:
            return None
        with self._flight(("calendar", symbol)):
            if symbol in self._calendars:
                return self._calendars[symbol]
            events = stored_events(memo.calendar(symbol))
            if events is None:
                try:
                    _, fetched = self._fetch(
                        symbol, calendar_url(symbol), CALENDAR_PARAMS, _check_calendar
                    )
                except SourceError as exc:
                    log.debug("%s: no calendar dates: %s", symbol, exc.message)
                else:
                    memo.save_calendar(symbol, fetched.to_json())
                    events = fetched
            with self._guard:
                self._calendars[symbol] = events
            return events
