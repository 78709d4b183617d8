"""ReplaySource on each recorded set: what was recorded, as of when it was captured."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from optscan.sources.base import (
    CHAIN_COLUMNS,
    EmptyChain,
    MalformedResponse,
    NoOptions,
    SourceError,
)
from optscan.sources.replay import ReplaySource
from tests.replaydirs import FIXTURES, build_replay_dir

EPOCH = date(1970, 1, 1)


def day_of(epoch: int) -> date:
    assert epoch % 86400 == 0
    return EPOCH + timedelta(days=epoch // 86400)


def fixture_days(folder: str, pattern: str) -> dict[str, set[date]]:
    """Return, per symbol, the expiration days the fixture files carry a chain for."""
    days: dict[str, set[date]] = {}
    for path in (FIXTURES / folder).glob(pattern):
        result = json.loads(path.read_bytes())["optionChain"]["result"][0]
        entry = days.setdefault(result["underlyingSymbol"], set())
        if result["options"]:
            entry.add(day_of(result["options"][0]["expirationDate"]))
    return days


def assert_frame_is_contracts(frame, contracts: list[dict]) -> None:
    assert tuple(frame.columns) == CHAIN_COLUMNS
    assert list(frame["contractSymbol"]) == [c["contractSymbol"] for c in contracts]
    for column in CHAIN_COLUMNS[1:]:
        for value, contract in zip(frame[column], contracts, strict=True):
            if column in contract:
                assert value == contract[column]
            else:
                assert math.isnan(value)


@pytest.fixture(scope="module")
def aapl(tmp_path_factory: pytest.TempPathFactory) -> ReplaySource:
    return ReplaySource(build_replay_dir(tmp_path_factory.mktemp("r"), "aapl"))


@pytest.fixture(scope="module")
def premarket(tmp_path_factory: pytest.TempPathFactory) -> ReplaySource:
    return ReplaySource(build_replay_dir(tmp_path_factory.mktemp("r"), "premarket"))


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> ReplaySource:
    return ReplaySource(build_replay_dir(tmp_path_factory.mktemp("r"), "2016"))


def test_aapl_lists_the_recorded_days(aapl: ReplaySource) -> None:
    recorded = fixture_days("gramistella__yfinance-rs", "*.json")["AAPL"]
    assert len(recorded) == 10  # eleven files, two of them the same 2025-10-31 answer
    assert aapl.symbols() == ["AAPL"]
    assert aapl.expirations("AAPL") == sorted(recorded)
    assert aapl.expirations("aapl")[0] == date(2025, 8, 15)


def test_aapl_quote_is_the_front_recording_as_of_its_capture(aapl: ReplaySource) -> None:
    quote = aapl.quote("AAPL")
    # Captured 2025-08-15 20:00 UTC (16:00 ET), whatever today's date is.
    assert quote.as_of == datetime(2025, 8, 15, 20, 0, 1, tzinfo=UTC)
    assert quote.price == 231.59
    assert quote.dividend_yield == pytest.approx(0.0045)


def test_each_chain_is_its_file_with_its_own_capture_time(aapl: ReplaySource) -> None:
    for day in aapl.expirations("AAPL"):
        path = aapl.root / "AAPL" / f"{day}.json"
        result = json.loads(path.read_bytes())["optionChain"]["result"][0]
        chain = aapl.chain("AAPL", day)
        assert chain.expiration == day
        assert_frame_is_contracts(chain.calls.frame(), result["options"][0]["calls"])
        assert_frame_is_contracts(chain.puts.frame(), result["options"][0]["puts"])
        assert chain.quote.as_of == datetime.fromtimestamp(
            result["quote"]["regularMarketTime"], UTC
        )


def test_a_day_not_recorded_names_the_directory(aapl: ReplaySource) -> None:
    with pytest.raises(SourceError, match=str(aapl.root / "AAPL")) as caught:
        aapl.chain("AAPL", date(2025, 10, 10))
    assert type(caught.value) is SourceError


def test_an_unknown_symbol_names_itself_and_the_directory(aapl: ReplaySource) -> None:
    for ask in (aapl.expirations, aapl.quote):
        with pytest.raises(SourceError) as caught:
            ask("NOPE")
        assert type(caught.value) is SourceError
        assert "NOPE" in caught.value.message and str(aapl.root) in caught.value.message


def test_premarket_symbols(premarket: ReplaySource) -> None:
    days = fixture_days("gadicc__node-yahoo-finance2", "*.json")
    assert premarket.symbols() == sorted(days)
    for symbol, recorded in days.items():
        if recorded:
            assert premarket.expirations(symbol) == sorted(recorded)


def test_premarket_aapl_front_is_the_live_answer_not_the_expired_day(
    premarket: ReplaySource,
) -> None:
    assert premarket.expirations("AAPL") == [date(2022, 3, 1), date(2025, 2, 28)]
    assert premarket.front_path("AAPL").name == "2025-02-28.json"
    assert premarket.quote("AAPL").price == 245.55
    with pytest.raises(EmptyChain) as caught:
        premarket.chain("AAPL", date(2022, 3, 1))
    assert caught.value.kind == "empty"


def test_premarket_chains_have_no_live_bids(premarket: ReplaySource) -> None:
    chain = premarket.chain("AAPL", date(2025, 2, 28))
    assert chain.quote.market_state == "PRE"
    bids = list(chain.calls.bid) + list(chain.puts.bid)
    assert sum(1 for b in bids if b == 0) / len(bids) > 0.9


def test_a_symbol_recorded_without_options(premarket: ReplaySource) -> None:
    quote = premarket.quote("BTC-USD")
    assert quote.price == 95744.33
    assert quote.as_of == datetime(2025, 2, 24, 9, 22, tzinfo=UTC)
    with pytest.raises(NoOptions):
        premarket.expirations("BTC-USD")
    with pytest.raises(NoOptions):
        premarket.chain("BTC-USD", date(2025, 2, 28))


def test_the_2016_recording(old: ReplaySource) -> None:
    assert old.expirations("AAPL") == [date(2016, 9, 9)]
    quote = old.quote("AAPL")
    assert quote.price == 107.68
    assert quote.as_of.date() == date(2016, 9, 6)
    assert quote.dividend_yield == 0.0  # that answer carried no dividendYield
    chain = old.chain("AAPL", date(2016, 9, 9))
    assert len(chain.calls) == len(chain.puts) == 38


def test_a_recording_that_is_not_json_is_malformed(tmp_path: Path) -> None:
    root = build_replay_dir(tmp_path / "r", "2016")
    (root / "AAPL" / "2016-09-16.json").write_text("<html>not json</html>")
    source = ReplaySource(root)
    with pytest.raises(MalformedResponse, match=r"2016-09-16\.json"):
        source.chain("AAPL", date(2016, 9, 16))
    # The good recording still replays.
    assert source.chain("AAPL", date(2016, 9, 9)).expiration == date(2016, 9, 9)


def test_a_recording_under_the_wrong_day_is_malformed(tmp_path: Path) -> None:
    root = build_replay_dir(tmp_path / "r", "2016")
    (root / "AAPL" / "2016-09-09.json").rename(root / "AAPL" / "2016-09-16.json")
    with pytest.raises(MalformedResponse, match="2016-09-09"):
        ReplaySource(root).chain("AAPL", date(2016, 9, 16))


def test_other_files_are_ignored(tmp_path: Path) -> None:
    root = build_replay_dir(tmp_path / "r", "2016")
    (root / "AAPL" / "notes.txt").write_text("x")
    (root / "AAPL" / "2016-02-30.json").write_text("{}")
    (root / "README.md").write_text("x")
    assert ReplaySource(root).expirations("AAPL") == [date(2016, 9, 9)]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ReplaySource(tmp_path / "nowhere")


def test_unknown_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aapl"):
        build_replay_dir(tmp_path, "msft")
