"""The records a scan produces: one Match per contract kept, one SymbolReport per symbol.

`Match` is the one definition of a result row. Its fields, in table order, carry their unit
and presentation in `Annotated` metadata; JSON, CSV, the HTML table, the terminal table and the
live rows all derive from `COLUMNS`, so adding a column is one edit here.

Units: names ending in `_pct` and `annualized_*` are PERCENT (52.1 = 52.1 %); `iv` and
`pop_otm` are FRACTIONS; prices are USD per share unless the column says per contract;
dates are New York calendar dates in ISO form; `dte` counts calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, TypedDict, get_type_hints

Side = Literal["put", "call"]
SIDES: tuple[Side, ...] = ("put", "call")
SIDE_WORDS: dict[str, str] = {"put": "puts", "call": "calls"}

# Symbol statuses that produced rows; any other status is a failure, "pending" is not yet done.
OK_STATUSES = ("ok", "partial")
PENDING = "pending"

# How a value is shown: text, date, int, count (thousands separators), money (2 decimals),
# percent (a PERCENT, 1 decimal), fraction (a FRACTION shown as a percent), delta (3 decimals),
# ratio (2 decimals), flags (badges).
Kind = Literal[
    "text", "date", "int", "count", "money", "percent", "fraction", "delta", "ratio", "flags"
]


@dataclass(frozen=True)
class Column:
    """How one Match field is labelled, explained and shown."""

    label: str
    kind: Kind
    title: str  # the explanation, with its unit
    table: bool = True  # shown in the page's table
    text: bool = True  # shown in the terminal table
    name: str = ""  # filled in from the field name


class Match(TypedDict):
    """One contract that passed the rules (a row of the results)."""

    symbol: Annotated[str, Column("Symbol", "text", "Underlying symbol")]
    side: Annotated[Side, Column("Side", "text", "put or call", table=False, text=False)]
    contract: Annotated[
        str | None, Column("Contract", "text", "OCC contract symbol", table=False, text=False)
    ]
    expiration: Annotated[str, Column("Expiry", "date", "Expiration date (New York)")]
    dte: Annotated[int, Column("DTE", "int", "Calendar days to expiration (New York dates)")]
    strike: Annotated[float, Column("Strike", "money", "Strike price, USD")]
    bid: Annotated[float | None, Column("Bid", "money", "Bid, USD per share")]
    ask: Annotated[float | None, Column("Ask", "money", "Ask, USD per share")]
    mid: Annotated[float | None, Column("Mid", "money", "Mid price, USD per share", table=False)]
    spread_pct: Annotated[
        float | None,
        Column("Spread %", "percent", "Bid-ask spread, percent of mid", table=False, text=False),
    ]
    otm_pct: Annotated[
        float, Column("% OTM", "percent", "How far out of the money, percent of the spot price")
    ]
    annualized_return: Annotated[
        float, Column("Ann. %", "percent", "Annualized return: bid / strike x 365 / DTE, percent")
    ]
    delta: Annotated[float | None, Column("Delta", "delta", "Delta from the IV solved at mid")]
    iv: Annotated[
        float | None, Column("IV %", "fraction", "Implied volatility solved from the mid price")
    ]
    pop_otm: Annotated[
        float | None,
        Column(
            "POP %",
            "fraction",
            "Risk-neutral probability of expiring out of the money",
            table=False,
            text=False,
        ),
    ]
    vendor_iv: Annotated[
        float | None,
        Column(
            "Vendor IV %",
            "fraction",
            "The source's own implied volatility (Cboe's or Yahoo's), for comparison",
            table=False,
            text=False,
        ),
    ]
    vendor_delta: Annotated[
        float | None,
        Column(
            "Vendor delta",
            "delta",
            "The source's own delta (Cboe's; Yahoo sends none), for comparison",
            table=False,
            text=False,
        ),
    ]
    open_interest: Annotated[int | None, Column("OI", "count", "Open interest, contracts")]
    volume: Annotated[int | None, Column("Volume", "count", "Volume today, contracts")]
    breakeven: Annotated[
        float | None, Column("Break-even", "money", "Break-even price: strike -/+ bid, USD")
    ]
    flags: Annotated[list[str], Column("Flags", "flags", "Warnings about this contract")]
    forward: Annotated[
        float | None,
        Column(
            "Forward",
            "money",
            "Forward price the IV, delta and POP were priced on: implied by the chain's"
            " put-call parity, or spot carried at the rate less the dividend yield"
            " (flag forward_fallback), USD per share",
            table=False,
            text=False,
        ),
    ]


def _columns() -> tuple[Column, ...]:
    hints = get_type_hints(Match, include_extras=True)
    found = []
    for name, hint in hints.items():
        meta = next(m for m in hint.__metadata__ if isinstance(m, Column))
        found.append(Column(meta.label, meta.kind, meta.title, meta.table, meta.text, name=name))
    return tuple(found)


COLUMNS: tuple[Column, ...] = _columns()
MATCH_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
# Fields that hold whole numbers (JSON may carry them as floats).
INTEGER_FIELDS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.kind in ("int", "count"))


def failed_symbols(symbols: dict[str, Any]) -> dict[str, str]:
    """Return {symbol: reason} for the symbols of a result (reports or their dicts) that failed."""
    failed: dict[str, str] = {}
    for symbol, report in symbols.items():
        status = report.get("status") if isinstance(report, dict) else report.status
        error = report.get("error") if isinstance(report, dict) else report.error
        if status not in OK_STATUSES and status != PENDING:
            failed[symbol] = str(error or status)
    return failed


@dataclass
class SymbolReport:
    """How one symbol's scan went."""

    status: str = PENDING  # ok, partial, or a SourceError kind such as rate_limited
    error: str | None = None
    price: float | None = None
    as_of: str | None = None
    earnings_date: str | None = None  # next earnings report, New York ISO date, if known
    ex_dividend_date: str | None = None  # Yahoo's ex-dividend date (New York ISO), if known
    expirations: list[str] = field(default_factory=list)
    contracts: int = 0
    matches: int = 0
    # Per expiration scanned (ISO date): {forward: USD, carry: ln(F/S)/T as a FRACTION per
    # year, source: "market" or "fallback", pairs: put-call pairs the forward came from}.
    forwards: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The vendor whose data was scanned ("yahoo", "cboe"; "yahoo, cboe" when a fallback took
    # over half-way), and how the sources before it failed ("yahoo: rate_limited: ...").
    source: str | None = None
    fallback: str | None = None
    vendor_iv30: float | None = None  # the vendor's 30-day IV of the underlying (Cboe), FRACTION

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data, omitting an absent error."""
        data = dict(self.__dict__)
        if data["error"] is None:
            del data["error"]
        return data


class Counts(TypedDict):
    """Symbol, contract and match counts of a scan."""

    symbols: int
    scanned: int
    failed: int
    contracts: int
    matches: int
    pending: NotRequired[int]


@dataclass
class ScanResult:
    """The outcome of one perform_scan() call."""

    success: bool
    message: str
    side: Side
    trigger: str
    started_at: datetime
    finished_at: datetime
    rules: str
    refused: str | None = None  # market_closed, no_symbols, invalid_symbols
    interrupted: bool = False
    saved: bool = False
    as_of: datetime | None = None  # latest capture time of the chains scanned
    symbols: dict[str, SymbolReport] = field(default_factory=dict)
    matches: list[Match] = field(default_factory=list)
    bytes_written: int = 0  # results written to the store (rows and summaries), bytes

    def counts(self) -> Counts:
        """Return symbol, contract and match counts."""
        reports = self.symbols.values()
        return {
            "symbols": len(self.symbols),
            "scanned": sum(1 for r in reports if r.status in OK_STATUSES),
            "failed": len(failed_symbols(self.symbols)),
            "contracts": sum(r.contracts for r in reports),
            "matches": len(self.matches),
        }

    def failed(self) -> dict[str, str]:
        """Return {symbol: reason} for the symbols that could not be scanned."""
        return failed_symbols(self.symbols)

    def to_dict(self, *, matches: bool = True) -> dict[str, Any]:
        """Return the result as JSON-ready data (times in ISO 8601 with offsets)."""
        data: dict[str, Any] = {
            "success": self.success,
            "message": self.message,
            "side": self.side,
            "trigger": self.trigger,
            "refused": self.refused,
            "interrupted": self.interrupted,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 3),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "rules": self.rules,
            "counts": self.counts(),
            "symbols": {s: r.to_dict() for s, r in self.symbols.items()},
        }
        if matches:
            data["matches"] = self.matches
        return data
