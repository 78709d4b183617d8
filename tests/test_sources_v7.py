"""The v7 body parser against the recorded Yahoo answers and against broken bodies."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from optscan.sources.base import (
    MalformedResponse,
    SourceError,
    UnknownSymbol,
)
from optscan.sources.v7 import (
    expiration_date,
    expiration_epoch,
    normalise_symbol,
    parse_v7,
)
from tests.replaydirs import FIXTURES, assert_frame_is_contracts

ALL_FIXTURES = sorted(FIXTURES.glob("*/*.json"))
EPOCH = date(1970, 1, 1)


def raw_result(path: Path) -> dict:
    return json.loads(path.read_bytes())["optionChain"]["result"][0]


def day_of(epoch: int) -> date:
    # Independent of the parser: Yahoo's expiration epochs are whole UTC days.
    assert epoch % 86400 == 0
    return EPOCH + timedelta(days=epoch // 86400)


def test_fixtures_are_all_here_with_their_licences() -> None:
    assert len(ALL_FIXTURES) == 27
    assert (FIXTURES / "SOURCES.md").is_file()
    for folder in ("gadicc__node-yahoo-finance2", "gramistella__yfinance-rs"):
        assert (FIXTURES / folder / "LICENSE.txt").is_file()
    assert (FIXTURES / "pydata__pandas-datareader" / "LICENSE.md").is_file()


def test_expiration_epochs_are_midnight_utc() -> None:
    # File names of the yfinance-rs recordings pair each day with Yahoo's epoch.
    assert expiration_epoch(date(2025, 8, 15)) == 1755216000
    assert expiration_epoch(date(2025, 10, 31)) == 1761868800
    assert expiration_date(1755820800) == date(2025, 8, 22)
    for offset in range(0, 4000, 37):
        day = date(2016, 1, 1) + timedelta(days=offset)
        assert expiration_date(expiration_epoch(day)) == day
        assert expiration_epoch(day) == (day - EPOCH).days * 86400


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_every_recording_parses_to_its_raw_contents(path: Path) -> None:
    raw = raw_result(path)
    symbol = raw["underlyingSymbol"]
    answer = parse_v7(path.read_bytes(), symbol)
    quote = raw["quote"]

    assert answer.quote.symbol == symbol
    assert answer.quote.price == quote["regularMarketPrice"]
    assert answer.quote.as_of == datetime.fromtimestamp(quote["regularMarketTime"], UTC)
    assert answer.quote.as_of.utcoffset() == timedelta(0)
    assert answer.quote.market_state == quote["marketState"]
    assert answer.expirations == sorted(day_of(e) for e in raw["expirationDates"])

    if not raw["options"]:
        assert answer.chain is None
        return
    option = raw["options"][0]
    chain = answer.chain
    assert chain is not None
    assert chain.expiration == day_of(option["expirationDate"])
    assert chain.quote == answer.quote
    for side, contracts in ((chain.calls, option["calls"]), (chain.puts, option["puts"])):
        assert_frame_is_contracts(side.frame(), contracts)


def test_dividend_yield_is_a_fraction_matching_rate_over_price() -> None:
    checked = 0
    for path in ALL_FIXTURES:
        raw = raw_result(path)["quote"]
        answer = parse_v7(path.read_bytes(), raw["symbol"])
        if "dividendYield" not in raw:
            assert answer.quote.dividend_yield == 0.0
            continue
        assert answer.quote.dividend_yield == pytest.approx(raw["dividendYield"] / 100)
        if raw.get("dividendRate"):
            # Forward annual dividend (USD) / price (USD) is the same yield as a fraction;
            # Yahoo rounds to 0.01 % and prices it off another close, hence 5 %. A unit slip
            # (percent left as percent) would be off by a factor of 100.
            expected = raw["dividendRate"] / raw["regularMarketPrice"]
            assert answer.quote.dividend_yield == pytest.approx(expected, rel=0.05)
            checked += 1
    assert checked >= 10


def test_next_earnings_skips_the_report_already_past() -> None:
    # On 2025-02-21 AAPL had reported on 2025-01-30; the next window opened 2025-04-30.
    path = FIXTURES / "gadicc__node-yahoo-finance2" / "options-AAPL.json"
    quote = parse_v7(path.read_bytes(), "AAPL").quote
    assert quote.earnings_at is not None
    assert quote.earnings_at.date() == date(2025, 4, 30)
    assert quote.earnings_at > quote.as_of
    # AAPL reported fiscal Q4 2025 on 2025-10-30 after the close (20:00 UTC).
    path = FIXTURES / "gramistella__yfinance-rs" / "options_v7_AAPL_1761868800.json"
    quote = parse_v7(path.read_bytes(), "AAPL").quote
    assert quote.earnings_at == datetime(2025, 10, 30, 20, 0, tzinfo=UTC)
    # SPOT's only date (2025-02-04) was past on 2025-02-21: no next earnings known.
    path = FIXTURES / "gadicc__node-yahoo-finance2" / "options-SPOT.json"
    assert parse_v7(path.read_bytes(), "SPOT").quote.earnings_at is None


def test_the_dividend_date_is_never_taken_for_the_ex_dividend_date() -> None:
    # ABBV's dividendDate 2025-05-15 is the day it paid; it went ex-dividend on 2025-04-15.
    path = FIXTURES / "gadicc__node-yahoo-finance2" / "options-ABBV.json"
    raw = raw_result(path)["quote"]
    assert "exDividendDate" not in raw and raw["dividendDate"] == 1747267200
    quote = parse_v7(path.read_bytes(), "ABBV").quote
    assert quote.ex_dividend_at is None and quote.ex_dividend_date is None
    path = FIXTURES / "gadicc__node-yahoo-finance2" / "options-AMZN.json"
    assert parse_v7(path.read_bytes(), "AMZN").quote.ex_dividend_at is None


def test_an_ex_dividend_date_in_the_quote_is_that_new_york_day() -> None:
    # Day values are 00:00 UTC of the day, which is the evening before in New York.
    quote = {
        "symbol": "XYZ",
        "regularMarketPrice": 10.0,
        "regularMarketTime": 1755288000,
        "exDividendDate": 1754870400,  # 2025-08-11
        "dividendDate": 1755129600,  # 2025-08-14
    }
    parsed = parse_v7(body(quote=quote), "XYZ").quote
    assert parsed.ex_dividend_date == date(2025, 8, 11)
    assert parsed.ex_dividend_at == datetime(2025, 8, 11, 4, 0, tzinfo=UTC)  # 00:00 EDT


def test_missing_volume_and_open_interest_are_nan() -> None:
    path = FIXTURES / "gramistella__yfinance-rs" / "options_v7_AAPL_1758240000.json"
    raw = raw_result(path)["options"][0]
    chain = parse_v7(path.read_bytes(), "AAPL").chain
    assert chain is not None
    missing = [c["contractSymbol"] for c in raw["calls"] + raw["puts"] if "volume" not in c]
    assert missing, "this recording has contracts without volume"
    frame = chain.calls.frame().set_index("contractSymbol")
    frame = frame.combine_first(chain.puts.frame().set_index("contractSymbol"))
    assert frame.loc[missing, "volume"].isna().all()
    assert frame["volume"].notna().sum() == len(frame) - len(missing)


def body(**result: object) -> str:
    base = {
        "underlyingSymbol": "XYZ",
        "expirationDates": [1755216000],
        "quote": {"symbol": "XYZ", "regularMarketPrice": 10.0, "regularMarketTime": 1755288000},
        "options": [],
    }
    base.update(result)
    return json.dumps({"optionChain": {"result": [base], "error": None}})


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("<html>oops</html>", MalformedResponse),
        ('{"optionChain": {"result": [', MalformedResponse),
        ("[1, 2]", MalformedResponse),
        ('{"finance": {"result": null, "error": null}}', MalformedResponse),
        ('{"optionChain": {"result": {}}}', MalformedResponse),
        ('{"optionChain": {"result": [], "error": null}}', UnknownSymbol),
        (body(expirationDates="soon"), MalformedResponse),
        (body(quote=None), MalformedResponse),
        (body(quote={"regularMarketPrice": 10.0}), MalformedResponse),
        (body(quote={"regularMarketPrice": "10", "regularMarketTime": 1}), MalformedResponse),
        (body(underlyingSymbol="OTHER"), MalformedResponse),
        (body(options=[{"calls": [], "puts": []}]), MalformedResponse),
        (
            body(options=[{"expirationDate": 1755216000, "calls": [{"strike": 5}], "puts": []}]),
            MalformedResponse,
        ),
        (
            body(
                options=[
                    {
                        "expirationDate": 1755216000,
                        "calls": [{"contractSymbol": "X", "strike": 5, "bid": "0.1"}],
                        "puts": [],
                    }
                ]
            ),
            MalformedResponse,
        ),
        (
            body(
                options=[
                    {
                        "expirationDate": 1755216000,
                        "calls": [{"contractSymbol": "X", "strike": 5, "volume": True}],
                        "puts": [],
                    }
                ]
            ),
            MalformedResponse,
        ),
        (
            body(
                options=[
                    {
                        "expirationDate": 1755216000,
                        "calls": [],
                        "puts": [{"contractSymbol": "X", "strike": None, "bid": 0.1}],
                    }
                ]
            ),
            MalformedResponse,
        ),
        (
            body(options=[{"expirationDate": 1755216000, "calls": {}, "puts": []}]),
            MalformedResponse,
        ),
        (
            body(options=[{"expirationDate": 1755216000, "calls": [], "puts": ["X"]}]),
            MalformedResponse,
        ),
        ('{"optionChain": {"result": [{"bid": NaN}]}}', MalformedResponse),
    ],
)
def test_bodies_of_the_wrong_shape_are_refused(raw: str, kind: type[SourceError]) -> None:
    with pytest.raises(kind) as caught:
        parse_v7(raw, "XYZ")
    assert type(caught.value) is kind
    assert caught.value.symbol == "XYZ"


def test_an_error_yahoo_reports_in_the_body_is_a_source_error() -> None:
    raw = (
        '{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}'
    )
    with pytest.raises(SourceError, match="Invalid Crumb") as caught:
        parse_v7(raw, "AAPL")
    assert type(caught.value) is SourceError


def test_a_minimal_body_parses() -> None:
    answer = parse_v7(body(), "xyz")
    assert answer.quote.symbol == "XYZ"
    assert answer.quote.dividend_yield == 0.0
    assert answer.quote.earnings_at is None
    assert answer.expirations == [date(2025, 8, 15)]
    assert answer.chain is None


@pytest.mark.parametrize("symbol", ["aapl", "BRK-B", "^SPX", "BTC-USD", "EURUSD=X", " msft "])
def test_ticker_symbols_are_accepted(symbol: str) -> None:
    assert normalise_symbol(symbol) == symbol.strip().upper()


@pytest.mark.parametrize("symbol", ["", "../etc", "AAPL/X", "AA PL", "A" * 21, "AAPL?date=1"])
def test_other_strings_are_not_symbols(symbol: str) -> None:
    with pytest.raises(SourceError, match="not a ticker symbol"):
        normalise_symbol(symbol)


def test_a_body_given_as_data_with_infinite_numbers_is_refused() -> None:
    option = {
        "expirationDate": 1755216000,
        "calls": [{"contractSymbol": "X1", "strike": 5.0, "bid": 0.1}],
        "puts": [{"contractSymbol": "X2", "strike": 5.0, "ask": math.inf}],
    }
    payload = json.loads(body(options=[option]))
    with pytest.raises(MalformedResponse, match=r"X2\.ask is not a number"):
        parse_v7(payload, "XYZ")
    payload["optionChain"]["result"][0]["options"][0]["puts"] = [
        {"contractSymbol": "X2", "strike": math.nan}
    ]
    with pytest.raises(MalformedResponse, match=r"X2\.strike is not a number"):
        parse_v7(payload, "XYZ")


def test_contracts_arrive_as_arrays_with_nan_for_what_is_missing() -> None:
    option = {
        "expirationDate": 1755216000,
        "calls": [
            {"contractSymbol": "C1", "strike": 5, "bid": 1, "ask": 1.5, "volume": 3},
            {"contractSymbol": "C2", "strike": 7.5, "bid": None},
        ],
        "puts": [],
    }
    chain = parse_v7(body(options=[option]), "XYZ").chain
    assert chain is not None and chain.puts.empty and len(chain.calls) == 2
    calls = chain.calls
    assert calls.contract == ("C1", "C2")
    assert calls.strike.dtype == np.float64 and list(calls.strike) == [5.0, 7.5]
    assert calls.bid[0] == 1.0 and math.isnan(calls.bid[1])
    assert calls.volume[0] == 3.0 and math.isnan(calls.volume[1])
    assert np.isnan(calls.open_interest).all() and np.isnan(calls.vendor_iv).all()
