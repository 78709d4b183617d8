"""The data-source interface every option source implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

import pandas as pd

from optscan.core.market import NEW_YORK
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
    """The underlying's quote as Yahoo reports it alongside an option chain.

    Event times are moments; a day-only event (an ex-dividend date, an estimated earnings
    date) is the start of that day in New York. Never Yahoo's dividendDate: that is the day
    the dividend is paid, days after the stock goes ex-dividend.
    """

    symbol: str
    price: float  # regularMarketPrice, USD
    as_of: datetime  # regularMarketTime, timezone-aware (UTC)
    dividend_yield: float  # FRACTION per year; Yahoo's dividendYield is in percent
    earnings_at: datetime | None = None  # next earnings report, when Yahoo gives one
    ex_dividend_at: datetime | None = None  # 00:00 New York on the ex-dividend date, if known
    market_state: str | None = None  # REGULAR, PRE, POST, POSTPOST, CLOSED
    currency: str | None = None

    @property
    def earnings_date(self) -> date | None:
        """Return the New York date of the next earnings report, if known."""
        return _new_york_date(self.earnings_at)

    @property
    def ex_dividend_date(self) -> date | None:
        """Return the ex-dividend date (New York), if known."""
        return _new_york_date(self.ex_dividend_at)


def _new_york_date(moment: datetime | None) -> date | None:
    return None if moment is None else moment.astimezone(NEW_YORK).date()


def start_of_day(day: date) -> datetime:
    """Return 00:00 New York time on a day, when a day-only event (an ex-date) takes effect."""
    return datetime.combine(day, time(0, 0), tzinfo=NEW_YORK)


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


UNREACHABLE_PREFIX = "Yahoo Finance could not be reached: "


class UnknownSymbol(SourceError):
    """Yahoo does not know the symbol (an empty v7 result, or HTTP 404)."""

    kind = "unknown_symbol"

    def __init__(self, symbol: str):
        super().__init__(symbol, f"Yahoo does not know {symbol}")


class Unreachable(SourceError):
    """Yahoo could not be reached at all (DNS, connect, TLS): no answer of any kind."""

    kind = "unreachable"

    def __init__(self, symbol: str, cause: str):
        super().__init__(symbol, f"{UNREACHABLE_PREFIX}{cause}")
        self.cause = cause


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
