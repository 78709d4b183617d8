"""One symbol of a scan: open it (quote, expirations), fetch its chains, close it into rows.

Each step turns a data problem into the symbol's report and never raises for one; the
scheduler in core/scan.py decides when each step runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from optscan.core.atmiv import measure_iv
from optscan.core.book import Book
from optscan.core.chain import analyze_chains
from optscan.core.expiry import calendar_dte, years_to_expiry
from optscan.core.match import Match, Side
from optscan.core.models import SymbolReport
from optscan.core.rules import Rules, select
from optscan.core.sizing import size_rows
from optscan.sources.base import Chain, Quote, SourceError

if TYPE_CHECKING:
    from optscan.core.scan import ScanEnv

log = logging.getLogger("optscan.core.scan")


@dataclass(frozen=True)
class ChainOutcome:
    """One expiration's chain, or why there is none."""

    expiration: date
    chain: Chain | None = None
    kind: str | None = None  # a SourceError kind when the expiration failed
    message: str | None = None


@dataclass
class OpenSymbol:
    """A symbol whose quote and expirations are known, waiting for its chains."""

    report: SymbolReport
    as_of: datetime
    wanted: list[date]
    outcomes: dict[date, ChainOutcome] = field(default_factory=dict)


def open_symbol(
    symbol: str, env: ScanEnv, rules: Rules
) -> tuple[SymbolReport, datetime | None, list[date]]:
    """Return the symbol's report, quote time and expirations to scan (time None: failed)."""
    report = SymbolReport()
    try:
        quote = env.source.quote(symbol)
        expirations = env.source.expirations(symbol)
    except SourceError as exc:
        report.status, report.error = exc.kind, exc.message
        return report, None, []
    except Exception as exc:
        log.exception("scan of %s failed", symbol)
        report.status, report.error = "error", f"unexpected error ({type(exc).__name__})"
        return report, None, []
    report.price, report.as_of = quote.price, quote.as_of.isoformat()
    report.vendor_iv30 = quote.iv30
    _note_provenance(report, quote)
    earnings, ex_dividend = quote.earnings_date, quote.ex_dividend_date
    report.earnings_date = earnings.isoformat() if earnings else None
    report.ex_dividend_date = ex_dividend.isoformat() if ex_dividend else None
    wanted = [
        e
        for e in expirations
        if rules.min_dte <= calendar_dte(quote.as_of, e) <= rules.horizon_days
        and years_to_expiry(quote.as_of, e) > 0
    ]
    return report, quote.as_of, wanted


def _note_provenance(report: SymbolReport, quote: Quote) -> None:
    """Add the vendor of a quote (and how earlier sources failed) to the symbol's report."""
    if quote.source:
        served = report.source.split(", ") if report.source else []
        if quote.source not in served:
            report.source = ", ".join([*served, quote.source])
    for note in quote.passed_over:
        if not report.fallback:
            report.fallback = note
        elif note not in report.fallback:
            report.fallback = f"{report.fallback}; {note}"


def scan_expiration(symbol: str, expiration: date, env: ScanEnv) -> ChainOutcome:
    """Fetch one expiration's chain; never raise for a data problem."""
    try:
        return ChainOutcome(expiration, env.source.chain(symbol, expiration))
    except SourceError as exc:
        return ChainOutcome(expiration, kind=exc.kind, message=exc.message)
    except Exception as exc:
        log.exception("scan of %s %s failed", symbol, expiration)
        return ChainOutcome(
            expiration, kind="error", message=f"unexpected error ({type(exc).__name__})"
        )


def close_symbol(
    report: SymbolReport,
    as_of: datetime,
    wanted: list[date],
    outcomes: dict[date, ChainOutcome],
    side: Side,
    env: ScanEnv,
    rules: Rules,
    book: Book | None = None,
) -> tuple[SymbolReport, list[Match], datetime | None]:
    """Analyse and size a symbol's chains, nearest first, in one pass into its report and matches.

    One pass over all of a symbol's expirations: the analysis is vectorised, and a few
    hundred contracts at once cost little more than the few dozen of one expiration.
    """
    chains, failures, latest = [], [], as_of
    for expiration in wanted:
        outcome = outcomes[expiration]
        if outcome.chain is None:
            failures.append((expiration, outcome.kind or "error", outcome.message))
            continue
        latest = max(latest, outcome.chain.quote.as_of)
        _note_provenance(report, outcome.chain.quote)
        report.expirations.append(expiration.isoformat())
        chains.append(outcome.chain)
    if failures and len(failures) == len(wanted):
        report.status, report.error = failures[0][1], failures[0][2]
        return report, [], None
    report.status = "partial" if failures else "ok"
    if failures:
        report.error = "; ".join(f"{e.isoformat()}: {msg}" for e, _, msg in failures)
    matches: list[Match] = []
    if chains:
        try:
            rows = analyze_chains(
                chains,
                side,
                risk_free_rate=env.risk_free_rate,
                wide_spread_pct=env.wide_spread_pct,
            )
            rows = replace(
                size_rows(rows, book),
                earnings_date=report.earnings_date,
                ex_dividend_date=report.ex_dividend_date,
            )
            matches = rows.records(select(rows, side, rules))
            report.near_iv = rows.near_iv()
        except Exception as exc:
            log.exception("analysis of %s failed", chains[0].symbol)
            report.status, report.error = "error", f"unexpected error ({type(exc).__name__})"
            report.expirations.clear()
            return report, [], None
        report.contracts = len(rows)
        report.forwards = {day.isoformat(): f.to_dict() for day, f in rows.forwards.items()}
        measure_iv(report, rows)
    report.matches = len(matches)
    return report, matches, latest
