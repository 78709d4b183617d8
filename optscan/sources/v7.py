"""Parse and check Yahoo's /v7/finance/options answer (the body yfinance reads too)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .base import (
    CHAIN_COLUMNS,
    Chain,
    MalformedResponse,
    Quote,
    SourceError,
    UnknownSymbol,
    normalise_symbol,
    start_of_day,
)

# The numeric chain columns; contractSymbol is the only text column.
_NUMERIC_COLUMNS = tuple(c for c in CHAIN_COLUMNS if c != "contractSymbol")


class V7Answer(NamedTuple):
    """One v7 body: the underlying's quote, the listed expirations, the chain it carries."""

    quote: Quote
    expirations: list[date]
    chain: Chain | None  # None when the body carries no expiration (options == [])


def expiration_epoch(day: date) -> int:
    """Return the epoch seconds Yahoo uses for an expiration day (00:00 UTC of that day)."""
    return int(datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp())


def expiration_date(epoch: int) -> date:
    """Return the expiration day of one of Yahoo's expiration epochs (00:00 UTC)."""
    return datetime.fromtimestamp(epoch, UTC).date()


def load_body(symbol: str, body: str | bytes | dict) -> dict:
    """Return a raw v7 body as a dict, or raise MalformedResponse if it is not a JSON object."""
    if isinstance(body, dict):
        return body
    try:
        payload = json.loads(body)
    except (ValueError, TypeError) as exc:
        raise MalformedResponse(symbol, f"answer is not JSON ({_excerpt(body)})") from exc
    if not isinstance(payload, dict):
        raise MalformedResponse(symbol, "answer is JSON but not an object")
    return payload


def result_of(symbol: str, payload: dict) -> dict:
    """Return optionChain.result[0] after checking the whole body's shape.

    Raise MalformedResponse for anything that is not the v7 shape, SourceError for an error
    Yahoo reports inside the body, and UnknownSymbol for an empty result list.
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
        # What Yahoo answers for a symbol it does not know; one it knows without options
        # (BTC-USD) gets a result with a quote and no expirations.
        raise UnknownSymbol(symbol)
    result = results[0]
    if not isinstance(result, dict):
        raise MalformedResponse(symbol, "optionChain.result[0] is not an object")
    underlying = result.get("underlyingSymbol")
    if isinstance(underlying, str) and underlying.upper() != symbol:
        raise MalformedResponse(symbol, f"answer is for {underlying}, not {symbol}")
    dates = result.get("expirationDates")
    if not isinstance(dates, list) or not all(_is_int(e) for e in dates):
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
    )


def parse_expirations(result: dict) -> list[date]:
    """Return the listed expirations of a checked result, nearest first, without repeats."""
    return sorted({expiration_date(e) for e in result["expirationDates"]})


def chain_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Return contracts as a frame of exactly CHAIN_COLUMNS (floats, NaN where Yahoo omits)."""
    if isinstance(rows, pd.DataFrame):
        frame = rows.reindex(columns=list(CHAIN_COLUMNS))
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        out["contractSymbol"] = frame["contractSymbol"].astype(str).to_numpy()
        for column in _NUMERIC_COLUMNS:
            out[column] = pd.to_numeric(frame[column], errors="raise").astype("float64").to_numpy()
        return out
    # Column by column from the contracts: ~10x faster than a frame of dicts, which matters
    # when a scan parses a chain per request. float64 arrays turn a missing value into NaN.
    columns: dict[str, np.ndarray] = {
        "contractSymbol": np.array([str(row.get("contractSymbol")) for row in rows], dtype=object)
    }
    for column in _NUMERIC_COLUMNS:
        columns[column] = np.array([row.get(column) for row in rows], dtype=np.float64)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)), columns=list(CHAIN_COLUMNS))


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
            calls=chain_frame(option.get("calls", [])),
            puts=chain_frame(option.get("puts", [])),
        )
    return V7Answer(quote, parse_expirations(result), chain)


def _check_option(symbol: str, option: Any) -> None:
    if not isinstance(option, dict) or not _is_int(option.get("expirationDate")):
        raise MalformedResponse(symbol, "options[0] has no expirationDate")
    for side in ("calls", "puts"):
        contracts = option.get(side, [])
        if not isinstance(contracts, list):
            raise MalformedResponse(symbol, f"options[0].{side} is not a list")
        for contract in contracts:
            if not isinstance(contract, dict):
                raise MalformedResponse(symbol, f"a contract in {side} is not an object")
            if not isinstance(contract.get("contractSymbol"), str):
                raise MalformedResponse(symbol, f"a contract in {side} has no contractSymbol")
            if not _is_number(contract.get("strike")):
                raise MalformedResponse(symbol, f"{contract['contractSymbol']} has no strike")
            for column in _NUMERIC_COLUMNS:
                value = contract.get(column)
                if value is not None and not _is_number(value):
                    raise MalformedResponse(
                        symbol, f"{contract['contractSymbol']}.{column} is not a number"
                    )


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    # Yahoo's epochs are integers; accept 1.7e9-style floats that are whole.
    return _is_number(value) and float(value).is_integer()


def _excerpt(body: Any, limit: int = 60) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
