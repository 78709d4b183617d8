"""The data-source interface every option source implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from optscan.core.market import NEW_YORK
from optscan.core.symbols import InvalidSymbol, normalize_symbol

if TYPE_CHECKING:
    import pandas as pd

# The source's name of each Contracts field, in field order: what frame() shows. Yahoo v7's
# names; Yahoo sends no delta (always NaN there), Cboe does.
CHAIN_COLUMNS = (
    "contractSymbol",
    "strike",
    "bid",
    "ask",
    "lastPrice",
    "volume",
    "openInterest",
    "impliedVolatility",
    "delta",
)


@dataclass(frozen=True)
class Quote:
    """The underlying's quote as the source reports it alongside an option chain.

    Event times are moments; a day-only event (an ex-dividend date, an estimated earnings
    date) is the start of that day in New York. Never Yahoo's dividendDate: that is the day
    the dividend is paid, days after the stock goes ex-dividend. source names the vendor
    whose data it is ("yahoo", "cboe"); passed_over says which sources failed before it
    and why ("yahoo: rate_limited: ..."), when a fallback served it.
    """

    symbol: str
    price: float  # regularMarketPrice, USD
    as_of: datetime  # regularMarketTime, timezone-aware (UTC)
    dividend_yield: float  # FRACTION per year; Yahoo's dividendYield is in percent
    earnings_at: datetime | None = None  # next earnings report, when Yahoo gives one
    ex_dividend_at: datetime | None = None  # 00:00 New York on the ex-dividend date, if known
    market_state: str | None = None  # REGULAR, PRE, POST, POSTPOST, CLOSED
    currency: str | None = None
    source: str | None = None  # the vendor of the data: "yahoo" or "cboe"
    iv30: float | None = None  # the vendor's 30-day IV of the underlying, FRACTION per year
    passed_over: tuple[str, ...] = ()  # "<source>: <kind>: <message>" of each source that failed

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


@dataclass(frozen=True, eq=False)
class Contracts:
    """One side of one expiration as parallel arrays, one entry per contract.

    Units: strike USD; bid, ask, last USD per share; volume and open_interest contracts;
    vendor_iv the source's own implied volatility, a FRACTION per year (unreliable);
    vendor_delta the source's own delta (Cboe's; Yahoo sends none). Every float array holds
    NaN where the source gave no value; vendor_delta may be left out (all NaN).
    """

    contract: tuple[str, ...]  # OCC contract symbols
    strike: NDArray[np.float64]
    bid: NDArray[np.float64]
    ask: NDArray[np.float64]
    last: NDArray[np.float64]
    volume: NDArray[np.float64]
    open_interest: NDArray[np.float64]
    vendor_iv: NDArray[np.float64]
    vendor_delta: NDArray[np.float64] = None  # type: ignore[assignment]  # None: all NaN

    def __post_init__(self) -> None:
        if self.vendor_delta is None:
            object.__setattr__(self, "vendor_delta", np.full(len(self.contract), np.nan))
        sizes = {len(getattr(self, name)) for name in _FIELDS}
        if len(sizes) > 1:
            raise ValueError(f"contract arrays of different lengths: {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.contract)

    @property
    def empty(self) -> bool:
        """Return True when the side holds no contract."""
        return not self.contract

    @classmethod
    def of(cls, contract: Sequence[str] = (), **arrays: ArrayLike) -> Contracts:
        """Return contracts from their symbols and float columns (a missing column is all NaN)."""
        n = len(contract)
        unknown = set(arrays) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown contract fields: {sorted(unknown)}")
        columns = {
            name: np.asarray(arrays[name], dtype=np.float64)
            if name in arrays
            else np.full(n, np.nan)
            for name in _FIELDS[1:]
        }
        return cls(tuple(contract), **columns)

    def take(self, index: ArrayLike) -> Contracts:
        """Return the contracts at index (positions or a boolean mask), in that order."""
        chosen = np.asarray(index)
        if chosen.dtype != bool:
            chosen = chosen.astype(np.intp)  # an empty list arrives as floats
        positions = np.arange(len(self))[chosen]
        return Contracts(
            tuple(self.contract[i] for i in positions),
            *(getattr(self, name)[positions] for name in _FIELDS[1:]),
        )

    def frame(self) -> pd.DataFrame:
        """Return the contracts as a DataFrame with the source's column names (CHAIN_COLUMNS)."""
        import pandas as pd

        data = {
            column: getattr(self, name) for column, name in zip(CHAIN_COLUMNS, _FIELDS, strict=True)
        }
        data["contractSymbol"] = np.array(self.contract, dtype=object)
        return pd.DataFrame(data, columns=list(CHAIN_COLUMNS))


_FIELDS = tuple(f.name for f in fields(Contracts))


@dataclass(frozen=True)
class Chain:
    """One expiration's calls and puts with the quote they were captured with."""

    symbol: str
    expiration: date
    quote: Quote
    calls: Contracts
    puts: Contracts


class SourceError(Exception):
    """A source could not answer for a symbol; `kind` says why in one word."""

    kind = "error"

    def __init__(self, symbol: str, message: str):
        super().__init__(f"{symbol}: {message}")
        self.symbol = symbol
        self.message = message

    def reworded(self, message: str) -> SourceError:
        """Return the same error (class, kind, attributes) with another message."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        Exception.__init__(copy, f"{self.symbol}: {message}")
        copy.message = message
        return copy


class NoOptions(SourceError):
    """The symbol exists but lists no options."""

    kind = "no_options"


class UnknownSymbol(SourceError):
    """The vendor does not know the symbol (Yahoo: an empty v7 result or HTTP 404)."""

    kind = "unknown_symbol"

    def __init__(self, symbol: str, vendor: str = "Yahoo"):
        super().__init__(symbol, f"{vendor} does not know {symbol}")


class Unreachable(SourceError):
    """The vendor could not be reached at all (DNS, connect, TLS): no answer of any kind."""

    kind = "unreachable"

    def __init__(self, symbol: str, cause: str, vendor: str = "Yahoo Finance"):
        super().__init__(symbol, f"{vendor} could not be reached: {cause}")
        self.cause = cause


class RateLimited(SourceError):
    """The vendor answered 429 Too Many Requests."""

    kind = "rate_limited"


class MalformedResponse(SourceError):
    """The vendor answered with a body that is not the shape its API sends."""

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
