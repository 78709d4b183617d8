"""perform_scan(): scan symbols' option chains and keep the contracts worth selling."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
import redis

from optscan.analytics import analyze_chain, calendar_dte, years_to_expiry
from optscan.market import Clock, MarketCalendar, format_et
from optscan.results import ResultStore
from optscan.rules import SIDES, Rules, Side, select
from optscan.sources.base import OptionSource, SourceError
from optscan.watchlist import Watchlist, normalize_symbols

log = logging.getLogger(__name__)

# Per-symbol progress: (index from 1, total, symbol, that symbol's matches).
Progress = Callable[[int, int, str, list[dict[str, Any]]], None]

MATCH_FIELDS = (
    "symbol",
    "side",
    "contract",
    "expiration",
    "dte",
    "strike",
    "bid",
    "ask",
    "mid",
    "spread_pct",
    "otm_pct",
    "annualized_return",
    "iv",
    "delta",
    "pop_otm",
    "open_interest",
    "volume",
    "breakeven",
    "flags",
)
OK_STATUSES = ("ok", "partial")


@dataclass(frozen=True)
class ScanEnv:
    """Everything a scan reads from, passed explicitly."""

    source: OptionSource
    watchlist: Watchlist
    calendar: MarketCalendar
    rules: Rules
    risk_free_rate: float  # FRACTION per year
    wide_spread_pct: float  # percent of mid
    clock: Clock
    store: ResultStore | None = None


@dataclass
class SymbolReport:
    """How one symbol's scan went."""

    status: str = "pending"  # ok, partial, or a SourceError kind such as rate_limited
    error: str | None = None
    price: float | None = None
    as_of: str | None = None
    expirations: list[str] = field(default_factory=list)
    contracts: int = 0
    matches: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data, omitting an absent error."""
        data = dict(self.__dict__)
        if data["error"] is None:
            del data["error"]
        return data


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
    matches: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Return symbol, contract and match counts."""
        ok = sum(1 for r in self.symbols.values() if r.status in OK_STATUSES)
        return {
            "symbols": len(self.symbols),
            "scanned": ok,
            "failed": sum(
                1 for r in self.symbols.values() if r.status not in OK_STATUSES + ("pending",)
            ),
            "contracts": sum(r.contracts for r in self.symbols.values()),
            "matches": len(self.matches),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data (times in ISO 8601 with offsets)."""
        return {
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
            "matches": self.matches,
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def match_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Return analysed rows as JSON-ready dicts, NaN as None."""
    records = []
    for row in rows.to_dict("records"):
        record = {name: _json_value(row.get(name)) for name in MATCH_FIELDS}
        for name in ("dte", "open_interest", "volume"):
            if record[name] is not None:
                record[name] = int(record[name])
        records.append(record)
    return records


def scan_symbol(
    symbol: str, side: Side, env: ScanEnv, rules: Rules
) -> tuple[SymbolReport, list[dict[str, Any]], datetime | None]:
    """Scan one symbol's expirations within the horizon; never raise for a data problem."""
    report = SymbolReport()
    try:
        quote = env.source.quote(symbol)
        expirations = env.source.expirations(symbol)
    except SourceError as exc:
        report.status, report.error = exc.kind, exc.message
        return report, [], None
    except Exception as exc:  # noqa: BLE001 - one symbol's surprise must not end the scan
        log.exception("scan of %s failed", symbol)
        report.status, report.error = "error", f"unexpected error ({type(exc).__name__})"
        return report, [], None
    report.price, report.as_of = quote.price, quote.as_of.isoformat()
    wanted = [
        e
        for e in expirations
        if 0 <= calendar_dte(quote.as_of, e) <= rules.horizon_days
        and years_to_expiry(quote.as_of, e) > 0
    ]
    frames, failures, latest = [], [], quote.as_of
    for expiration in wanted:
        try:
            chain = env.source.chain(symbol, expiration)
            rows = analyze_chain(
                chain,
                side,
                risk_free_rate=env.risk_free_rate,
                wide_spread_pct=env.wide_spread_pct,
            )
        except SourceError as exc:
            failures.append((expiration, exc.kind, exc.message))
            continue
        except Exception as exc:  # noqa: BLE001
            log.exception("scan of %s %s failed", symbol, expiration)
            failures.append((expiration, "error", f"unexpected error ({type(exc).__name__})"))
            continue
        latest = max(latest, chain.quote.as_of)
        report.expirations.append(expiration.isoformat())
        report.contracts += len(rows)
        frames.append(select(rows, side, rules))
    if failures and len(failures) == len(wanted):
        report.status, report.error = failures[0][1], failures[0][2]
        return report, [], None
    report.status = "partial" if failures else "ok"
    if failures:
        report.error = "; ".join(f"{e.isoformat()}: {msg}" for e, _, msg in failures)
    matches = match_records(pd.concat(frames)) if frames else []
    report.matches = len(matches)
    return report, matches, latest


def _refusal(
    message: str, refused: str, side: Side, trigger: str, rules: Rules, now: datetime
) -> ScanResult:
    return ScanResult(
        success=False,
        message=message,
        side=side,
        trigger=trigger,
        started_at=now,
        finished_at=now,
        rules=rules.describe(side),
        refused=refused,
    )


def perform_scan(
    symbols: Iterable[str] | None = None,
    side: Side = "put",
    force: bool = False,
    progress: Progress | None = None,
    *,
    env: ScanEnv,
    rules: Rules | None = None,
    trigger: str = "cli",
    should_continue: Callable[[], bool] | None = None,
) -> ScanResult:
    """Scan the active watchlist (or the given symbols) and store the result when it completes."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    rules = rules or env.rules
    now = env.clock()
    if not force and not env.calendar.is_market_open(now):
        next_open = format_et(env.calendar.next_open(now))
        return _refusal(
            f"The market is closed; it next opens {next_open}. Force the scan to run anyway.",
            "market_closed",
            side,
            trigger,
            rules,
            now,
        )
    wanted = normalize_symbols(symbols) if symbols is not None else env.watchlist.active_symbols()
    if not wanted:
        return _refusal("No symbols to scan.", "no_symbols", side, trigger, rules, now)

    result = ScanResult(
        success=False,
        message="",
        side=side,
        trigger=trigger,
        started_at=now,
        finished_at=now,
        rules=rules.describe(side),
        symbols={s: SymbolReport() for s in wanted},
    )
    started = time.monotonic()
    for index, symbol in enumerate(wanted, start=1):
        if should_continue is not None and not should_continue():
            result.interrupted = True
            break
        report, matches, as_of = scan_symbol(symbol, side, env, rules)
        result.symbols[symbol] = report
        result.matches.extend(matches)
        if as_of is not None and (result.as_of is None or as_of > result.as_of):
            result.as_of = as_of
        if progress is not None:
            progress(index, len(wanted), symbol, matches)
    result.finished_at = env.clock()
    if result.finished_at < result.started_at:  # replayed or frozen clocks
        result.finished_at = result.started_at
    counts = result.counts()
    elapsed = time.monotonic() - started
    if result.interrupted:
        result.message = (
            f"Scan interrupted after {counts['scanned'] + counts['failed']} of"
            f" {counts['symbols']} symbols; the previous results are kept."
        )
    elif counts["scanned"] == 0:
        result.message = (
            f"Scan failed: none of the {counts['symbols']} symbols could be scanned;"
            " the previous results are kept."
        )
    else:
        result.success = True
        result.message = (
            f"Scanned {counts['scanned']} of {counts['symbols']} symbols in {elapsed:.1f} s:"
            f" {counts['matches']} {side}s match ({result.rules})."
        )
        if counts["failed"]:
            failed = [s for s, r in result.symbols.items() if r.status not in OK_STATUSES]
            result.message += f" Failed: {', '.join(failed)}."
    if env.store is not None:
        try:
            if result.success:
                env.store.save_completed(result.to_dict())
            else:
                env.store.save_attempt(result.to_dict())
            result.saved = True
        except redis.RedisError as exc:
            log.error("scan result not saved: %s", exc)
            result.message += " The result could not be saved: Redis is unavailable."
    return result
