"""Parse and check Yahoo's /v7/finance/options answer (the body yfinance reads too)."""

from __future__ import annotations

import functools
import itertools
import math
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple, TypeGuard

import numpy as np
import orjson

from .base import (
    CHAIN_COLUMNS,
    Chain,
    Contracts,
    MalformedResponse,
    NoOptions,
    Quote,
    SourceError,
    normalise_symbol,
)

# The numeric Contracts fields, in CHAIN_COLUMNS order after contractSymbol.
_NUMERIC_FIELDS = tuple(Contracts.__dataclass_fields__)[1:]
# JSON numbers decode to exactly these types (bool, a subclass of int, is not a number here).
_NUMBER: frozenset[type] = frozenset({int, float})
_NUMBER_OR_NONE: frozenset[type] = frozenset({int, float, type(None)})


class V7Answer(NamedTuple):
    """One v7 body: the underlying's quote, the listed expirations, the chain it carries."""

    quote: Quote
    expirations: list[date]
    chain: Chain | None  # None when the body carries no expiration (options == [])


def expiration_epoch(day: date) -> int:
    """Return the epoch seconds Yahoo uses for an expiration day (00:00 UTC of that day)."""
    return int(datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp())


@functools.lru_cache(maxsize=4096)
def expiration_date(epoch: int) -> date:
    """Return the expiration day of one of Yahoo's expiration epochs (00:00 UTC)."""
    # Cached: every body lists the symbol's expirations again, and symbols share them.
    return datetime.fromtimestamp(epoch, UTC).date()


def load_body(symbol: str, body: str | bytes | dict) -> dict:
    """Return a raw v7 body as a dict, or raise MalformedResponse if it is not a JSON object."""
    if isinstance(body, dict):
        return body
    try:
        # orjson: ~4x json's speed on these bodies, and it refuses NaN and Infinity.
        payload = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise MalformedResponse(symbol, f"answer is not JSON ({_excerpt(body)})") from exc
    if not isinstance(payload, dict):
        raise MalformedResponse(symbol, "answer is JSON but not an object")
    return payload


def result_of(symbol: str, payload: dict) -> dict:
    """Return optionChain.result[0] after checking the whole body's shape.

    Raise MalformedResponse for anything that is not the v7 shape, SourceError for an error
    Yahoo reports inside the body, and NoOptions for an empty result list (what Yahoo sends
    for a symbol it lists no options for, or does not know).
    """
    if "optionChain" not in payload:
        error = (payload.get("finance") or {}).get("error") if "finance" in payload else None
        if isinstance(error, dict):
            raise SourceError(symbol, f"Yahoo error: {_describe_error(error)}")
        raise MalformedResponse(symbol, f"no optionChain in answer (keys: {sorted(payload)[:5]})")
    chain = payload["optionChain"]
    if not isinstance(chain, dict):
        raise MalformedResponse(symbol, "optionChain is not an object")
    if chain.get("error"):
        error = chain["error"]
        detail = _describe_error(error) if isinstance(error, dict) else str(error)
        raise SourceError(symbol, f"Yahoo error: {detail}")
    results = chain.get("result")
    if not isinstance(results, list):
        raise MalformedResponse(symbol, "optionChain.result is not a list")
    if not results:
        raise NoOptions(symbol, "Yahoo returned no result (unknown symbol or no listed options)")
    result = results[0]
    if not isinstance(result, dict):
        raise MalformedResponse(symbol, "optionChain.result[0] is not an object")
    underlying = result.get("underlyingSymbol")
    if isinstance(underlying, str) and underlying.upper() != symbol:
        raise MalformedResponse(symbol, f"answer is for {underlying}, not {symbol}")
    dates = result.get("expirationDates")
    # Integers are the common case, checked at once; whole floats (1.7e9) pass one by one.
    if not isinstance(dates, list) or not (
        set(map(type, dates)) <= {int} or all(_is_int(e) for e in dates)
    ):
        raise MalformedResponse(symbol, "expirationDates is not a list of epoch seconds")
    if not isinstance(result.get("quote"), dict):
        raise MalformedResponse(symbol, "answer has no quote object")
    options = result.get("options", [])
    if not isinstance(options, list):
        raise MalformedResponse(symbol, "options is not a list")
    for option in options[:1]:
        _check_option(symbol, option)
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
    ex_dividend = _epoch_field(symbol, quote, "exDividendDate")
    if ex_dividend is None:
        ex_dividend = _epoch_field(symbol, quote, "dividendDate")
    return Quote(
        symbol=str(quote.get("symbol") or symbol).upper(),
        price=float(price),
        as_of=as_of,
        dividend_yield=float(yield_percent) / 100.0,
        earnings_at=_next_earnings(symbol, quote, as_of),
        ex_dividend_at=ex_dividend,
        market_state=_text_field(quote, "marketState"),
        currency=_text_field(quote, "currency"),
    )


