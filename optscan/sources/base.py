"""The data-source interface every option source implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import pandas as pd

from optscan.core.symbols import InvalidSymbol, normalize_symbol

# Columns every source puts in Chain.calls / Chain.puts, with these units:
#   contractSymbol (str), strike (USD), bid / ask / lastPrice (USD per share, NaN when Yahoo
#   omits them), volume / openInterest (contracts, NaN when omitted),
#   impliedVolatility (Yahoo's own figure, FRACTION per year, unreliable).
CHAIN_COLUMNS = (
    "contractSymbol",
    "strike",
    "bid",
    "ask",
    "lastPrice",
    "volume",
    "openInterest",
    "impliedVolatility",
)


@dataclass(frozen=True)
class Quote:
    """The underlying's quote as Yahoo reports it alongside an option chain."""

    symbol: str
    price: float  # regularMarketPrice, USD
    as_of: datetime  # regularMarketTime, timezone-aware (UTC)
    dividend_yield: float  # FRACTION per year; Yahoo's dividendYield is in percent
    earnings_at: datetime | None = None  # next earningsTimestamp (UTC), when given
    ex_dividend_at: datetime | None = None  # exDividendDate, else dividendDate (UTC)
    market_state: str | None = None  # REGULAR, PRE, POST, POSTPOST, CLOSED
    currency: str | None = None


@dataclass(frozen=True)
class Chain:
    """One expiration's calls and puts with the quote they were captured with."""

    symbol: str
    expiration: date
    quote: Quote
    calls: pd.DataFrame  # CHAIN_COLUMNS
    puts: pd.DataFrame  # CHAIN_COLUMNS


class SourceError(Exception):
    """A source could not answer for a symbol; `kind` says why in one word."""

    kind = "error"

    def __init__(self, symbol: str, message: str):
        super().__init__(f"{symbol}: {message}")
        self.symbol = symbol
        self.message = message


class NoOptions(SourceError):
    """The symbol exists but lists no options."""

    kind = "no_options"


class RateLimited(SourceError):
    """Yahoo answered 429 Too Many Requests."""

    kind = "rate_limited"


class MalformedResponse(SourceError):
    """Yahoo answered with a body that is not the v7 option-chain shape."""

    kind = "malformed"


class EmptyChain(SourceError):
    """Yahoo answered an expiration with no contracts (yfinance's form of an HTTP 500)."""

    kind = "empty"


class OptionSource(Protocol):
    """Expirations, chains and quotes for a symbol, from wherever they come."""

    def expirations(self, symbol: str) -> list[date]:
        """Return the symbol's listed expirations, nearest first."""
        ...

    def chain(self, symbol: str, expiration: date) -> Chain:
        """Return one expiration's chain."""
        ...

    def quote(self, symbol: str) -> Quote:
        """Return the underlying's quote."""
        ...


def normalise_symbol(symbol: object) -> str:
    """Return the symbol upper-cased, or raise SourceError if it is not a ticker symbol."""
    try:
        return normalize_symbol(symbol)
    except InvalidSymbol:
        raise SourceError(str(symbol), "not a ticker symbol") from None
