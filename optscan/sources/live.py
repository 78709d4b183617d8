"""What the live sources (Yahoo, Cboe) share: answers fetched once however many ask, and memo notes.

A live source keeps every answer for its own life (one scan): each is fetched under a lock of
its own, so a second asker waits for the first and then finds it kept, while different answers
do not wait for each other. Failures are not kept. With a YahooMemo, a source notes which
symbols its vendor knows (for the watchlist page) and adds the calendar dates to its quotes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Hashable
from typing import Any, Self, TypeVar

from optscan.store.yahoomemo import YahooMemo

from .base import Chain, Quote, UnknownSymbol
from .fetch import Fetcher
from .policy import UNREACHABLE_AFTER, CircuitBreaker, FetchPolicy, Reachability
from .quotesummary import CalendarEvents, stored_events, with_events

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LiveSource:
    """The memoised, thread- and greenlet-safe plumbing of a live source over an HTTP session."""

    _session: Any  # a curl_cffi session, set by the subclass
    _fetcher: Fetcher

    def __init__(
        self,
        *,
        session: object,
        base_url: str | None,
        timeout: float,
        policy: FetchPolicy | None,
        memo: YahooMemo | None,
    ):
        if session is not None and base_url is not None:
            raise ValueError("pass base_url or a session, not both: base_url builds the session")
        self.timeout = timeout
        self.memo = memo
        self.reachability = Reachability(
            policy.unreachable_after if policy is not None else UNREACHABLE_AFTER
        )
        self._guard = threading.Lock()
        self._flights: dict[Hashable, threading.Lock] = {}
        self._calendars: dict[str, CalendarEvents | None] = {}

    @property
    def breaker(self) -> CircuitBreaker | None:
        """Return the circuit breaker of this source's requests (None without a policy)."""
        return self._fetcher.breaker

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _once(self, flight: Hashable, kept: dict[K, V], key: K, fetch: Callable[[], V]) -> V:
        """Return kept[key], fetched and kept first unless an earlier asker did."""
        with self._flight(flight):
            found = kept.get(key)
            if found is None:
                found = fetch()
                with self._guard:
                    kept[key] = found
            return found

    def _noted(self, symbol: str, fetch: Callable[[], V]) -> V:
        """Return fetch(), telling the memo whether the vendor knows the symbol."""
        try:
            answer = fetch()
        except UnknownSymbol as exc:
            if self.memo is not None:
                self.memo.mark_unknown(symbol, exc.message)
            raise
        if self.memo is not None:
            self.memo.mark_known(symbol)
        return answer

    def _dated_chain(self, symbol: str, chain: Chain) -> Chain:
        quote = self._dated(symbol, chain.quote)
        return chain if quote is chain.quote else dataclasses.replace(chain, quote=quote)

    def _dated(self, symbol: str, quote: Quote) -> Quote:
        events = self._calendar(symbol)
        return quote if events is None else with_events(quote, events)

    def _calendar(self, symbol: str) -> CalendarEvents | None:
        """Return the symbol's calendar dates the memo holds (read once per source)."""
        if self.memo is None:
            return None
        with self._guard:
            known = symbol in self._calendars
            events = self._calendars.get(symbol)
        if not known:
            events = stored_events(self.memo.calendar(symbol))
            with self._guard:
                self._calendars[symbol] = events
        return events

    def _flight(self, key: Hashable) -> threading.Lock:
        # One lock per answer: the second asker for the same answer waits for the first
        # (and then finds it memoised); different answers do not wait for each other.
        with self._guard:
            return self._flights.setdefault(key, threading.Lock())