def parse_expirations(result: dict) -> list[date]:
    """Return the listed expirations of a checked result, nearest first, without repeats."""
    return sorted({expiration_date(e) for e in result["expirationDates"]})


def contracts_of(symbol: str, side: str, rows: Any) -> Contracts:
    """Return one side's contracts of a v7 option as arrays, checking every value's type.

    Raise MalformedResponse for a contract that is not an object, has no contractSymbol or
    strike, or holds something other than a number (or null) in a numeric column.
    """
    if not isinstance(rows, list):
        raise MalformedResponse(symbol, f"options[0].{side} is not a list")
    if not {type(row) for row in rows} <= {dict}:
        raise MalformedResponse(symbol, f"a contract in {side} is not an object")
    # One pass over the contracts and one over the columns: type checks over sets of types and
    # one 2-D array, ~10x faster than a check per value. A missing value (None) becomes NaN.
    if not rows:
        return Contracts.of()
    names, *numbers = zip(*(map(row.get, CHAIN_COLUMNS) for row in rows), strict=True)
    if not set(map(type, names)) <= {str}:
        raise MalformedResponse(symbol, f"a contract in {side} has no contractSymbol")
    if not set(map(type, numbers[0])) <= _NUMBER:
        _refuse_column(symbol, names, CHAIN_COLUMNS[1], numbers[0], _NUMBER)
    if not set(map(type, itertools.chain.from_iterable(numbers))) <= _NUMBER_OR_NONE:
        for column, values in zip(CHAIN_COLUMNS[1:], numbers, strict=True):
            _refuse_column(symbol, names, column, values, _NUMBER_OR_NONE)
    table = np.array(numbers, dtype=np.float64).reshape(len(_NUMERIC_FIELDS), len(names))
    # Only a body handed over as a dict (orjson refuses them) can hold inf or NaN here.
    bad = np.isinf(table)
    bad[0] |= np.isnan(table[0])  # a strike is never missing
    if bad.any():
        row, contract = np.argwhere(bad)[0]
        raise MalformedResponse(
            symbol, f"{names[contract]}.{CHAIN_COLUMNS[1 + row]} is not a number"
        )
    return Contracts(names, *table)


def _refuse_column(
    symbol: str, names: tuple[str, ...], column: str, values: tuple, allowed: frozenset[type]
) -> None:
    """Raise MalformedResponse for the first value of a column whose type is not allowed."""
    for name, value in zip(names, values, strict=True):
        if type(value) not in allowed:
            if value is None:
                raise MalformedResponse(symbol, f"{name} has no {column}")
            raise MalformedResponse(symbol, f"{name}.{column} is not a number")


def parse_v7(body: str | bytes | dict, symbol: str) -> V7Answer:
    """Return (quote, expirations, chain or None) of one raw v7 body, checking its shape."""
    symbol = normalise_symbol(symbol)
    return parse_result(symbol, result_of(symbol, load_body(symbol, body)))


def parse_result(symbol: str, result: dict) -> V7Answer:
    """Return (quote, expirations, chain or None) of a result that result_of() has checked."""
    quote = parse_quote(symbol, result["quote"])
    chain = None
    options = result.get("options", [])
    if options:
        option = options[0]
        chain = Chain(
            symbol=symbol,
            expiration=expiration_date(option["expirationDate"]),
            quote=quote,
            calls=contracts_of(symbol, "calls", option.get("calls", [])),
            puts=contracts_of(symbol, "puts", option.get("puts", [])),
        )
    return V7Answer(quote, parse_expirations(result), chain)


def _check_option(symbol: str, option: Any) -> None:
    if not isinstance(option, dict) or not _is_int(option.get("expirationDate")):
        raise MalformedResponse(symbol, "options[0] has no expirationDate")
    for side in ("calls", "puts"):
        if not isinstance(option.get(side, []), list):
            raise MalformedResponse(symbol, f"options[0].{side} is not a list")


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
