"""Parse and check Yahoo's /v7/finance/options answer (the body yfinance reads too).

The body is decoded straight into the typed structs below (msgspec): the decoder checks every
value's type as it goes (a contract's numbers are numbers or null, its strike and symbol are
there) and skips the fields optscan does not read, about 3x faster than decoding to dicts and
checking them after. The checks that are not about types follow in result_of and parse_quote.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, date, datetime, time
from operator import attrgetter
from typing import Any, NamedTuple, TypeGuard

import msgspec
import numpy as np

from .base import (
    CHAIN_COLUMNS,
    Chain,
    Contracts,
    MalformedResponse,
    Quote,
    SourceError,
    UnknownSymbol,
    normalise_symbol,
    start_of_day,
)


class V7Contract(msgspec.Struct, gc=False):
    """One contract as Yahoo sends it (the fields optscan reads, Yahoo's names: CHAIN_COLUMNS)."""

    contractSymbol: str  # Yahoo's field names, as CHAIN_COLUMNS has them
    strike: float
    bid: float | None = None
    ask: float | None = None
    lastPrice: float | None = None
    volume: float | None = None
    openInterest: float | None = None
    impliedVolatility: float | None = None
    delta: float | None = None  # Yahoo sends none: read so that CHAIN_COLUMNS maps one to one


class V7Option(msgspec.Struct):
    """One expiration's calls and puts."""

    expirationDate: int | float
    calls: list[V7Contract] = msgspec.field(default_factory=list)
    puts: list[V7Contract] = msgspec.field(default_factory=list)


class V7Result(msgspec.Struct):
    """optionChain.result[0]: the quote, the listed expirations and at most one chain."""

    quote: dict[str, Any]
    expirationDates: list[int | float]
    underlyingSymbol: str | None = None
    options: list[V7Option] = msgspec.field(default_factory=list)


class V7OptionChain(msgspec.Struct):
    """optionChain: the results, or the error Yahoo reports."""

    result: list[V7Result] | None = None
    error: Any = None


class V7Finance(msgspec.Struct):
    """finance: where Yahoo reports an error instead of an option chain (e.g. a bad crumb)."""

    error: Any = None


class V7Body(msgspec.Struct):
    """A whole v7 answer."""

    optionChain: V7OptionChain | None = None
    finance: V7Finance | None = None


_DECODER = msgspec.json.Decoder(V7Body)
# A contract's numbers in Contracts field order (CHAIN_COLUMNS after contractSymbol).
_NUMBERS = attrgetter(*CHAIN_COLUMNS[1:])
_NAME = attrgetter("contractSymbol")


class V7Answer(NamedTuple):
    """One v7 body: the underlying's quote, the listed expirations, the chain it carries."""

    quote: Quote
    expirations: list[date]
    chain: Chain | None  # None when the body carries no expiration (options == [])


def expiration_epoch(day: date) -> int:
    """Return the epoch seconds Yahoo uses for an expiration day (00:00 UTC of that day)."""
    return int(datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp())


@functools.lru_cache(maxsize=4096)
def expiration_date(epoch: int | float) -> date:
    """Return the expiration day of one of Yahoo's expiration epochs (00:00 UTC)."""
    # Cached: every body lists the symbol's expirations again, and symbols share them.
    return datetime.fromtimestamp(epoch, UTC).date()


def load_json(symbol: str, body: str | bytes) -> Any:
    """Return any JSON body as plain data, or raise MalformedResponse if it is not JSON."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, TypeError) as exc:
        raise MalformedResponse(symbol, f"answer is not JSON ({_excerpt(body)})") from exc


def load_body(symbol: str, body: str | bytes | dict) -> V7Body:
    """Return a raw v7 body decoded and type-checked, or raise MalformedResponse."""
    try:
        if isinstance(body, dict):
            return msgspec.convert(body, V7Body)
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedResponse(symbol, f"answer is not the v7 shape: {exc}") from exc
    except (msgspec.DecodeError, TypeError) as exc:
        raise MalformedResponse(symbol, f"answer is not JSON ({_excerpt(body)})") from exc


def result_of(symbol: str, payload: V7Body) -> V7Result:
    """Return optionChain.result[0] after checking what the types alone do not.

    Raise MalformedResponse for anything that is not the v7 shape, SourceError for an error
    Yahoo reports inside the body, and UnknownSymbol for an empty result list.
    """
    chain = payload.optionChain
    if chain is None:
        error = payload.finance.error if payload.finance is not None else None
        if isinstance(error, dict):
            raise SourceError(symbol, f"Yahoo error: {_describe_error(error)}")
        raise MalformedResponse(symbol, "no optionChain in answer")
    if chain.error:
        detail = _describe_error(chain.error) if isinstance(chain.error, dict) else chain.error
        raise SourceError(symbol, f"Yahoo error: {detail}")
    if chain.result is None:
        raise MalformedResponse(symbol, "optionChain.result is not a list")
    if not chain.result:
        # What Yahoo answers for a symbol it does not know; one it knows without options
        # (BTC-USD) gets a result with a quote and no expirations.
        raise UnknownSymbol(symbol)
    result = chain.result[0]
    underlying = result.underlyingSymbol
    if underlying is not None and underlying.upper() != symbol:
        raise MalformedResponse(symbol, f"answer is for {underlying}, not {symbol}")
    dates = result.expirationDates
    # Integers, the usual case, are checked at once; whole floats (1.7e9) one by one.
    if not (set(map(type, dates)) <= {int} or all(_is_int(e) for e in dates)):
        raise MalformedResponse(symbol, "expirationDates is not a list of epoch seconds")
    for option in result.options[:1]:
        if not _is_int(option.expirationDate):
            raise MalformedResponse(symbol, "options[0] has no expirationDate")
    return result


def parse_quote(symbol: str, quote: dict) -> Quote:
    """Return the Quote of a v7 quote object (dividendYield percent -> fraction)."""
    price = quote.get("regularMarketPrice")
    if not _is_number(price) or not price > 0:
        raise MalformedResponse(symbol, f"quote has no positive regularMarketPrice ({price!r})")
    captured = quote.get("regularMarketTime")
    if not _is_int(captured):
        raise MalformedResponse(symbol, f"quote has no regularMarketTime ({captured!r})")
    as_of = datetime.fromtimestamp(captured, UTC)
    yield_percent = quote.get("dividendYield", 0.0)
    if yield_percent is None:
        yield_percent = 0.0
    if not _is_number(yield_percent) or yield_percent < 0:
        raise MalformedResponse(symbol, f"quote has a bad dividendYield ({yield_percent!r})")
    # Day-only epochs (00:00 UTC of the day). dividendDate is the payment date: never the ex-date.
    ex_dividend = _epoch_field(symbol, quote, "exDividendDate")
    return Quote(
        symbol=str(quote.get("symbol") or symbol).upper(),
        price=float(price),
        as_of=as_of,
        dividend_yield=float(yield_percent) / 100.0,
        earnings_at=_next_earnings(symbol, quote, as_of),
        ex_dividend_at=None if ex_dividend is None else start_of_day(ex_dividend.date()),
        market_state=_text_field(quote, "marketState"),
        currency=_text_field(quote, "currency"),
        source="yahoo",
    )


def parse_expirations(result: V7Result) -> list[date]:
    """Return the listed expirations of a checked result, nearest first, without repeats."""
    return sorted({expiration_date(e) for e in result.expirationDates})


def contracts_of(symbol: str, contracts: list[V7Contract]) -> Contracts:
    """Return decoded contracts as arrays (a missing number becomes NaN)."""
    if not contracts:
        return Contracts.of()
    # One C-level pass over the contracts: a tuple of numbers each, then one 2-D array.
    table = np.array(list(map(_NUMBERS, contracts)), dtype=np.float64).T.copy()
    names = tuple(map(_NAME, contracts))
    # Only a body handed over as data (msgspec.convert) can hold inf or NaN: JSON cannot.
    bad = np.isinf(table)
    bad[0] |= np.isnan(table[0])  # a strike is never missing
    if bad.any():
        row, contract = np.argwhere(bad)[0]
        raise MalformedResponse(
            symbol, f"{names[contract]}.{CHAIN_COLUMNS[1 + row]} is not a number"
        )
    return Contracts(names, *table)


def parse_v7(body: str | bytes | dict, symbol: str) -> V7Answer:
    """Return (quote, expirations, chain or None) of one raw v7 body, checking its shape."""
    symbol = normalise_symbol(symbol)
    return parse_result(symbol, result_of(symbol, load_body(symbol, body)))


def parse_result(symbol: str, result: V7Result) -> V7Answer:
    """Return (quote, expirations, chain or None) of a result that result_of() has checked."""
    quote = parse_quote(symbol, result.quote)
    chain = None
    if result.options:
        option = result.options[0]
        chain = Chain(
            symbol=symbol,
            expiration=expiration_date(option.expirationDate),
            quote=quote,
            calls=contracts_of(symbol, option.calls),
            puts=contracts_of(symbol, option.puts),
        )
    return V7Answer(quote, parse_expirations(result), chain)


def _next_earnings(symbol: str, quote: dict, as_of: datetime) -> datetime | None:
    # earningsTimestamp is often the report just past (AAPL on 2025-02-21 still shows its
    # 2025-01-30 report) while earningsTimestampStart opens the next estimated window: take
    # the earliest of them that is not before the capture.
    candidates = [
        moment
        for field in ("earningsTimestamp", "earningsTimestampStart")
        if (moment := _epoch_field(symbol, quote, field)) is not None and moment >= as_of
    ]
    return min(candidates, default=None)


def _epoch_field(symbol: str, quote: dict, field: str) -> datetime | None:
    value = quote.get(field)
    if value is None:
        return None
    if not _is_int(value):
        raise MalformedResponse(symbol, f"quote.{field} is not epoch seconds ({value!r})")
    return datetime.fromtimestamp(value, UTC)


def _text_field(quote: dict, field: str) -> str | None:
    value = quote.get(field)
    return value if isinstance(value, str) and value else None


def _describe_error(error: dict) -> str:
    code, description = error.get("code"), error.get("description")
    return ": ".join(str(part) for part in (code, description) if part) or "unspecified"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> TypeGuard[int | float]:
    # Yahoo's epochs are integers; accept 1.7e9-style floats that are whole.
    return _is_number(value) and float(value).is_integer()


def _excerpt(body: Any, limit: int = 60) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
