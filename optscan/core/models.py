"""The records a scan produces: one SymbolReport per symbol, one ScanResult per scan.

The rows themselves, `Match`, and their columns are in core.match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from optscan.core.match import Match, Side

# Symbol statuses that produced rows; any other status is a failure, "pending" is not yet done.
OK_STATUSES = ("ok", "partial")
PENDING = "pending"


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
    # IV (a FRACTION) at the strike nearest the forward on the nearest expiration scanned.
    near_iv: float | None = None
    # Calls: the position the rows were priced on (None: not held, priced at spot).
    shares: int | None = None
    cost_basis: float | None = None  # USD per share
    contracts: int = 0
    matches: int = 0
    # Per expiration scanned (ISO date): {forward: USD, carry: ln(F/S)/T as a FRACTION per
    # year, source: "market" or "fallback", pairs: put-call pairs the forward came from}.
    forwards: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Implied volatility, FRACTIONS per year (core/atmiv.py, core/ivrank.py): at the money per
    # expiration (ISO date), 30-day (our own, and the vendor's when the source gives one), and
    # where today's 30-day IV ranks in our history (FRACTIONS; None until 20 trading days).
    atm_iv: dict[str, float] = field(default_factory=dict)
    iv30: float | None = None
    vendor_iv30: float | None = None
    iv_rank: float | None = None
    iv_percentile: float | None = None
    iv_days: int = 0  # trading days with a 30-day IV in the rank's window, today's included
    iv_rank_note: str | None = None  # what the minimum IV rank did (dropped rows, or not applied)
    # The vendor whose data was scanned ("yahoo", "cboe"; "yahoo, cboe" when a fallback took
    # over half-way), and how the sources before it failed ("yahoo: rate_limited: ...").
    source: str | None = None
    fallback: str | None = None

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
    one_off: bool = False  # the rules were changed for this scan only (not the defaults)
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
            "one_off": self.one_off,
            "counts": self.counts(),
            "symbols": {s: r.to_dict() for s, r in self.symbols.items()},
        }
        if matches:
            data["matches"] = self.matches
        return data
