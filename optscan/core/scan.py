"""perform_scan(): scan symbols' option chains and keep the contracts worth selling."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import redis

from optscan.core.board import Board
from optscan.core.book import NOT_HELD, Book
from optscan.core.book import scan_symbols as scan_scope
from optscan.core.ivrank import DailyIv, PriorIv, apply_rank
from optscan.core.market import Clock, MarketCalendar, format_et
from optscan.core.match import SIDES, Match, Side
from optscan.core.models import ScanResult, SymbolReport
from optscan.core.rules import Rules
from optscan.core.symbolscan import OpenSymbol, close_symbol, open_symbol, scan_expiration
from optscan.sources.base import OptionSource, Unreachable
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
    iv_history: DailyIv | None = None  # prior days' 30-day IVs, for IV rank; None: no rank


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
    book: Book | None = None,
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
    opened: dict[str, OpenSymbol] = {}
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
                    chain = partial(scan_expiration, symbol, expiration, env)
                    in_flight[submit(chain)] = ("chain", symbol, expiration)
                else:
                    symbol = pending.popleft()
                    in_flight[submit(partial(open_symbol, symbol, env, rules))] = ("open", symbol)
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
                    on_done(symbol, close_symbol(report, as_of, [], {}, side, env, rules, book))
                    check_due = True
                else:
                    opened[symbol] = OpenSymbol(report, as_of, wanted)
                    ready.extend((symbol, expiration) for expiration in wanted)
                continue
            state = opened[symbol]
            state.outcomes[tag[2]] = outcome
            if len(state.outcomes) == len(state.wanted):
                del opened[symbol]
                closed = close_symbol(
                    state.report, state.as_of, state.wanted, state.outcomes, side, env, rules, book
                )
                on_done(symbol, closed)
                check_due = True
    finally:
        if pool is not None:
            # Calls under way finish on their own; queued ones are dropped.
            pool.shutdown(wait=False, cancel_futures=True)


def _started(
    side: Side,
    trigger: str,
    rules: Rules,
    now: datetime,
    *,
    one_off: bool = False,
    symbols: Iterable[str] = (),
) -> ScanResult:
    """Return a scan's result as it starts: no time spent, nothing found yet."""
    return ScanResult(
        success=False,
        message="",
        side=side,
        trigger=trigger,
        started_at=now,
        finished_at=now,
        rules=rules.describe(side),
        one_off=one_off,
        symbols={s: SymbolReport() for s in symbols},
    )


def _refusal(
    message: str, refused: str, side: Side, trigger: str, rules: Rules, now: datetime
) -> ScanResult:
    result = _started(side, trigger, rules, now)
    result.message, result.refused = message, refused
    return result


SymbolOutcome = tuple[SymbolReport, list[Match], datetime | None]


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
    book: Book | None = None,
    one_off: bool = False,
) -> ScanResult:
    """Scan the given symbols (or those the side covers), storing each symbol as it finishes.

    With a book, puts are sized from its cash and calls priced on its holdings: a call scan
    skips (status not_held) the symbols not held, unless the rules ask for those too.
    """
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
    wanted = scan_scope(side, symbols, book, env.watchlist.active_symbols, rules.calls_unowned)
    if not wanted:
        return _refusal("No symbols to scan.", "no_symbols", side, trigger, rules, now)

    result = _started(side, trigger, rules, now, one_off=one_off, symbols=wanted)
    started = time.monotonic()
    found: dict[str, list[Match]] = {}
    prior_iv = PriorIv(env.iv_history)
    board = Board(env.store, env.clock, side, rules, trigger, scan_id, one_off=one_off)

    def symbol_done(
        symbol: str, outcome: tuple[SymbolReport, list[Match], datetime | None]
    ) -> None:
        report, matches, as_of = outcome
        holding = book.covering(symbol) if book is not None and side == "call" else None
        if holding is not None:
            report.shares, report.cost_basis = holding.shares, holding.cost_basis
        result.symbols[symbol] = report
        matches = apply_rank(symbol, report, matches, prior_iv, rules.min_iv_rank)
        matches = board.symbol_done(symbol, report, matches)
        found[symbol] = matches
        if as_of is not None and (result.as_of is None or as_of > result.as_of):
            result.as_of = as_of
        if progress is not None:
            progress(len(found), len(wanted), symbol, matches, report)

    to_scan = wanted
    if side == "call" and book is not None and not rules.calls_unowned:
        to_scan = [s for s in wanted if book.covering(s) is not None]
        for symbol in wanted:
            if book.covering(symbol) is None:
                skipped = SymbolReport(status=NOT_HELD, error=book.not_held(symbol))
                symbol_done(symbol, (skipped, [], None))
    result.interrupted = scan_symbols(
        to_scan, side, env, rules, symbol_done, should_continue, book=book
    )
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
    elif counts["scanned"] == 0 and not to_scan:
        result.message = f"Nothing scanned: {'; '.join(result.failed().values())}."
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
        failed = result.failed()
        not_held = [s for s in failed if result.symbols[s].status == NOT_HELD]
        if not_held:
            result.message += f" Not held, not scanned: {', '.join(not_held)}."
        if len(not_held) < len(failed):
            others = [s for s in failed if s not in not_held]
            result.message += f" Failed: {', '.join(others)}{kept}."
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
