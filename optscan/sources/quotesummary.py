"""Parse Yahoo's quoteSummary calendarEvents answer: the earnings dates and the ex-dividend date.

GET /v10/finance/quoteSummary/SYMBOL?modules=calendarEvents answers
{"quoteSummary": {"result": [{"calendarEvents": {...}}], "error": null}}, where calendarEvents
holds `exDividendDate` (the day the stock trades without its dividend), `dividendDate` (the
day the dividend is paid: not used) and `earnings.earningsDate` (one moment when the report
is scheduled, two day values bracketing an estimated window). With formatted=false each value
is epoch seconds; otherwise {"raw": epoch, "fmt": "YYYY-MM-DD"}: both are read.

Day-only values are 00:00 UTC of the day (AAPL's 2021-02-05 ex-date is 1612483200); a value
at any other second is a moment (META's report 2025-10-29 16:00 ET is 1761768000).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from optscan.core.market import NEW_YORK

from .base import MalformedResponse, Quote, start_of_day


@dataclass(frozen=True)
class CalendarEvents:
    """A symbol's upcoming earnings and its ex-dividend date, as Yahoo's calendar gives them."""

    earnings: tuple[datetime, ...] = ()  # report moments, or 00:00 New York of a day value
    ex_dividend_on: date | None = None  # may lie in the past: Yahoo shows the latest one

    def to_json(self) -> str:
        """Return the events as JSON (ISO times and dates)."""
        return json.dumps(
            {
                "earnings": [moment.isoformat() for moment in self.earnings],
                "ex_dividend_on": self.ex_dividend_on.isoformat() if self.ex_dividend_on else None,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CalendarEvents:
        """Return the events that to_json() wrote."""
        data = json.loads(text)
        day = data.get("ex_dividend_on")
        return cls(
            tuple(datetime.fromisoformat(moment) for moment in data.get("earnings", [])),
            date.fromisoformat(day) if day else None,
        )


def stored_events(text: str | None) -> CalendarEvents | None:
    """Return the events a memo stored with to_json(), or None when none or unreadable."""
    if text is None:
        return None
    try:
        return CalendarEvents.from_json(text)
    except (ValueError, TypeError, AttributeError):
        return None  # an unreadable entry is asked Yahoo for again


NO_EVENTS = CalendarEvents()


def parse_calendar_events(symbol: str, payload: Any) -> CalendarEvents:
    """Return the events of a quoteSummary calendarEvents body, or raise MalformedResponse."""
    summary = payload.get("quoteSummary") if isinstance(payload, dict) else None
    if not isinstance(summary, dict):
        raise MalformedResponse(symbol, "no quoteSummary in the calendar answer")
    results = summary.get("result")
    if not results:  # Yahoo's answer for a symbol without a calendar (an error beside it)
        return NO_EVENTS
    if not isinstance(results, list) or not isinstance(results[0], dict):
        raise MalformedResponse(symbol, "quoteSummary.result is not a list of objects")
    events = results[0].get("calendarEvents")
    if events is None:
        return NO_EVENTS
    if not isinstance(events, dict):
        raise MalformedResponse(symbol, "calendarEvents is not an object")
    earnings = events.get("earnings")
    earnings = {} if earnings is None else earnings
    if not isinstance(earnings, dict):
        raise MalformedResponse(symbol, "calendarEvents.earnings is not an object")
    reports = earnings.get("earningsDate")
    reports = [] if reports is None else reports
    if not isinstance(reports, list):
        raise MalformedResponse(symbol, "earningsDate is not a list")
    ex_dividend = events.get("exDividendDate")
    return CalendarEvents(
        tuple(sorted(_moment(symbol, "earningsDate", value) for value in reports)),
        None if ex_dividend is None else _day(symbol, "exDividendDate", ex_dividend),
    )


def with_events(quote: Quote, events: CalendarEvents) -> Quote:
    """Return the quote with the calendar's next earnings and its ex-dividend date."""
    today = _day_of(quote.as_of)
    ahead = [moment for moment in events.earnings if _day_of(moment) >= today]
    ex_dividend = events.ex_dividend_on
    return dataclasses.replace(
        quote,
        # The calendar has the scheduled report; the v7 quote's guess stays when it has none.
        earnings_at=min(ahead) if ahead else (None if events.earnings else quote.earnings_at),
        ex_dividend_at=None if ex_dividend is None else start_of_day(ex_dividend),
    )


def _day_of(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def _epoch(symbol: str, field: str, value: Any) -> int:
    if isinstance(value, dict):  # formatted=true: {"raw": 1758499200, "fmt": "2025-09-22"}
        value = value.get("raw")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise MalformedResponse(symbol, f"calendarEvents {field} is not epoch seconds ({value!r})")
    return int(value)


def _day(symbol: str, field: str, value: Any) -> date:
    return datetime.fromtimestamp(_epoch(symbol, field, value), UTC).date()


def _moment(symbol: str, field: str, value: Any) -> datetime:
    epoch = _epoch(symbol, field, value)
    if epoch % 86400 == 0:  # a day value: the report falls on that day, time unknown
        return start_of_day(datetime.fromtimestamp(epoch, UTC).date())
    return datetime.fromtimestamp(epoch, UTC)
