"""perform_scan(): scan symbols' option chains and keep the contracts worth selling."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

import redis

from optscan.core.chain import analyze_chains
from optscan.core.expiry import calendar_dte, years_to_expiry
from optscan.core.market import Clock, MarketCalendar, format_et
from optscan.core.models import (
    OK_STATUSES,
    PENDING,
    SIDES,
    Match,
    ScanResult,
    Side,
    SymbolReport,
)
from optscan.core.newness import mark_new
from optscan.core.rules import Rules, select
from optscan.core.symbols import normalize_symbols
from optscan.sources.base import Chain, OptionSource, Quote, SourceError, Unreachable
from optscan.store.results import ResultStore
from optscan.store.watchlist import Watchlist

log = logging.getLogger(__name__)

# Per-symbol progress: (symbols done so far, total, symbol, that symbol's matches, its report).
Progress = Callable[[int, int, str, list[Match], SymbolReport], None]


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
    concurrency: int = 1  # source calls under way at once; 1: all in the calling thread


@dataclass(frozen=True)
class _ChainOutcome:
    """One expiration's chain, or why there is none."""

    expiration: date
    chain: Chain | None = None
    kind: str | None = None  # a SourceError kind when the expiration failed
    message: str | None = None


@dataclass
class _OpenSymbol:
    """A symbol whose quote and expirations are known, waiting for its chains."""

    report: SymbolReport
    as_of: datetime
    wanted: list[date]
    outcomes: dict[date, _ChainOutcome] = field(default_factory=dict)


