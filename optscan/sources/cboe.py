"""Live option chains from Cboe's delayed quotes: one request per symbol answers every expiration.

Cboe publishes, for every US-listed underlying, one JSON document with its whole option chain
(cdn.cboe.com/api/global/delayed_quotes/options/<SYMBOL>.json, indices as _SPX), quotes
delayed by about 15 minutes (cboedoc.py parses it). The source asks for it once per symbol and
scan, and serves the quote, the expirations and each expiration's chain from that one answer.

The requests go through the same machinery as Yahoo's: a PacedSession (curl_cffi, in gevent's
threadpool under gevent, paced by the source's own token bucket, refused once Cboe is
unreachable) and the shared Fetcher (retries with backoff, the 429 circuit breaker; see
policy.py and fetch.py).

Answers: 200 with the document; 404 is a symbol Cboe has no document for (unknown_symbol). The
CDN keeps the documents in S3, which answers a missing key with 403 AccessDenied (an XML body)
when listing is not allowed: that 403 is an unknown symbol too. Any other 403 (a block page)
is an error, so that a fallback source is tried. 429 and 5xx are retried.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from curl_cffi import requests as curl_requests

from optscan.store.yahoomemo import YahooMemo

from .base import Chain, EmptyChain, Quote, RateLimited, SourceError, UnknownSymbol
from .base import normalise_symbol as normalise
from .cboedoc import CboeDocument, cboe_name, parse_cboe
from .fetch import Fetcher
from .live import LiveSource
from .policy import FetchPolicy
from .session import PacedSession

__all__ = ["CBOE_CDN", "CboeSource", "options_path"]

CBOE_CDN = "https://cdn.cboe.com"
VENDOR = "Cboe"


def options_path(symbol: str) -> str:
    """Return the path of a symbol's delayed-quotes document (optscan's symbol: ^SPX, AAPL)."""
    return f"/api/global/delayed_quotes/options/{cboe_name(symbol)}.json"


def _check(symbol: str, response: Any) -> CboeDocument:
    status = response.status_code
    if status == 404 or (status == 403 and b"AccessDenied" in response.content[:512]):
        raise UnknownSymbol(symbol, VENDOR)
    if status == 429:
        raise RateLimited(symbol, f"{VENDOR} answered 429 Too Many Requests")
    if status == 403:
        raise SourceError(symbol, f"{VENDOR} refused the request (HTTP 403)")
    if status != 200:
        raise SourceError(symbol, f"{VENDOR} answered HTTP {status}")
    return parse_cboe(response.content, symbol)


class CboeSource(LiveSource):
    """Expirations, chains and quotes from Cboe's delayed-quotes documents, one per symbol.

    Each symbol's document is fetched once for the life of the source (one scan; failures are
    not kept); any number of threads or greenlets may ask at once (a second asker for the
    same symbol waits for the first). base_url sends every *.cboe.com request to a
    Cboe-compatible server instead; a given session is used as is. policy adds pacing,
    retries and the circuit breaker. memo lends today's earnings and ex-dividend dates that
    the Yahoo source stored, when there are any (Cboe's document has none), and takes note of
    the symbols Cboe does not know, for the watchlist page, as Yahoo's source does.
    Build the source after gevent's monkey patching, never before.
    """

    def __init__(
        self,
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
        if session is None:
            session = PacedSession(
                "cboe.com",
                base_url,
                timeout=timeout,
                limiter=policy.limiter if policy else None,
                reachability=self.reachability,
            )
        self._session = session
        self._fetcher = Fetcher(session, timeout, policy, self.reachability, vendor=VENDOR)
        self._documents: dict[str, CboeDocument] = {}
        self.requests = 0  # documents asked for, retries included

    def expirations(self, symbol: str) -> list[date]:
        """Return the symbol's listed expirations, nearest first."""
        return list(self.document(symbol).expirations)

    def quote(self, symbol: str) -> Quote:
        """Return the underlying's quote, with today's calendar dates when Yahoo's are kept."""
        symbol = normalise(symbol)
        return self._dated(symbol, self.document(symbol).quote)

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one expiration's chain out of the symbol's document."""
        symbol = normalise(symbol)
        chain = self.document(symbol).chain(expiration)
        if chain is None:
            raise EmptyChain(symbol, f"Cboe lists no contracts for {expiration}")
        return self._dated_chain(symbol, chain)

    def document(self, symbol: str) -> CboeDocument:
        """Return the symbol's parsed document, fetching it on first use."""
        symbol = normalise(symbol)
        return self._once(
            symbol,
            self._documents,
            symbol,
            lambda: self._noted(symbol, lambda: self._fetch(symbol)[1]),
        )

    def fetch_raw(self, symbol: str) -> str:
        """Return Cboe's raw document for a symbol, checked, unmemoised (for recording)."""
        response, _ = self._fetch(normalise(symbol))
        return str(response.text)

    def _fetch(self, symbol: str) -> tuple[Any, CboeDocument]:
        url = f"{CBOE_CDN}{options_path(symbol)}"

        def send() -> Any:
            with self._guard:
                self.requests += 1
            return self._session.get(url, timeout=self.timeout)

        return self._fetcher.fetch(symbol, send, _check)
