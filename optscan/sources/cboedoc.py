"""Parse and check Cboe's delayed-quotes option document: one underlying, every expiration.

The body (cdn.cboe.com/api/global/delayed_quotes/options/<SYMBOL>.json, indices with a leading
underscore) is {timestamp, symbol, data: {the underlying's quote..., options: [...]}}. Each
contract names itself by its OCC symbol (occ.py); the fields read here map onto Contracts:
bid, ask (0: none quoted, as Yahoo), last_trade_price (only with a last_trade_time), volume,
open_interest, iv (a FRACTION; 0 where Cboe has none: NaN here) and delta (kept as sent).
The underlying's iv30 is in PERCENT (28.96): Quote.iv30 holds it as a fraction.

Time zones, neither stated in the body, established from the data (tests/test_sources_cboe.py):
- last_trade_time (the underlying's and each contract's) is New York wall time: in the AAPL
  document captured after the close of 2026-07-24, every contract traded that day last traded
  between 09:30:02 and 15:59:59, exactly the regular session read in New York (read as UTC
  they would start at 05:30 New York, before any option trades), and the underlying's last
  trade is 15:59:59, the close.
- timestamp is UTC: the same document's timestamp is 2026-07-25 03:44:38 and the CDN's
  Last-Modified header for it was Sat, 25 Jul 2026 03:44:50 GMT (openbb-cboe 2.0.0's test
  cassette), 12 s later. OpenBB's fetcher ignores timestamp and leaves last_trade_time naive.
The quote's as_of (the capture time every figure is computed from, as Yahoo's
regularMarketTime) is the underlying's last trade; without one, the latest contract trade;
without any, timestamp. A document whose trades lie after its own timestamp is refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

import msgspec
import numpy as np
from numpy.typing import NDArray

from optscan.core.market import NEW_YORK

from .base import Chain, Contracts, MalformedResponse, NoOptions, Quote
from .occ import INDEX_ROOTS, OccReader, roots_of
from .v7 import load_json

__all__ = ["CboeDocument", "cboe_name", "parse_cboe"]

# Cboe's `timestamp` lags the trades it carries by at most the 15-minute delay; this is the
# slack allowed before a trade "after" the timestamp makes the zones above wrong.
_CLOCK_SLACK_SECONDS = 60


class CboeOption(msgspec.Struct, gc=False):
    """One contract as Cboe sends it (the fields optscan reads)."""

    option: str
    bid: float | None = None
    ask: float | None = None
    iv: float | None = None
    open_interest: float | None = None
    volume: float | None = None
    delta: float | None = None
    last_trade_price: float | None = None
    last_trade_time: str | None = None


class CboeData(msgspec.Struct):
    """data: the underlying's quote and its options."""

    symbol: str
    current_price: float | None = None
    iv30: float | None = None
    last_trade_time: str | None = None
    options: list[CboeOption] = msgspec.field(default_factory=list)


class CboeBody(msgspec.Struct):
    """A whole delayed-quotes options document."""

    data: CboeData
    timestamp: str | None = None
    symbol: str | None = None


_DECODER = msgspec.json.Decoder(CboeBody)


def cboe_name(symbol: str) -> str:
    """Return Cboe's name of an underlying: ^SPX and SPX -> _SPX, BRK-B -> BRK.B, AAPL -> AAPL."""
    base = symbol.upper().lstrip("^_")
    index = symbol.startswith(("^", "_")) or base in INDEX_ROOTS
    return f"_{base}" if index else base.replace("-", ".")


@dataclass(frozen=True, eq=False)
class CboeDocument:
    """One parsed document: the quote, and the kept contracts sorted by expiration, side, strike."""

    symbol: str
    quote: Quote
    published: datetime | None  # `timestamp`, UTC
    expirations: list[date]
    skipped: Counter[str]  # contracts not kept, by reason ("root AMD1", "not OCC")
    total: int  # contracts in the document
    _slices: dict[tuple[date, bool], slice]  # (expiration, is_call) -> rows
    _names: tuple[str, ...]
    _columns: NDArray[np.float64]  # one row per Contracts float field, one column per contract

    def chain(self, expiration: date) -> Chain | None:
        """Return one expiration's chain, or None when the document lists no contract for it."""
        calls = self._side(expiration, True)
        puts = self._side(expiration, False)
        if calls.empty and puts.empty:
            return None
        return Chain(self.symbol, expiration, self.quote, calls, puts)

    def _side(self, expiration: date, is_call: bool) -> Contracts:
        rows = self._slices.get((expiration, is_call))
        if rows is None:
            return Contracts.of()
        return Contracts(self._names[rows], *self._columns[:, rows])


