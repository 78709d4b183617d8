"""Earnings and ex-dividend dates from Yahoo's quoteSummary calendar: parsed from recorded
answers, fetched once per symbol and New York day (kept in the real Redis), and never the
dividend's payment date taken for its ex-date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

from optscan.sources.base import MalformedResponse, Quote
from optscan.sources.policy import FetchPolicy
from optscan.sources.quotesummary import (
    NO_EVENTS,
    CalendarEvents,
    parse_calendar_events,
    with_events,
)
from optscan.sources.replay import ReplaySource
from optscan.sources.yahoo import YahooSource
from optscan.store.yahoomemo import YahooMemo
from tests.emulator import cleaned
from tests.faults import SECRET_KEY
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import CALENDAR_FIXTURES, CALENDARS, SUMMARY_PREFIX, YahooEmulator

AAPL_2021 = (
    CALENDAR_FIXTURES / "gadicc__node-yahoo-finance2" / "quoteSummary-calendarEvents-AAPL.json"
)
BTC_404 = (
    CALENDAR_FIXTURES / "gadicc__node-yahoo-finance2" / "quoteSummary-calendarEvents-BTC-USD.json"
)
META = CALENDAR_FIXTURES / "gramistella__yfinance-rs" / "fundamentals_api_calendarEvents_META.json"
AUG15 = date(2025, 8, 15)
AAPL_EX_DIVIDEND = date(2025, 8, 11)  # paid 2025-08-14, the v7 quote's dividendDate
CALENDAR = f"{SUMMARY_PREFIX}AAPL"


def parse(path: Path, symbol: str = "AAPL") -> CalendarEvents:
    return parse_calendar_events(symbol, json.loads(path.read_bytes()))


def test_fixtures_keep_their_licences_and_sources() -> None:
    assert (CALENDAR_FIXTURES / "SOURCES.md").is_file()
    for folder in ("gadicc__node-yahoo-finance2", "gramistella__yfinance-rs"):
        assert (CALENDAR_FIXTURES / folder / "LICENSE.txt").is_file()


def test_a_recorded_calendar_with_epoch_values() -> None:
    events = parse(AAPL_2021)
    # Day values (00:00 UTC) are New York days: the ex-date 2021-02-05, not the 4th.
    assert events.ex_dividend_on == date(2021, 2, 5)
    assert [moment.date() for moment in events.earnings] == [date(2021, 4, 28), date(2021, 5, 3)]
    raw = json.loads(AAPL_2021.read_bytes())["quoteSummary"]["result"][0]["calendarEvents"]
    assert datetime.fromtimestamp(raw["dividendDate"], UTC).date() == date(2021, 2, 11)


def test_a_recorded_calendar_with_formatted_values() -> None:
    events = parse(META, "META")
    assert events.ex_dividend_on == date(2025, 9, 22)
    # A report at a moment stays that moment: 2025-10-29 16:00 New York.
    assert events.earnings == (datetime(2025, 10, 29, 20, 0, tzinfo=UTC),)


def test_a_symbol_without_a_calendar_has_no_events() -> None:
    assert parse(BTC_404, "BTC-USD") == NO_EVENTS


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"finance": {}},
        {"quoteSummary": {"result": [{"calendarEvents": []}]}},
        {"quoteSummary": {"result": [{"calendarEvents": {"exDividendDate": "soon"}}]}},
        {"quoteSummary": {"result": [{"calendarEvents": {"earnings": {"earningsDate": 5}}}]}},
    ],
)
def test_bodies_of_the_wrong_shape_are_refused(payload: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_calendar_events("AAPL", payload)


def test_events_become_the_quotes_dates() -> None:
    as_of = datetime(2025, 8, 15, 20, 0, tzinfo=UTC)
    quote = Quote("AAPL", 231.59, as_of, 0.0045, earnings_at=datetime(2025, 7, 31, 20, tzinfo=UTC))
    report = datetime(2025, 10, 30, 20, 0, tzinfo=UTC)
    past = datetime(2025, 7, 31, 20, 0, tzinfo=UTC)
    dated = with_events(quote, CalendarEvents((past, report), AAPL_EX_DIVIDEND))
    assert dated.earnings_at == report and dated.earnings_date == date(2025, 10, 30)
    # The ex-date takes effect at the start of its New York day.
    assert dated.ex_dividend_date == AAPL_EX_DIVIDEND
    assert dated.ex_dividend_at == datetime(2025, 8, 11, 4, 0, tzinfo=UTC)
    # A calendar without earnings leaves the v7 quote's own guess; no ex-date stays unknown.
    assert with_events(quote, NO_EVENTS).earnings_at == quote.earnings_at
    assert with_events(quote, NO_EVENTS).ex_dividend_at is None


def test_the_replay_source_has_no_ex_dividend_date(tmp_path: Path) -> None:
    # Replays hold v7 answers alone: earnings from the quote, the ex-date unknown.
    source = ReplaySource(build_replay_dir(tmp_path, "aapl"))
    quote = source.quote("AAPL")
    assert quote.earnings_date == date(2025, 10, 30)
    assert quote.ex_dividend_date is None


# -- through the emulator, with the memo in the real Redis ---------------------------------------


@pytest.fixture(scope="module")
def server(aapl_root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(aapl_root, calendars=CALENDARS, aliases={"BLNK": "AAPL"}) as emulator:
        yield emulator


@pytest.fixture
def yahoo(server: YahooEmulator) -> Iterator[YahooEmulator]:
    yield from cleaned(server)


class Day:
    """A New York day the test moves by hand."""

    def __init__(self, day: date):
        self.day = day

    def __call__(self) -> date:
        return self.day


@pytest.fixture
def make_source(tmp_path: Path, redis_client: redis.Redis, redis_prefix: str) -> Iterator:
    sources: list[YahooSource] = []
    today = Day(AUG15)

    def make(server: YahooEmulator, **policy: object) -> YahooSource:
        memo = YahooMemo(redis_client, redis_prefix, today)
        source = YahooSource(
            tmp_path / "cache",
            base_url=server.base_url,
            policy=FetchPolicy(**policy) if policy else None,  # type: ignore[arg-type]
            memo=memo,
        )
        sources.append(source)
        return source

    make.today = today  # type: ignore[attr-defined]
    yield make
    for source in sources:
        source.close()


def test_the_ex_dividend_date_comes_from_the_calendar_not_the_payment_date(
    yahoo: YahooEmulator, make_source
) -> None:
    source = make_source(yahoo)
    quote = source.quote("AAPL")
    assert quote.ex_dividend_date == AAPL_EX_DIVIDEND  # not 2025-08-14, the payment date
    assert quote.earnings_date == date(2025, 10, 30)
    # Every chain carries the same dates (analysis reads them from the chain's quote).
    chain = source.chain("AAPL", date(2025, 8, 22))
    assert chain.quote.ex_dividend_date == AAPL_EX_DIVIDEND
    assert yahoo.count(CALENDAR) == 1


def test_the_calendar_is_asked_for_once_per_symbol_and_new_york_day(
    yahoo: YahooEmulator, make_source, redis_client: redis.Redis, redis_prefix: str
) -> None:
    first = make_source(yahoo)
    first.quote("AAPL")
    first.expirations("AAPL")
    first.chain("AAPL", date(2025, 8, 29))
    assert yahoo.count(CALENDAR) == 1
    assert redis_client.exists(f"{redis_prefix}yahoo:calendar:2025-08-15:AAPL")
    # The next scan the same day reads Redis; the next day asks Yahoo again.
    assert make_source(yahoo).quote("AAPL").ex_dividend_date == AAPL_EX_DIVIDEND
    assert yahoo.count(CALENDAR) == 1
    make_source.today.day = date(2025, 8, 18)
    assert make_source(yahoo).quote("AAPL").ex_dividend_date == AAPL_EX_DIVIDEND
    assert yahoo.count(CALENDAR) == 2
    assert yahoo.count(f"{SUMMARY_PREFIX}AAPL") == 2


def test_a_failing_calendar_leaves_the_dates_unknown_and_the_scan_going(
    yahoo: YahooEmulator, make_source
) -> None:
    yahoo.inject("500", path=SUMMARY_PREFIX)
    source = make_source(yahoo, max_retries=1, backoff_base=0.01, backoff_cap=0.01)
    quote = source.quote("AAPL")
    assert quote.price == 231.59 and quote.ex_dividend_date is None
    assert quote.earnings_date == date(2025, 10, 30)  # the v7 quote's own
    assert len(source.chain("AAPL", date(2025, 8, 22)).puts) > 0
    # Under the same retries as every request, asked once per source, and not remembered.
    assert yahoo.count(CALENDAR) == 2
    yahoo.clear_faults()
    assert make_source(yahoo).quote("AAPL").ex_dividend_date == AAPL_EX_DIVIDEND


def test_a_symbol_without_a_calendar_is_remembered_as_such(
    yahoo: YahooEmulator, make_source
) -> None:
    # BLNK is served AAPL's v7 answers but has no calendar: Yahoo's 404 "no fundamentals".
    server_calendars = dict(yahoo.calendars)
    yahoo.calendars.pop("AAPL")
    try:
        assert make_source(yahoo, max_retries=0).quote("BLNK").ex_dividend_date is None
        assert make_source(yahoo, max_retries=0).quote("BLNK").ex_dividend_date is None
    finally:
        yahoo.calendars.update(server_calendars)
    assert yahoo.count(f"{SUMMARY_PREFIX}BLNK") == 1


def test_a_scan_reports_each_symbols_dates(make_app, yahoo: YahooEmulator) -> None:
    app = make_app(SOURCE=f"yahoo:{yahoo.base_url}", SECRET_KEY=SECRET_KEY)
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--json", "--symbols", "AAPL"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["symbols"]["AAPL"]
    assert report["ex_dividend_date"] == "2025-08-11"
    assert report["earnings_date"] == "2025-10-30"
