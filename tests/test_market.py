"""Check the NYSE calendar against published NYSE holidays, early closes and DST dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from optscan.core.market import NEW_YORK, MarketCalendar, MarketStatus, format_et, system_clock

# The NYSE published these for 2026 (nyse.com/markets/hours-calendars): closed New Year's Day
# Jan 1, MLK Jan 19, Presidents' Feb 16, Good Friday Apr 3, Memorial May 25, Juneteenth Jun 19,
# Independence (observed) Jul 3, Labor Sep 7, Thanksgiving Nov 26, Christmas Dec 25; early
# close 13:00 ET on Fri Nov 27 and Thu Dec 24.
HOLIDAYS_2026 = [
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
]
EARLY_CLOSES_2026 = [date(2026, 11, 27), date(2026, 12, 24)]


def et(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    """Return a New York wall-clock time."""
    return datetime(y, mo, d, h, mi, s, us, tzinfo=NEW_YORK)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """Return a UTC time."""
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


@pytest.fixture(scope="module")
def cal() -> MarketCalendar:
    """Return a calendar covering 2025..2027 explicitly, independent of today's date."""
    return MarketCalendar(start=date(2025, 1, 1), end=date(2027, 12, 31))


@pytest.mark.parametrize("day", HOLIDAYS_2026, ids=str)
def test_holidays_closed_all_day(cal: MarketCalendar, day: date) -> None:
    for hour, minute in [(9, 30), (12, 0), (15, 59)]:
        assert not cal.is_market_open(et(day.year, day.month, day.day, hour, minute))
    assert cal.session_close(et(day.year, day.month, day.day, 12)) is None


def test_thanksgiving_2026_closed_and_next_open_is_friday(cal: MarketCalendar) -> None:
    assert not cal.is_market_open(et(2026, 11, 26, 10))
    assert cal.next_open(et(2026, 11, 26, 10)) == et(2026, 11, 27, 9, 30)
    # From Wednesday's close the holiday is skipped.
    assert cal.next_open(et(2026, 11, 25, 16)) == et(2026, 11, 27, 9, 30)


@pytest.mark.parametrize("day", EARLY_CLOSES_2026, ids=str)
def test_early_close_at_1300(cal: MarketCalendar, day: date) -> None:
    y, m, d = day.year, day.month, day.day
    assert cal.is_market_open(et(y, m, d, 9, 30))
    assert cal.is_market_open(et(y, m, d, 12, 59, 59, 999_999))
    assert not cal.is_market_open(et(y, m, d, 13, 0))
    assert not cal.is_market_open(et(y, m, d, 15, 0))
    assert cal.session_close(et(y, m, d, 10)) == et(y, m, d, 13, 0)
    status = cal.status(et(y, m, d, 10))
    assert status.is_open and status.early_close
    assert status.session_close == et(y, m, d, 13, 0)


def test_normal_day_session_bounds(cal: MarketCalendar) -> None:
    # Mon 2026-11-30: sessions are [09:30, 16:00) ET.
    assert not cal.is_market_open(et(2026, 11, 30, 9, 29, 59, 999_999))
    assert cal.is_market_open(et(2026, 11, 30, 9, 30))
    assert cal.is_market_open(et(2026, 11, 30, 15, 59, 59, 999_999))
    assert not cal.is_market_open(et(2026, 11, 30, 16, 0))
    assert cal.session_close(et(2026, 11, 30, 11, 17, 23)) == et(2026, 11, 30, 16, 0)
    assert cal.session_close(et(2026, 11, 30, 16, 0)) is None
    assert cal.session_close(et(2026, 11, 30, 8, 0)) is None


def test_weekend_closed(cal: MarketCalendar) -> None:
    assert not cal.is_market_open(et(2026, 11, 28, 12))  # Saturday
    assert not cal.is_market_open(et(2026, 11, 29, 12))  # Sunday
    assert cal.next_open(et(2026, 11, 28, 12)) == et(2026, 11, 30, 9, 30)


def test_next_open_over_long_weekends(cal: MarketCalendar) -> None:
    # Good Friday 2026-04-03: Thursday's close -> Monday 2026-04-06.
    assert cal.next_open(et(2026, 4, 2, 16)) == et(2026, 4, 6, 9, 30)
    # Memorial Day 2026-05-25: Friday's close -> Tuesday 2026-05-26.
    assert cal.next_open(et(2026, 5, 22, 17)) == et(2026, 5, 26, 9, 30)
    # Christmas Friday 2026-12-25: the Thursday early close -> Monday 2026-12-28.
    assert cal.next_open(et(2026, 12, 24, 13)) == et(2026, 12, 28, 9, 30)


