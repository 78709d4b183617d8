"""Build the ScanEnv of a forced test scan: default rules, an empty watchlist, a stopped clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from optscan.core.market import MarketCalendar
from optscan.core.rules import Rules
from optscan.core.scan import ScanEnv
from optscan.sources.base import OptionSource
from optscan.store.results import ResultStore
from optscan.store.watchlist import Watchlist

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # scans are forced: the clock only stamps


def make_scan_env(
    source: OptionSource,
    watchlist_file: Path,
    concurrency: int = 1,
    store: ResultStore | None = None,
    now: datetime = NOW,
) -> ScanEnv:
    """Return a ScanEnv over `source` with default rules, its clock stopped at `now`."""
    return ScanEnv(
        source=source,
        watchlist=Watchlist(watchlist_file, seed=()),
        calendar=MarketCalendar(clock=lambda: now),
        rules=Rules(),
        risk_free_rate=0.045,  # the default OPTSCAN_RISK_FREE_RATE_PCT, as a fraction
        wide_spread_pct=50.0,
        clock=lambda: now,
        store=store,
        concurrency=concurrency,
    )