def _open_symbol(
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
        if 0 <= calendar_dte(quote.as_of, e) <= rules.horizon_days
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


def _scan_expiration(symbol: str, expiration: date, env: ScanEnv) -> _ChainOutcome:
    """Fetch one expiration's chain; never raise for a data problem."""
    try:
        return _ChainOutcome(expiration, env.source.chain(symbol, expiration))
    except SourceError as exc:
        return _ChainOutcome(expiration, kind=exc.kind, message=exc.message)
    except Exception as exc:
        log.exception("scan of %s %s failed", symbol, expiration)
        return _ChainOutcome(
            expiration, kind="error", message=f"unexpected error ({type(exc).__name__})"
        )


def _close_symbol(
    report: SymbolReport,
    as_of: datetime,
    wanted: list[date],
    outcomes: dict[date, _ChainOutcome],
    side: Side,
    env: ScanEnv,
    rules: Rules,
) -> tuple[SymbolReport, list[Match], datetime | None]:
    """Analyse a symbol's chains, nearest first, in one pass into its report and matches.

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
            matches = rows.records(select(rows, side, rules))
        except Exception as exc:
            log.exception("analysis of %s failed", chains[0].symbol)
            report.status, report.error = "error", f"unexpected error ({type(exc).__name__})"
            report.expirations.clear()
            return report, [], None
        report.contracts = len(rows)
        report.forwards = {day.isoformat(): f.to_dict() for day, f in rows.forwards.items()}
    report.matches = len(matches)
    return report, matches, latest


# What a finished symbol hands back: its report, matches and latest capture time.
SymbolDone = Callable[[str, tuple[SymbolReport, list[Match], datetime | None]], None]


def _run_inline(call: Callable[[], Any]) -> Future[Any]:
    """Run the call now in the calling thread (a scan without concurrency); return its future."""
    future: Future[Any] = Future()
    future.set_result(call())  # an exception propagates at once, as from a plain call
    return future


def _reserve_hub_threads(workers: int) -> None:
    # Under gevent each in-flight libcurl transfer holds a thread of the hub's pool (see
    # YahooSession); the pool also resolves host names. Make room for every worker and a spare
    # few, or the workers beyond the pool's size (10 by default) would queue for a thread.
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return
    import gevent

    pool = gevent.get_hub().threadpool
    if pool.maxsize < workers + 2:
        pool.maxsize = workers + 2


def scan_symbols(
    symbols: list[str],
    side: Side,
    env: ScanEnv,
    rules: Rules,
    on_done: SymbolDone,
    should_continue: Callable[[], bool] | None = None,
) -> bool:
    """Scan symbols, env.concurrency source calls at a time; return True if told to stop.

    The calling thread schedules: it hands the workers a symbol's first call (quote and
    expirations), then that symbol's expirations, which go before any further symbol so that
    symbols finish one after another. on_done runs in the calling thread as each symbol
    finishes, in finishing order. should_continue is asked before the first symbol and after
    each finished one while work remains; when it says stop, calls under way are abandoned and
    their symbols stay pending.
    """
    concurrency = env.concurrency
    # A pool per scan whose threads (greenlets once gevent has patched threading) live as long
    # as the scan, so each keeps its HTTP connection alive across requests: curl_cffi holds one
    # curl handle per thread.
    pool = None
    if concurrency > 1:
        _reserve_hub_threads(concurrency)
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="optscan-scan")
    submit = pool.submit if pool is not None else _run_inline
    pending = deque(symbols)
    ready: deque[tuple[str, date]] = deque()
    opened: dict[str, _OpenSymbol] = {}
    in_flight: dict[Future[Any], tuple[Any, ...]] = {}
    finished: deque[Future[Any]] = deque()  # done, not yet handled
    opening = 0  # symbols whose first call is under way
    symbols_opened = expirations_seen = 0
    check_due = True
    try:
        while True:
            if check_due:
                check_due = False
                more = pending or ready or in_flight
                if more and should_continue is not None and not should_continue():
                    return True
            while len(in_flight) < concurrency and (ready or pending):
                # Expirations first, so that symbols finish one after another; but open the
                # next symbol early when the expirations at hand and those the symbols being
                # opened will bring (at the average so far) would not fill the next round:
                # otherwise workers idle while a symbol's first answer is awaited.
                per_symbol = expirations_seen / symbols_opened if symbols_opened else 1.0
                if ready and (not pending or len(ready) + per_symbol * opening >= concurrency):
                    symbol, expiration = ready.popleft()
                    chain = partial(_scan_expiration, symbol, expiration, env)
                    in_flight[submit(chain)] = ("chain", symbol, expiration)
                else:
                    symbol = pending.popleft()
                    in_flight[submit(partial(_open_symbol, symbol, env, rules))] = ("open", symbol)
                    opening += 1
            if not in_flight:
                return False
            if not finished:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                finished.extend(done)
            future = finished.popleft()
            tag = in_flight.pop(future)
            outcome = future.result()  # re-raises what the call raised
            symbol = tag[1]
            if tag[0] == "open":
                opening -= 1
                report, as_of, wanted = outcome
                symbols_opened += 1
                expirations_seen += len(wanted)
                if as_of is None:
                    on_done(symbol, (report, [], None))
                    check_due = True
                elif not wanted:
                    on_done(symbol, _close_symbol(report, as_of, [], {}, side, env, rules))
                    check_due = True
                else:
                    opened[symbol] = _OpenSymbol(report, as_of, wanted)
                    ready.extend((symbol, expiration) for expiration in wanted)
                continue
            state = opened[symbol]
            state.outcomes[tag[2]] = outcome
            if len(state.outcomes) == len(state.wanted):
                del opened[symbol]
                closed = _close_symbol(
                    state.report, state.as_of, state.wanted, state.outcomes, side, env, rules
                )
                on_done(symbol, closed)
                check_due = True
    finally:
        if pool is not None:
            # Calls under way finish on their own; queued ones are dropped.
            pool.shutdown(wait=False, cancel_futures=True)


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


SymbolOutcome = tuple[SymbolReport, list[Match], datetime | None]


class _Board:
    """Write each finished symbol to the results board as the scan goes (best effort)."""

    def __init__(self, env: ScanEnv, side: Side, rules: Rules, trigger: str, scan_id: str | None):
        self.store = env.store
        self.clock = env.clock
        self.side = side
        self.rules = rules.describe(side)
        self.trigger = trigger
        self.scan_id = scan_id
        self.unsaved = 0  # symbols whose outcome could not be written
        self.kept = 0  # failed symbols whose earlier rows stay on the board
        self.bytes_written = 0

    def symbol_done(self, symbol: str, report: SymbolReport, matches: list[Match]) -> list[Match]:
        """Replace the symbol's group when it scanned, else record the failure beside it.

        Return the rows as written: flagged "new" where their contract was not on the board.
        """
        if self.store is None:
            return matches
        at = self.clock().isoformat()
        try:
            if report.status in OK_STATUSES:
                matches = mark_new(matches, self.store.contracts(self.side, symbol))
                self.bytes_written += self.store.save_group(
                    {
                        "symbol": symbol,
                        "side": self.side,
                        "status": report.status,
                        "error": report.error,
                        "spot": report.price,
                        "as_of": report.as_of,
                        "scanned_at": at,
                        "scan_id": self.scan_id,
                        "trigger": self.trigger,
                        "rules": self.rules,
                        "report": report.to_dict(),
                        "matches": matches,
                    }
                )
            elif report.status != PENDING:
                failure = {"status": report.status, "error": report.error, "at": at}
                failure["scan_id"] = self.scan_id
                if self.store.save_failure(self.side, symbol, failure):
                    self.kept += 1
        except redis.RedisError as exc:
            self.unsaved += 1
            if self.unsaved == 1:
                log.error("scan results not saved: Redis is unavailable (%s)", exc)
        return matches


def _unreachable(result: ScanResult) -> str | None:
    # Said once for the scan; each symbol's report repeats it.
    return next(
        (r.error for r in result.symbols.values() if r.status == Unreachable.kind and r.error),
        None,
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
    scan_id: str | None = None,
) -> ScanResult:
    """Scan the active watchlist (or the given symbols), storing each symbol as it finishes."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    if env.concurrency < 1:
        raise ValueError(f"env.concurrency must be at least 1, got {env.concurrency!r}")
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
    found: dict[str, list[Match]] = {}
    board = _Board(env, side, rules, trigger, scan_id)

    def symbol_done(
        symbol: str, outcome: tuple[SymbolReport, list[Match], datetime | None]
    ) -> None:
        report, matches, as_of = outcome
        result.symbols[symbol] = report
        matches = board.symbol_done(symbol, report, matches)
        found[symbol] = matches
        if as_of is not None and (result.as_of is None or as_of > result.as_of):
            result.as_of = as_of
        if progress is not None:
            progress(len(found), len(wanted), symbol, matches, report)

    result.interrupted = scan_symbols(wanted, side, env, rules, symbol_done, should_continue)
    # Matches in watchlist order, whatever order the symbols finished in.
    result.matches = [match for symbol in wanted for match in found.get(symbol, [])]
    result.finished_at = env.clock()
    if result.finished_at < result.started_at:  # replayed or frozen clocks
        result.finished_at = result.started_at
    counts = result.counts()
    elapsed = time.monotonic() - started
    result.bytes_written = board.bytes_written
    kept = f"; the previous results of {board.kept} of them are kept" if board.kept else ""
    if result.interrupted:
        result.message = (
            f"Scan interrupted after {counts['scanned'] + counts['failed']} of"
            f" {counts['symbols']} symbols; the symbols it finished are saved."
        )
    elif counts["scanned"] == 0:
        cause = _unreachable(result)
        result.message = (
            f"Scan failed: none of the {counts['symbols']} symbols could be scanned"
            f"{f' ({cause})' if cause else ''}{kept}."
        )
    else:
        result.success = True
        result.message = (
            f"Scanned {counts['scanned']} of {counts['symbols']} symbols in {elapsed:.1f} s:"
            f" {counts['matches']} {side}s match ({result.rules})."
        )
        if counts["failed"]:
            result.message += f" Failed: {', '.join(result.failed())}{kept}."
            cause = _unreachable(result)
            if cause:
                result.message += f" {cause}."
    if env.store is not None:
        try:
            summary = result.to_dict(matches=False)
            if result.success:
                env.store.save_completed(summary)
            else:
                env.store.save_attempt(summary)
            result.saved = not board.unsaved
        except redis.RedisError as exc:
            log.error("scan summary not saved: %s", exc)
            board.unsaved += 1
        if board.unsaved:
            result.message += " The result could not be saved: Redis is unavailable."
    return result
