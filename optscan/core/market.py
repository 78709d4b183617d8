"""NYSE trading sessions (holidays, early closes) in America/New_York time, clock injected.

Conventions, decided here once:
- A session is the half-open interval [open, close): 09:30:00 ET is open, 16:00:00 ET (or
  13:00:00 ET on an early-close day) is closed. Sub-minute times are fine; nothing is rounded.
- Every datetime taken in must be timezone-aware (any zone); naive ones raise ValueError,
  because guessing the zone of a naive time is how DST bugs are made.
- Every datetime handed out is in America/New_York.
- The session table comes from exchange_calendars once per process and (name, range); after
  that every query is a bisect over plain Python datetimes, so no pandas runs per call.
"""

from __future__ import annotations

import warnings
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

Clock = Callable[[], datetime]

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# exchange_calendars 4.x reads Series.values on tz-aware columns while it builds a calendar;
# pandas 3 deprecates that. The result is still correct (UTC nanoseconds), so only this
# message is silenced, only during construction.
_PANDAS_VALUES_WARNING = r".*\.values returning an ndarray that drops timezone information"


def system_clock() -> datetime:
    """Return the current time, timezone-aware in UTC (the only wall-clock read in optscan)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class MarketStatus:
    """Describe the market at one instant; all datetimes are in America/New_York."""

    is_open: bool
    at: datetime
    next_open: datetime  # open of the first session starting strictly after `at`
    session_close: datetime | None  # close of the session in progress, None when closed
    early_close: bool  # the session in progress closes early (13:00 ET); False when closed


@dataclass(frozen=True)
class _Sessions:
    """Hold one calendar's session opens and closes (UTC), sorted, plus its covered range."""

    name: str
    start: date  # first calendar day covered
    end: date  # last calendar day covered
    opens: tuple[datetime, ...]
    closes: tuple[datetime, ...]
    early: tuple[bool, ...]


@cache
def _load_sessions(name: str, start: date, end: date) -> _Sessions:
    """Build the session table for `name` over [start, end] once per process."""
    # Imported here so that importing optscan.core.market (e.g. for system_clock) stays cheap.
    import exchange_calendars

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_VALUES_WARNING)
        calendar = exchange_calendars.get_calendar(
            name, start=start.isoformat(), end=end.isoformat()
        )
        schedule = calendar.schedule
        early_sessions = {ts.date() for ts in calendar.early_closes}
    opens = tuple(ts.to_pydatetime().astimezone(UTC) for ts in schedule["open"])
    closes = tuple(ts.to_pydatetime().astimezone(UTC) for ts in schedule["close"])
    early = tuple(ts.date() in early_sessions for ts in schedule.index)
    return _Sessions(name=name, start=start, end=end, opens=opens, closes=closes, early=early)


def _default_range(today: date) -> tuple[date, date]:
    """Return whole calendar years from two years before `today` to two years after."""
    # Whole years keep the cache key stable all year, so a long-running process builds once.
    return date(today.year - 2, 1, 1), date(today.year + 2, 12, 31)


def _require_aware(at: datetime) -> datetime:
    """Return `at` in UTC, refusing naive datetimes."""
    if not isinstance(at, datetime):
        raise TypeError(f"expected a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: give an explicit timezone")
    return at.astimezone(UTC)


