"""record(): from the emulator through the real YahooSource.fetch_raw, then replay it back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from optscan.sources.base import NoOptions
from optscan.sources.record import record
from optscan.sources.replay import ReplaySource
from optscan.sources.v7 import expiration_epoch
from optscan.sources.yahoo import YahooSource
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

OPTIONS = "/v7/finance/options/"
AUG15 = date(2025, 8, 15)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yfinance-cache")


@pytest.fixture
def yahoo(aapl_root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(aapl_root) as server:
        yield server


@pytest.fixture
def source(yahoo: YahooEmulator, cache_dir: Path) -> Iterator[YahooSource]:
    with YahooSource(cache_dir, base_url=yahoo.base_url) as live:
        yield live


def test_record_then_replay_gives_the_same_chains(
    yahoo: YahooEmulator, source: YahooSource, aapl_root: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "recorded"
    outcome = record(out, ["aapl"], fetch_raw=source.fetch_raw, horizon_days=28, as_of_date=AUG15)

    # The listing names 08-15 .. 09-12 within 28 days of 08-15; 08-15 came with the first answer.
    wanted = [date(2025, 8, 15), date(2025, 8, 22), date(2025, 8, 29), date(2025, 9, 5)]
    wanted.append(date(2025, 9, 12))
    assert outcome == {"AAPL": [out / "AAPL" / f"{day}.json" for day in wanted]}
    assert yahoo.count(f"{OPTIONS}AAPL", date=None) == 1
    for day in wanted[1:]:
        assert yahoo.count(f"{OPTIONS}AAPL", date=expiration_epoch(day)) == 1
    assert yahoo.count(f"{OPTIONS}AAPL", date=expiration_epoch(AUG15)) == 0
    # Byte for byte what Yahoo (here, the recordings) sent; no temporary files left.
    for day in wanted:
        assert (out / "AAPL" / f"{day}.json").read_bytes() == (
            aapl_root / "AAPL" / f"{day}.json"
        ).read_bytes()
    assert sorted(p.name for p in (out / "AAPL").iterdir()) == [f"{d}.json" for d in wanted]

    replay = ReplaySource(out)
    assert replay.expirations("AAPL") == wanted
    with YahooSource(cache_dir, base_url=yahoo.base_url) as live:
        assert replay.quote("AAPL") == live.quote("AAPL")
        for day in wanted:
            recorded, fetched = replay.chain("AAPL", day), live.chain("AAPL", day)
            assert recorded.quote == fetched.quote
            pd.testing.assert_frame_equal(recorded.calls.frame(), fetched.calls.frame())
            pd.testing.assert_frame_equal(recorded.puts.frame(), fetched.puts.frame())


def test_a_symbol_without_options_replays_as_no_options(tmp_path: Path, cache_dir: Path) -> None:
    root = build_replay_dir(tmp_path / "premarket", "premarket")
    with YahooEmulator(root) as server, YahooSource(cache_dir, base_url=server.base_url) as live:
        out = tmp_path / "recorded"
        outcome = record(
            out,
            ["BTC-USD", "EPAC"],
            fetch_raw=live.fetch_raw,
            horizon_days=30,
            as_of_date=date(2025, 2, 24),
        )
    assert outcome["BTC-USD"] == [out / "BTC-USD" / "no-date.json"]
    # EPAC lists 2025-03-21 first (within 30 days); the next is 2025-05-16.
    assert outcome["EPAC"] == [out / "EPAC" / "2025-03-21.json"]
    replay = ReplaySource(out)
    with pytest.raises(NoOptions):
        replay.expirations("BTC-USD")
    assert replay.quote("BTC-USD").price == 95744.33
    assert replay.expirations("EPAC") == [date(2025, 3, 21)]


def test_failures_are_reported_per_symbol_and_write_nothing(
    yahoo: YahooEmulator, source: YahooSource, tmp_path: Path
) -> None:
    yahoo.inject("500", date=expiration_epoch(date(2025, 8, 29)))
    out = tmp_path / "recorded"
    outcome = record(
        out,
        ["AAPL", "NOPE", "../x"],
        fetch_raw=source.fetch_raw,
        horizon_days=28,
        as_of_date=AUG15,
    )
    assert outcome["AAPL"] == "error: Yahoo answered HTTP 500: Emulated internal error"
    assert outcome["NOPE"] == "unknown_symbol: Yahoo does not know NOPE"
    assert outcome["../X"] == "error: not a ticker symbol"
    assert not (out / "AAPL").exists()


def test_no_expiration_within_the_horizon(source: YahooSource, tmp_path: Path) -> None:
    # The listing starts on 2025-08-15; a week earlier with a 3-day horizon finds nothing.
    outcome = record(
        tmp_path / "r",
        ["AAPL"],
        fetch_raw=source.fetch_raw,
        horizon_days=3,
        as_of_date=date(2025, 8, 8),
    )
    assert outcome == {"AAPL": "no expiration within 3 days of 2025-08-08"}


def test_recording_again_replaces_the_older_recording(source: YahooSource, tmp_path: Path) -> None:
    out = tmp_path / "recorded"
    record(out, ["AAPL"], fetch_raw=source.fetch_raw, horizon_days=14, as_of_date=AUG15)
    assert ReplaySource(out).expirations("AAPL")[-1] == date(2025, 8, 29)
    (out / "AAPL" / "2025-08-01.json").write_text("{}")  # an old recording
    record(out, ["AAPL"], fetch_raw=source.fetch_raw, horizon_days=7, as_of_date=AUG15)
    assert ReplaySource(out).expirations("AAPL") == [date(2025, 8, 15), date(2025, 8, 22)]