def test_next_open_while_open_is_next_session(cal: MarketCalendar) -> None:
    assert cal.next_open(et(2026, 11, 30, 9, 30)) == et(2026, 12, 1, 9, 30)
    assert cal.next_open(et(2026, 11, 30, 15, 59)) == et(2026, 12, 1, 9, 30)
    # Before the open on a trading day, the next open is that same morning.
    assert cal.next_open(et(2026, 11, 30, 9, 29, 59)) == et(2026, 11, 30, 9, 30)


def test_results_are_in_new_york() -> None:
    cal = MarketCalendar(start=date(2026, 1, 1), end=date(2026, 12, 31))
    nxt = cal.next_open(utc(2026, 11, 28))
    assert nxt.tzinfo is not None and nxt.utcoffset() == timedelta(hours=-5)
    assert (nxt.hour, nxt.minute) == (9, 30)
    close = cal.session_close(utc(2026, 7, 1, 15))
    assert close is not None and close.utcoffset() == timedelta(hours=-4)
    assert close.hour == 16


def test_dst_march_2026(cal: MarketCalendar) -> None:
    # US clocks spring forward on Sun 2026-03-08: 09:30 ET is 14:30 UTC before, 13:30 UTC after.
    assert not cal.is_market_open(utc(2026, 3, 6, 13, 30))  # 08:30 EST
    assert not cal.is_market_open(utc(2026, 3, 6, 14, 29, 59))
    assert cal.is_market_open(utc(2026, 3, 6, 14, 30))
    assert cal.is_market_open(utc(2026, 3, 6, 20, 59))
    assert not cal.is_market_open(utc(2026, 3, 6, 21, 0))  # 16:00 EST
    assert cal.next_open(utc(2026, 3, 6, 22)) == utc(2026, 3, 9, 13, 30)
    assert cal.is_market_open(utc(2026, 3, 9, 13, 30))
    assert not cal.is_market_open(utc(2026, 3, 9, 13, 29, 59))
    assert not cal.is_market_open(utc(2026, 3, 9, 20, 0))  # 16:00 EDT
    assert cal.is_market_open(utc(2026, 3, 9, 19, 59))


def test_dst_november_2026(cal: MarketCalendar) -> None:
    # Clocks fall back on Sun 2026-11-01: 09:30 ET is 13:30 UTC before, 14:30 UTC after.
    assert cal.is_market_open(utc(2026, 10, 30, 13, 30))
    assert not cal.is_market_open(utc(2026, 10, 30, 20, 0))
    assert cal.next_open(utc(2026, 10, 30, 20, 0)) == utc(2026, 11, 2, 14, 30)
    assert not cal.is_market_open(utc(2026, 11, 2, 13, 30))  # 08:30 EST
    assert cal.is_market_open(utc(2026, 11, 2, 14, 30))
    assert cal.session_close(utc(2026, 11, 2, 15)) == utc(2026, 11, 2, 21, 0)


def test_any_timezone_accepted(cal: MarketCalendar) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 15:30 in Berlin on 2026-11-30 is 09:30 in New York (both on standard time).
    assert cal.is_market_open(datetime(2026, 11, 30, 15, 30, tzinfo=berlin))
    assert not cal.is_market_open(datetime(2026, 11, 30, 15, 29, tzinfo=berlin))


def test_naive_datetime_refused(cal: MarketCalendar) -> None:
    naive = datetime(2026, 11, 30, 10, 0)
    for method in (cal.is_market_open, cal.next_open, cal.session_close, cal.status):
        with pytest.raises(ValueError, match="naive"):
            method(naive)
    with pytest.raises(ValueError, match="naive"):
        format_et(naive)


def test_outside_range_refused() -> None:
    cal = MarketCalendar(start=date(2026, 1, 1), end=date(2026, 12, 31))
    with pytest.raises(ValueError, match="outside"):
        cal.is_market_open(et(2027, 6, 1, 10))
    with pytest.raises(ValueError, match="outside"):
        cal.status(et(2025, 12, 31, 23, 59))
    # Inside the range but with no session left to open.
    with pytest.raises(ValueError, match="no XNYS session opens after"):
        cal.next_open(et(2026, 12, 31, 17))
    # The range is measured in New York days: 23:30 ET on Dec 31 is still inside.
    assert not cal.is_market_open(et(2026, 12, 31, 23, 30))
    with pytest.raises(ValueError, match="range is empty"):
        MarketCalendar(start=date(2026, 2, 1), end=date(2026, 1, 1))


def test_status_closed_and_open(cal: MarketCalendar) -> None:
    closed = cal.status(utc(2026, 11, 26, 15))  # Thanksgiving 10:00 ET
    assert closed == MarketStatus(
        is_open=False,
        at=et(2026, 11, 26, 10),
        next_open=et(2026, 11, 27, 9, 30),
        session_close=None,
        early_close=False,
    )
    assert closed.at.tzinfo == NEW_YORK
    opened = cal.status(et(2026, 11, 30, 10))
    assert opened.is_open and not opened.early_close
    assert opened.session_close == et(2026, 11, 30, 16)
    assert opened.next_open == et(2026, 12, 1, 9, 30)