def parse_cboe(body: str | bytes, symbol: str) -> CboeDocument:
    """Return the parsed document for `symbol` (optscan's form), or raise a SourceError."""
    try:
        parsed = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedResponse(symbol, f"answer is not Cboe's options shape: {exc}") from exc
    except msgspec.DecodeError:
        load_json(symbol, body)  # raises MalformedResponse naming what came instead of JSON
        raise
    data = parsed.data
    if data.symbol.upper().lstrip("^_") != symbol.upper().lstrip("^_").replace("-", "."):
        raise MalformedResponse(symbol, f"answer is for {data.symbol}, not {symbol}")
    if not data.options:
        raise NoOptions(symbol, "Cboe lists no options")
    published = _utc(symbol, parsed.timestamp)
    kept, skipped = _kept(data.options, roots_of(symbol))
    if not kept:
        raise NoOptions(symbol, f"Cboe lists no standard options ({_describe(skipped)})")
    as_of = _as_of(symbol, data, kept, published)
    price = data.current_price
    if price is None or not price > 0:
        raise MalformedResponse(symbol, f"data has no positive current_price ({price!r})")
    iv30 = data.iv30
    quote = Quote(
        symbol=symbol,
        price=float(price),
        as_of=as_of,
        dividend_yield=0.0,  # Cboe sends none; the chain's own forward carries dividends
        currency="USD",
        source="cboe",
        iv30=float(iv30) / 100.0 if iv30 is not None and iv30 > 0 else None,
    )
    return _document(symbol, quote, published, kept, skipped, len(data.options))


def _kept(
    options: list[CboeOption], roots: tuple[str, ...]
) -> tuple[list[tuple[date, bool, float, CboeOption]], Counter[str]]:
    """Return the contracts of the wanted roots (per expiration the most wanted root only)."""
    skipped: Counter[str] = Counter()
    by_root: dict[str, list[tuple[date, bool, float, CboeOption]]] = {}
    reader = OccReader()
    for option in options:
        parts = reader.read(option.option)
        if parts is None:
            skipped["not an OCC symbol"] += 1
            continue
        root, expiration, is_call, strike = parts
        if root not in roots:
            skipped[f"root {root}"] += 1
            continue
        by_root.setdefault(root, []).append((expiration, is_call, strike, option))
    kept: list[tuple[date, bool, float, CboeOption]] = []
    listed: set[date] = set()
    for root in roots:
        entries = by_root.get(root, [])
        mine = {e[0] for e in entries} - listed
        for entry in entries:
            if entry[0] in mine:
                kept.append(entry)
            else:  # the expiration is served by a more wanted root
                skipped[f"root {root}"] += 1
        listed |= mine
    return kept, skipped


def _document(
    symbol: str,
    quote: Quote,
    published: datetime | None,
    kept: list[tuple[date, bool, float, CboeOption]],
    skipped: Counter[str],
    total: int,
) -> CboeDocument:
    # Calls and puts of an expiration in strike order, as Yahoo lists them.
    kept.sort(key=lambda e: (e[0], not e[1], e[2]))
    names = tuple(e[3].option for e in kept)
    columns = np.array(
        [
            (
                strike,
                o.bid,
                o.ask,
                o.last_trade_price if o.last_trade_time is not None else None,
                o.volume,
                o.open_interest,
                o.iv if o.iv is not None and o.iv > 0 else None,
                o.delta,
            )
            for _, _, strike, o in kept
        ],
        dtype=np.float64,  # None becomes NaN
    ).T.copy()
    if np.isinf(columns).any():
        raise MalformedResponse(symbol, "a contract holds an infinite number")
    slices: dict[tuple[date, bool], slice] = {}
    start = 0
    for i in range(1, len(kept) + 1):
        if i == len(kept) or kept[i][:2] != kept[start][:2]:
            slices[(kept[start][0], kept[start][1])] = slice(start, i)
            start = i
    return CboeDocument(
        symbol=symbol,
        quote=quote,
        published=published,
        expirations=sorted({e[0] for e in kept}),
        skipped=skipped,
        total=total,
        _slices=slices,
        _names=names,
        _columns=columns,
    )


def _as_of(
    symbol: str,
    data: CboeData,
    kept: list[tuple[date, bool, float, CboeOption]],
    published: datetime | None,
) -> datetime:
    traded = _new_york(symbol, data.last_trade_time)
    if traded is None:
        times = [o.last_trade_time for _, _, _, o in kept if o.last_trade_time]
        traded = _new_york(symbol, max(times)) if times else None  # ISO text sorts by time
    if traded is None:
        if published is None:
            raise MalformedResponse(symbol, "the document has no trade time and no timestamp")
        return published
    if published is not None and (traded - published).total_seconds() > _CLOCK_SLACK_SECONDS:
        raise MalformedResponse(
            symbol, f"last trade {traded.isoformat()} is after the timestamp {published}"
        )
    return traded.astimezone(UTC)


def _new_york(symbol: str, text: str | None) -> datetime | None:
    """Return a last_trade_time (New York wall time, no zone) as an aware datetime."""
    return _aware(symbol, "last_trade_time", text, NEW_YORK)


def _utc(symbol: str, text: str | None) -> datetime | None:
    """Return the document's timestamp (UTC, no zone) as an aware datetime."""
    return _aware(symbol, "timestamp", text, UTC)


def _aware(symbol: str, name: str, text: str | None, zone: tzinfo) -> datetime | None:
    """Return an ISO time the document wrote without a zone as one in the given zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedResponse(symbol, f"{name} is not a time ({text!r})") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _describe(skipped: Counter[str]) -> str:
    return ", ".join(f"{count} of {reason}" for reason, count in skipped.most_common(3))
