"""IV rank and IV percentile of a symbol's 30-day IV, from optscan's own history.

One value per trading day: the 30-day IV of that day's last scan. A scan's trading day is the
New York date of its quotes (the exchange's regularMarketTime), which moves only on NYSE
sessions: a scan in the evening, before the open, on a weekend or a holiday belongs to the
session before it, whose closing quotes it sees. Over the window of the last year (365
calendar days, at most WINDOW_DAYS trading days) ending today, today's value being the current
scan's and the prior days' those that have one:
- rank = (today - min) / (max - min), min and max over the window (today included): 0 = the
  lowest of the window, 1 = the highest; none when every day has the same IV;
- percentile = the share of the window's prior days whose IV is below today's.
Both are FRACTIONS (0.45 = 45 %). They are shown once MIN_DAYS days (today included) exist;
before that, "n/a (k of 20 days)". A minimum IV rank (a rule, in PERCENT) drops a symbol's
rows only when its rank is known: a symbol with too little history is kept, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from optscan.core.market import NEW_YORK
from optscan.core.models import OK_STATUSES

if TYPE_CHECKING:
    from optscan.core.match import Match
    from optscan.core.models import SymbolReport

log = logging.getLogger(__name__)

WINDOW_DAYS = 252  # about a year of NYSE sessions
WINDOW = timedelta(days=365)
MIN_DAYS = 20  # about a month
# The SymbolReport fields a symbol's head line shows (live events carry them as "iv").
IV_FIELDS = ("iv30", "iv_rank", "iv_percentile", "iv_days", "iv_rank_note")


def trading_day(quoted: datetime | str) -> date:
    """Return the trading day of quotes captured at `quoted`: their New York date."""
    at = datetime.fromisoformat(quoted) if isinstance(quoted, str) else quoted
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: give an explicit timezone")
    return at.astimezone(NEW_YORK).date()


def window_start(day: date) -> date:
    """Return the first day of the window that ends on `day`."""
    return day - WINDOW


class DailyIv(Protocol):
    """Where the prior days' 30-day IVs come from (the history store)."""

    def daily_iv30(self, symbol: str, start: date, before: date) -> list[float]:
        """Return a symbol's 30-day IV per trading day in [start, before), oldest first.

        A day's value is that of its last scan that had one.
        """
        ...


@dataclass(frozen=True)
class IvRank:
    """Where today's 30-day IV stands in the window."""

    rank: float | None  # FRACTION in [0, 1]; None before MIN_DAYS or when the IV never moved
    percentile: float | None  # FRACTION in [0, 1); None before MIN_DAYS
    days: int  # trading days with a 30-day IV in the window, today's included


def iv_rank(today: float | None, prior: Sequence[float]) -> IvRank:
    """Return the rank and percentile of `today` against the prior days (oldest first)."""
    window = list(prior)[-(WINDOW_DAYS - 1) :]
    if today is None:
        return IvRank(None, None, len(window))
    days = len(window) + 1
    if days < MIN_DAYS:
        return IvRank(None, None, days)
    low, high = min([*window, today]), max([*window, today])
    rank = (today - low) / (high - low) if high > low else None
    percentile = sum(1 for value in window if value < today) / len(window)
    return IvRank(rank, percentile, days)


def rank_words(rank: float | None, percentile: float | None, days: int) -> str:
    """Return the rank in words: "IV rank 45%, percentile 60%" or "IV rank n/a (…)"."""
    if days < MIN_DAYS:
        return f"IV rank n/a ({days} of {MIN_DAYS} days)"
    if rank is None and percentile is None:
        return "IV rank n/a (no 30-day IV in this scan)"
    shown = "n/a (no range)" if rank is None else f"{rank * 100:.0f}%"
    tail = "" if percentile is None else f", percentile {percentile * 100:.0f}%"
    return f"IV rank {shown}{tail}"


def report_words(report: dict[str, Any]) -> str | None:
    """Return the rank in words from a symbol report's fields; None when it has none."""
    if "iv_days" not in report:
        return None  # a report from before IV rank existed
    return rank_words(report.get("iv_rank"), report.get("iv_percentile"), report["iv_days"])


def gate(ranked: IvRank, minimum_pct: float | None) -> tuple[bool, str | None]:
    """Return whether a symbol keeps its rows under a minimum IV rank (PERCENT), and why not.

    The note says why rows were dropped, or that the symbol was not filtered for lack of a rank.
    """
    if minimum_pct is None:
        return True, None
    words = rank_words(ranked.rank, ranked.percentile, ranked.days)
    if ranked.rank is None:
        return True, f"not filtered by the minimum IV rank {minimum_pct:g}%: {words}"
    if ranked.rank * 100.0 < minimum_pct:
        return False, (
            f"IV rank {ranked.rank * 100:.0f}% is below the minimum {minimum_pct:g}%: no rows kept"
        )
    return True, None


class PriorIv:
    """Read a symbol's prior days from the history as it finishes; stop at the first failure."""

    def __init__(self, history: DailyIv | None):
        self.history = history
        self.failed = False

    def __call__(self, symbol: str, day: date) -> list[float] | None:
        """Return the symbol's 30-day IVs of the window's days before `day`; None: unknown."""
        if self.history is None or self.failed:
            return None
        try:
            return self.history.daily_iv30(symbol, window_start(day), day)
        except Exception as exc:  # noqa: BLE001 - IV rank is worth less than the scan
            self.failed = True  # said once per scan; the other symbols go without
            log.warning("IV rank not computed: %s: %s", type(exc).__name__, exc)
            return None


def apply_rank(
    symbol: str,
    report: SymbolReport,
    matches: list[Match],
    prior_iv: PriorIv,
    minimum_pct: float | None,
) -> list[Match]:
    """Rank a scanned symbol's 30-day IV in its report; return the matches the rank keeps.

    None are kept when the rank is below `minimum_pct` (PERCENT); all when it is unknown.
    """
    if report.status not in OK_STATUSES or report.as_of is None:
        return matches
    prior = prior_iv(symbol, trading_day(report.as_of))
    ranked = iv_rank(report.iv30, prior or [])
    report.iv_rank, report.iv_percentile = ranked.rank, ranked.percentile
    report.iv_days = ranked.days
    if prior is None and minimum_pct is not None:
        report.iv_rank_note = (
            f"not filtered by the minimum IV rank {minimum_pct:g}%: no history to rank against"
        )
        return matches
    keep, report.iv_rank_note = gate(ranked, minimum_pct)
    if keep:
        return matches
    report.matches = 0
    return []