def test_format_et() -> None:
    assert format_et(utc(2026, 11, 30, 14, 30)) == "Mon 2026-11-30 09:30 ET"
    assert format_et(utc(2026, 7, 2, 17, 5)) == "Thu 2026-07-02 13:05 ET"  # EDT, UTC-4
    assert format_et(et(2026, 11, 27, 13)) == "Fri 2026-11-27 13:00 ET"


def test_system_clock_is_aware_utc() -> None:
    now = system_clock()
    assert now.utcoffset() == timedelta(0)


def test_default_range_covers_two_years_each_way() -> None:
    cal = MarketCalendar()
    today = system_clock().astimezone(NEW_YORK).date()
    assert cal.start <= today - timedelta(days=2 * 366)
    assert cal.end >= today + timedelta(days=2 * 366)
    now = system_clock()
    for offset in (-2 * 365, 0, 2 * 365):
        cal.status(now + timedelta(days=offset))  # must not raise


def test_second_construction_reuses_cached_calendar() -> None:
    first = MarketCalendar(start=date(2024, 1, 1), end=date(2028, 12, 31))
    second = MarketCalendar(start=date(2024, 1, 1), end=date(2028, 12, 31))
    # The same table object: built once per process and range, never again.
    assert second._sessions is first._sessions
    other = MarketCalendar(start=date(2024, 1, 1), end=date(2027, 12, 31))
    assert other._sessions is not first._sessions


def test_quotes_are_stale_by_their_capture_time_and_the_sessions() -> None:
    cal = MarketCalendar(start=date(2026, 1, 1), end=date(2026, 12, 31))
    friday_close = et(2026, 11, 20, 16, 0)
    # After Friday's close the closing quotes stay current all weekend...
    assert not cal.quotes_stale(friday_close, et(2026, 11, 21, 10, 0), 60)
    assert not cal.quotes_stale(et(2026, 11, 20, 15, 30), et(2026, 11, 22, 20, 0), 60)
    # ...quotes from long before that close are not...
    assert cal.quotes_stale(et(2026, 11, 20, 14, 30), et(2026, 11, 21, 10, 0), 60)
    assert cal.quotes_stale(et(2026, 11, 19, 16, 0), et(2026, 11, 20, 20, 0), 60)
    # ...and once Monday's session opens, Friday's quotes are stale at once.
    assert cal.quotes_stale(friday_close, et(2026, 11, 23, 9, 30), 60)
    # During a session, quotes are stale past the age limit.
    assert not cal.quotes_stale(et(2026, 11, 23, 10, 0), et(2026, 11, 23, 10, 59), 60)
    assert cal.quotes_stale(et(2026, 11, 23, 10, 0), et(2026, 11, 23, 11, 1), 60)
    # Thanksgiving (closed): Wednesday's closing quotes are the latest there are.
    assert not cal.quotes_stale(et(2026, 11, 25, 16, 0), et(2026, 11, 26, 12, 0), 60)
    assert cal.previous_close(et(2026, 11, 26, 12, 0)) == et(2026, 11, 25, 16, 0)
    # The day after Thanksgiving closes early at 13:00.
    assert cal.previous_close(et(2026, 11, 27, 15, 0)) == et(2026, 11, 27, 13, 0)


# Thanksgiving 2041 (Thursday Nov 28) and the Friday after, an early close: years from any
# "today" this suite will meet, so that only a range built from the given clock covers them.
THANKSGIVING_2041 = utc(2041, 11, 28, 16)


def test_the_default_range_follows_the_clock_it_is_given() -> None:
    cal = MarketCalendar(clock=lambda: THANKSGIVING_2041)
    assert (cal.start, cal.end) == (date(2039, 1, 1), date(2043, 12, 31))
    status = cal.status(THANKSGIVING_2041)
    assert not status.is_open and status.next_open == et(2041, 11, 29, 9, 30)
    assert cal.session_close(et(2041, 11, 29, 10)) == et(2041, 11, 29, 13)
    # Whole years: another moment of the same year shares the table.
    again = MarketCalendar(clock=lambda: utc(2041, 1, 2, 15))
    assert again._sessions is cal._sessions


def test_the_app_calendar_follows_the_app_clock(make_app) -> None:
    app = make_app(CLOCK=lambda: THANKSGIVING_2041)
    assert app.extensions["optscan"].calendar.end == date(2043, 12, 31)
    page = app.test_client().get("/")
    assert page.status_code == 200
    assert "next open Fri 2041-11-29 09:30 ET" in page.text
