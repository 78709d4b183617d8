"""YahooSource: the real yfinance code path over HTTP, against the emulator serving recordings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from yfinance.data import YfData

from optscan.sources import make_source
from optscan.sources.base import (
    EmptyChain,
    MalformedResponse,
    NoOptions,
    RateLimited,
    SourceError,
    UnknownSymbol,
)
from optscan.sources.replay import ReplaySource
from optscan.sources.v7 import expiration_epoch
from optscan.sources.yahoo import YahooSession, YahooSource
from tests.emulator import cleaned
from tests.replaydirs import assert_frame_is_contracts, build_replay_dir
from tests.yahoo_emulator import CRUMB, YahooEmulator

OPTIONS = "/v7/finance/options/"
AUG15, AUG22, AUG29, SEP05 = (
    date(2025, 8, 15),
    date(2025, 8, 22),
    date(2025, 8, 29),
    date(2025, 9, 5),
)


@pytest.fixture(scope="module")
def premarket_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_replay_dir(tmp_path_factory.mktemp("premarket"), "premarket")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yfinance-cache")


@pytest.fixture(scope="module")
def aapl_server(aapl_root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(aapl_root) as server:
        yield server


@pytest.fixture(scope="module")
def premarket_server(premarket_root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(premarket_root) as server:
        yield server


@pytest.fixture
def aapl_yahoo(aapl_server: YahooEmulator) -> Iterator[YahooEmulator]:
    yield from cleaned(aapl_server)


@pytest.fixture
def premarket_yahoo(premarket_server: YahooEmulator) -> Iterator[YahooEmulator]:
    yield from cleaned(premarket_server)


@pytest.fixture
def source_for(cache_dir: Path) -> Iterator:
    sources: list[YahooSource] = []

    def make(server: YahooEmulator, **kwargs: object) -> YahooSource:
        source = YahooSource(cache_dir, base_url=server.base_url, **kwargs)
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def raw(root: Path, symbol: str, day: date) -> dict:
    return json.loads((root / symbol / f"{day}.json").read_bytes())["optionChain"]["result"][0]


def v7_hits(server: YahooEmulator) -> int:
    return sum(1 for hit in server.hits if hit.path.startswith(OPTIONS))


def test_quote_comes_from_the_answer_without_a_date_in_yahoo_units(
    aapl_yahoo: YahooEmulator, aapl_root: Path, source_for
) -> None:
    quote = source_for(aapl_yahoo).quote("AAPL")
    recorded = raw(aapl_root, "AAPL", AUG15)["quote"]
    assert quote.symbol == "AAPL"
    assert quote.price == recorded["regularMarketPrice"] == 231.59
    # Captured 2025-08-15 16:00 ET, just after that day's close.
    assert quote.as_of == datetime.fromtimestamp(recorded["regularMarketTime"], UTC)
    assert quote.as_of.date() == AUG15 and quote.as_of.hour == 20
    # dividendYield 0.45 is percent: 0.0045 as a fraction, ~ $1.04 a year / $231.59.
    assert recorded["dividendYield"] == 0.45
    assert quote.dividend_yield == pytest.approx(0.0045)
    assert quote.dividend_yield == pytest.approx(1.04 / 231.59, rel=0.01)
    assert quote.earnings_at == datetime(2025, 10, 30, 20, 0, tzinfo=UTC)
    # dividendDate (2025-08-14) is the day AAPL paid; its ex-date was 2025-08-11. The v7 answer
    # has no exDividendDate, and without the calendar the ex-date is unknown.
    assert recorded["dividendDate"] and "exDividendDate" not in recorded
    assert quote.ex_dividend_at is None and quote.ex_dividend_date is None
    assert quote.market_state == "POST"
    assert quote.currency == "USD"


def test_expirations_are_the_listed_days_nearest_first(
    aapl_yahoo: YahooEmulator, aapl_root: Path, source_for
) -> None:
    expirations = source_for(aapl_yahoo).expirations("aapl")
    listed = raw(aapl_root, "AAPL", AUG15)["expirationDates"]
    assert expirations == [
        date(1970, 1, 1) + timedelta(days=epoch // 86400) for epoch in sorted(listed)
    ]
    assert expirations[:4] == [AUG15, AUG22, AUG29, SEP05]
    # AAPL options expire on Fridays, or on the Thursday before a Friday holiday: Juneteenth
    # falls on Friday 2026-06-19 and is observed on Friday 2027-06-18.
    thursdays = {date(2026, 6, 18), date(2027, 6, 17)}
    assert thursdays <= set(expirations)
    assert all(day.weekday() == 4 for day in expirations if day not in thursdays)


def test_chains_hold_exactly_the_recorded_contracts(
    aapl_yahoo: YahooEmulator, aapl_root: Path, source_for
) -> None:
    source = source_for(aapl_yahoo)
    for day in (AUG15, AUG22, date(2025, 9, 19), date(2025, 10, 31)):
        chain = source.chain("AAPL", day)
        recorded = raw(aapl_root, "AAPL", day)
        assert chain.symbol == "AAPL" and chain.expiration == day
        assert_frame_is_contracts(chain.calls.frame(), recorded["options"][0]["calls"])
        assert_frame_is_contracts(chain.puts.frame(), recorded["options"][0]["puts"])
        # Each chain carries the quote it was captured with, not today's.
        captured = datetime.fromtimestamp(recorded["quote"]["regularMarketTime"], UTC)
        assert chain.quote.as_of == captured
    assert source.chain("AAPL", date(2025, 10, 31)).quote.as_of.date() == date(2025, 10, 29)


def test_the_first_answer_is_reused_and_nothing_is_fetched_twice(
    aapl_yahoo: YahooEmulator, source_for
) -> None:
    source = source_for(aapl_yahoo)
    listing_path = f"{OPTIONS}AAPL"
    expirations = source.expirations("AAPL")
    source.quote("AAPL")
    assert aapl_yahoo.count(listing_path, date=None) == 1
    assert v7_hits(aapl_yahoo) == 1

    # The nearest chain came with the first answer.
    assert source.chain("AAPL", expirations[0]).expiration == AUG15
    assert v7_hits(aapl_yahoo) == 1

    # One request per further expiration, and none for one already fetched.
    for day in (AUG22, AUG29, AUG22, AUG29, SEP05):
        source.chain("AAPL", day)
    source.expirations("AAPL")
    source.quote("AAPL")
    assert v7_hits(aapl_yahoo) == 4
    for day in (AUG22, AUG29, SEP05):
        assert aapl_yahoo.count(listing_path, date=expiration_epoch(day)) == 1
    # yfinance fetched its cookie and crumb and sent the crumb with every v7 request.
    assert aapl_yahoo.count("/v1/test/getcrumb") == 1
    assert all(h.crumb == CRUMB for h in aapl_yahoo.hits if h.path.startswith(OPTIONS))


def test_a_fresh_source_fetches_again(aapl_yahoo: YahooEmulator, source_for) -> None:
    source_for(aapl_yahoo).expirations("AAPL")
    source_for(aapl_yahoo).expirations("AAPL")
    assert aapl_yahoo.count(f"{OPTIONS}AAPL", date=None) == 2


def test_persistent_429_is_rate_limited(aapl_yahoo: YahooEmulator, source_for) -> None:
    aapl_yahoo.inject("429", date=expiration_epoch(AUG22))
    source = source_for(aapl_yahoo)
    source.expirations("AAPL")
    with pytest.raises(RateLimited, match="429") as caught:
        source.chain("AAPL", AUG22)
    assert caught.value.kind == "rate_limited"
    # yfinance retries once with its other cookie strategy before giving up.
    assert aapl_yahoo.count(f"{OPTIONS}AAPL", date=expiration_epoch(AUG22)) == 2


def test_a_single_429_is_absorbed_by_yfinances_own_retry(
    aapl_yahoo: YahooEmulator, aapl_root: Path, source_for
) -> None:
    aapl_yahoo.inject("429", times=1)
    chain = source_for(aapl_yahoo).chain("AAPL", AUG22)
    assert len(chain.calls) == len(raw(aapl_root, "AAPL", AUG22)["options"][0]["calls"])
    assert aapl_yahoo.count(f"{OPTIONS}AAPL", date=expiration_epoch(AUG22)) == 2


def test_http_500_is_an_error_never_no_options(aapl_yahoo: YahooEmulator, source_for) -> None:
    aapl_yahoo.inject("500", date=None)
    source = source_for(aapl_yahoo)
    for ask in (source.expirations, source.quote):
        with pytest.raises(SourceError, match="HTTP 500") as caught:
            ask("AAPL")
        assert not isinstance(caught.value, NoOptions)
        assert caught.value.kind == "error"


def test_failures_are_not_memoised(aapl_yahoo: YahooEmulator, source_for) -> None:
    # Two 500s: yfinance's first try and its retry; the next call must ask Yahoo again.
    aapl_yahoo.inject("500", date=expiration_epoch(AUG29), times=2)
    source = source_for(aapl_yahoo)
    with pytest.raises(SourceError, match="HTTP 500"):
        source.chain("AAPL", AUG29)
    assert source.chain("AAPL", AUG29).expiration == AUG29
    assert aapl_yahoo.count(f"{OPTIONS}AAPL", date=expiration_epoch(AUG29)) == 3


@pytest.mark.parametrize(
    ("fault", "message"),
    [("truncated", "not JSON"), ("html", "not JSON"), ("not_v7", "no optionChain")],
)
def test_bodies_that_are_not_v7_json_are_malformed(
    aapl_yahoo: YahooEmulator, source_for, fault: str, message: str
) -> None:
    aapl_yahoo.inject(fault)
    source = source_for(aapl_yahoo)
    with pytest.raises(MalformedResponse, match=message) as caught:
        source.expirations("AAPL")
    assert caught.value.kind == "malformed"
    # yfinance never saw the body: no yfinance error, no "no options".
    aapl_yahoo.clear_faults()
    assert source.expirations("AAPL")[0] == AUG15


def test_an_expired_day_is_an_empty_chain(premarket_yahoo: YahooEmulator, source_for) -> None:
    with pytest.raises(EmptyChain, match="2022-03-01") as caught:
        source_for(premarket_yahoo).chain("AAPL", date(2022, 3, 1))
    assert caught.value.kind == "empty"


def test_a_day_yahoo_lists_nothing_on_is_an_empty_chain(
    aapl_yahoo: YahooEmulator, source_for
) -> None:
    # 2025-10-10 was never listed: the emulator answers as Yahoo did for AAPL 2022-03-01.
    with pytest.raises(EmptyChain):
        source_for(aapl_yahoo).chain("AAPL", date(2025, 10, 10))


def test_a_symbol_without_options(premarket_yahoo: YahooEmulator, source_for) -> None:
    source = source_for(premarket_yahoo)
    with pytest.raises(NoOptions) as caught:
        source.expirations("BTC-USD")
    assert caught.value.kind == "no_options"
    quote = source.quote("BTC-USD")
    assert quote.price == 95744.33 and quote.dividend_yield == 0.0
    assert premarket_yahoo.count(f"{OPTIONS}BTC-USD") == 1
    with pytest.raises(NoOptions):
        source.chain("BTC-USD", date(2025, 2, 28))


def test_pre_market_chains_have_zero_bids(premarket_yahoo: YahooEmulator, source_for) -> None:
    source = source_for(premarket_yahoo)
    chain = source.chain("GOOG", source.expirations("GOOG")[0])
    assert chain.quote.market_state == "PRE"
    both = pd.concat([chain.calls.frame(), chain.puts.frame()])
    assert (both["bid"].fillna(0) == 0).mean() > 0.9


def test_an_unknown_symbol_answered_404(premarket_yahoo: YahooEmulator, source_for) -> None:
    with pytest.raises(UnknownSymbol) as caught:
        source_for(premarket_yahoo).expirations("NOPE")
    assert caught.value.kind == "unknown_symbol"
    assert caught.value.message == "Yahoo does not know NOPE"
    assert caught.value.symbol == "NOPE"


def test_an_unknown_symbol_answered_with_an_empty_result(
    premarket_root: Path, cache_dir: Path
) -> None:
    # What Yahoo was seen to send for a bare "SPX": 200 and {"result": []}.
    with (
        YahooEmulator(premarket_root, unknown_symbol="empty") as server,
        YahooSource(cache_dir, base_url=server.base_url) as source,
        pytest.raises(UnknownSymbol, match="Yahoo does not know SPX") as caught,
    ):
        source.expirations("SPX")
    assert not isinstance(caught.value, NoOptions)  # BTC-USD, which exists, has no options


def test_a_hung_request_times_out(aapl_yahoo: YahooEmulator, source_for) -> None:
    aapl_yahoo.inject("hang", date=expiration_epoch(AUG22))
    source = source_for(aapl_yahoo, timeout=0.5)
    source.expirations("AAPL")
    with pytest.raises(SourceError, match=r"did not answer within 0.5 s"):
        source.chain("AAPL", AUG22)
    (hung,) = [h for h in aapl_yahoo.hits if h.date == expiration_epoch(AUG22)]
    # The source gave up while the emulator still hung (it hangs for hang_seconds).
    assert hung.path == f"{OPTIONS}AAPL" and hung.status == -1


def test_a_dropped_connection_is_a_plain_source_error(
    aapl_yahoo: YahooEmulator, source_for
) -> None:
    aapl_yahoo.inject("drop")
    with pytest.raises(SourceError, match="request to Yahoo failed") as caught:
        source_for(aapl_yahoo).expirations("AAPL")
    assert type(caught.value) is SourceError
    assert "Traceback" not in caught.value.message


def test_a_symbol_that_is_not_a_ticker_is_refused_without_a_request(
    aapl_yahoo: YahooEmulator, source_for
) -> None:
    source = source_for(aapl_yahoo)
    with pytest.raises(SourceError, match="not a ticker symbol"):
        source.expirations("../AAPL")
    # Apple's ISIN (12 characters, beyond the symbol rule): yf.Ticker would resolve it
    # through yfinance's global session.
    with pytest.raises(SourceError, match="not a ticker symbol"):
        source.chain("US0378331005", AUG22)
    assert aapl_yahoo.hits == []


def test_fetch_raw_returns_the_body_yahoo_sent(
    aapl_yahoo: YahooEmulator, aapl_root: Path, source_for
) -> None:
    source = source_for(aapl_yahoo)
    assert (
        source.fetch_raw("AAPL", None).encode()
        == (aapl_root / "AAPL" / f"{AUG15}.json").read_bytes()
    )
    body = source.fetch_raw("AAPL", expiration_epoch(AUG29))
    assert body.encode() == (aapl_root / "AAPL" / f"{AUG29}.json").read_bytes()
    aapl_yahoo.inject("429")
    with pytest.raises(RateLimited):
        source.fetch_raw("AAPL", None)


def test_sources_keep_their_own_base_url_and_leave_yfinance_global_alone(
    aapl_yahoo: YahooEmulator, premarket_yahoo: YahooEmulator, source_for
) -> None:
    aapl = source_for(aapl_yahoo)
    premarket = source_for(premarket_yahoo)
    assert aapl.quote("AAPL").as_of.year == 2025 and aapl.quote("AAPL").price == 231.59
    assert premarket.quote("AAPL").price == 245.55
    assert aapl_yahoo.count(f"{OPTIONS}AAPL") == 1
    assert premarket_yahoo.count(f"{OPTIONS}AAPL") == 1
    assert not isinstance(YfData()._session, YahooSession)


def test_the_session_only_moves_yahoo_hosts_and_caps_timeouts() -> None:
    session = YahooSession("http://127.0.0.1:9/", timeout=2.5, cooperative=False)
    try:
        assert session.cooperative is False
        assert session._redirect("https://fc.yahoo.com") == "http://127.0.0.1:9/"
        assert (
            session._redirect("https://query2.finance.yahoo.com/v7/finance/options/A?date=1")
            == "http://127.0.0.1:9/v7/finance/options/A?date=1"
        )
        assert session._redirect("https://example.com/x") == "https://example.com/x"
        assert session._redirect("https://notyahoo.com/x") == "https://notyahoo.com/x"
    finally:
        session.close()


def test_make_source(aapl_yahoo: YahooEmulator, aapl_root: Path, cache_dir: Path) -> None:
    source = make_source(f"yahoo:{aapl_yahoo.base_url}", cache_dir=cache_dir)
    assert isinstance(source, YahooSource)
    assert source.expirations("AAPL")[0] == AUG15
    source.close()
    assert isinstance(make_source("yahoo", cache_dir=cache_dir), YahooSource)
    replay = make_source(f"replay:{aapl_root}", cache_dir=cache_dir)
    assert isinstance(replay, ReplaySource)
    assert replay.expirations("AAPL")[0] == AUG15
    for bad in ("", "yahoo:", "replay:", "replay", "polygon", "Yahoo"):
        with pytest.raises(ValueError, match=r"yahoo.*replay:<dir>"):
            make_source(bad, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="does not exist"):
        make_source(f"replay:{aapl_root / 'missing'}", cache_dir=cache_dir)


def test_base_url_and_session_are_exclusive(cache_dir: Path) -> None:
    session = YahooSession(cooperative=False)
    try:
        with pytest.raises(ValueError, match="not both"):
            YahooSource(cache_dir, session=session, base_url="http://127.0.0.1:9")
    finally:
        session.close()


def test_yfinance_caches_live_in_the_given_folder(
    aapl_yahoo: YahooEmulator, tmp_path: Path, cache_dir: Path
) -> None:
    import yfinance.cache as yf_cache

    folder = tmp_path / "instance" / "yfinance-cache"
    with YahooSource(folder, base_url=aapl_yahoo.base_url) as source:
        source.expirations("AAPL")
        assert folder.is_dir()
        assert yf_cache._CookieDBManager.get_location() == str(folder)
        assert yf_cache._TzDBManager.get_location() == str(folder)
    # Put the module's shared folder back for the other tests.
    YahooSource(cache_dir).close()