class MarketCalendar:
    """Answer whether an exchange (NYSE by default) is open, and when it next opens or closes."""

    def __init__(
        self,
        name: str = "XNYS",
        start: date | None = None,
        end: date | None = None,
        *,
        clock: Clock = system_clock,
    ):
        """Load (or reuse) the session table for `name` covering [start, end] inclusive.

        A missing bound comes from the clock's New York date (two whole years either side):
        pass the app's clock, so that a clock set to another year gets a calendar for it.
        """
        if start is None or end is None:
            default_start, default_end = _default_range(clock().astimezone(NEW_YORK).date())
            start = default_start if start is None else start
            end = default_end if end is None else end
        if end < start:
            raise ValueError(f"calendar range is empty: end {end} is before start {start}")
        self._range = (name, start, end)
        # The range is measured in New York days: [start 00:00 ET, end+1 00:00 ET).
        self._lower = datetime.combine(start, datetime.min.time(), NEW_YORK).astimezone(UTC)
        self._upper = datetime.combine(
            end + timedelta(days=1), datetime.min.time(), NEW_YORK
        ).astimezone(UTC)

    @cached_property
    def _sessions(self) -> _Sessions:
        """Return the session table, built on the first question (a forced scan asks none)."""
        return _load_sessions(*self._range)

    def load(self) -> MarketCalendar:
        """Build the session table now rather than on the first question; return self."""
        _ = self._sessions
        return self

    @property
    def name(self) -> str:
        """Return the exchange_calendars code, e.g. "XNYS"."""
        return self._range[0]

    @property
    def start(self) -> date:
        """Return the first New York calendar day this calendar answers for."""
        return self._range[1]

    @property
    def end(self) -> date:
        """Return the last New York calendar day this calendar answers for."""
        return self._range[2]

    def _check(self, at: datetime) -> datetime:
        """Return `at` in UTC after refusing naive or out-of-range datetimes."""
        utc = _require_aware(at)
        if not self._lower <= utc < self._upper:
            raise ValueError(
                f"{at.isoformat()} is outside the {self.name} calendar range "
                f"{self.start.isoformat()}..{self.end.isoformat()} (New York days)"
            )
        return utc

    def _current_index(self, utc: datetime) -> int | None:
        """Return the index of the session in progress at `utc`, else None."""
        i = bisect_right(self._sessions.opens, utc) - 1
        if i >= 0 and utc < self._sessions.closes[i]:
            return i
        return None

    def is_market_open(self, at: datetime) -> bool:
        """Return True when a session is in progress at `at` (open inclusive, close exclusive)."""
        return self._current_index(self._check(at)) is not None

    def next_open(self, at: datetime) -> datetime:
        """Return the open (New York time) of the first session starting strictly after `at`."""
        utc = self._check(at)
        j = bisect_right(self._sessions.opens, utc)
        if j >= len(self._sessions.opens):
            raise ValueError(
                f"no {self.name} session opens after {at.isoformat()} within the calendar "
                f"range ending {self.end.isoformat()}"
            )
        return self._sessions.opens[j].astimezone(NEW_YORK)

    def session_close(self, at: datetime) -> datetime | None:
        """Return the close (New York time) of the session in progress at `at`, None if closed."""
        i = self._current_index(self._check(at))
        return None if i is None else self._sessions.closes[i].astimezone(NEW_YORK)

    def previous_close(self, at: datetime) -> datetime | None:
        """Return the close (New York time) of the last session that ended at or before `at`."""
        utc = self._check(at)
        j = bisect_right(self._sessions.closes, utc) - 1
        return None if j < 0 else self._sessions.closes[j].astimezone(NEW_YORK)

    def quotes_stale(self, as_of: datetime, now: datetime, max_age_minutes: float) -> bool:
        """Return whether quotes captured at `as_of` are out of date at `now`.

        While a session runs, quotes older than max_age_minutes (or from before its open) are
        stale; while the market is closed, quotes are current if captured within max_age_minutes
        of the last close (or later), and stale if older.
        """
        utc_as_of, utc_now = _require_aware(as_of), self._check(now)
        limit = timedelta(minutes=max_age_minutes)
        i = self._current_index(utc_now)
        if i is not None:
            return utc_as_of < self._sessions.opens[i] or utc_now - utc_as_of > limit
        last_close = self.previous_close(utc_now)
        reference = utc_now if last_close is None else last_close.astimezone(UTC)
        return reference - utc_as_of > limit

    def status(self, at: datetime) -> MarketStatus:
        """Return whether the market is open at `at`, when it next opens and when it closes."""
        utc = self._check(at)
        i = self._current_index(utc)
        return MarketStatus(
            is_open=i is not None,
            at=utc.astimezone(NEW_YORK),
            next_open=self.next_open(utc),
            session_close=None if i is None else self._sessions.closes[i].astimezone(NEW_YORK),
            early_close=False if i is None else self._sessions.early[i],
        )


def format_et(dt: datetime) -> str:
    """Format an aware datetime in New York time for users, e.g. "Mon 2026-11-30 09:30 ET"."""
    local = _require_aware(dt).astimezone(NEW_YORK)
    # Weekday names come from a table, not %a, so the output does not depend on the locale.
    return f"{_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} ET"
