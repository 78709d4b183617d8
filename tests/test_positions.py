"""The books: validation, the durable positions and saved rules (SQLite and PostgreSQL), sizing.

Every test that stores something runs on SQLite and, when a server is reachable, PostgreSQL.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from optscan.core.book import (
    Book,
    InvalidPosition,
    Position,
    parse_cash,
    read_positions_csv,
    scan_symbols,
)
from optscan.core.chain import analyze_chains
from optscan.core.rules import Rules
from optscan.core.sizing import size_rows
from optscan.core.symbols import InvalidSymbol
from optscan.core.wheel import Holding
from optscan.sources.replay import ReplaySource
from optscan.store.positions import Positions, UnknownPosition
from optscan.store.savedrules import SavedRules
from tests.replaydirs import build_replay_dir

FIXED = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
RATE = 0.045


def fixed_clock() -> datetime:
    return FIXED


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (("AAPL", "-1", "230"), "shares must be a whole number, 0 or more"),
        (("AAPL", "1.5", "230"), "shares must be a whole number"),
        (("AAPL", "ten", "230"), "shares must be a number"),
        (("AAPL", "100", "0"), "cost basis must be more than 0"),
        (("AAPL", "100", "nan"), "cost basis must be a number"),
        (("AAPL", "100", ""), "cost basis must be a number"),
    ],
)
def test_a_position_is_validated(raw: tuple[str, str, str], words: str) -> None:
    with pytest.raises(InvalidPosition, match=words):
        Position.parse(*raw)


def test_a_position_follows_the_symbol_rule() -> None:
    assert Position.parse(" brk.b ", "200", "230.5") == Position("BRK.B", 200, 230.5)
    with pytest.raises(InvalidSymbol):
        Position.parse("NOT VALID", "1", "1")


def test_cash_is_zero_or_more() -> None:
    assert parse_cash("50000") == 50000.0 and parse_cash(0) == 0.0
    with pytest.raises(InvalidPosition, match="cash must be 0 or more"):
        parse_cash("-1")
    with pytest.raises(InvalidPosition, match="cash must be a number"):
        parse_cash("50,000")


def test_csv_is_read_whole_or_refused_with_its_line_number() -> None:
    good = "symbol,shares,cost_basis\naapl,200,230\n\nMSFT, 100 , 410.25\n"
    assert read_positions_csv(good) == [Position("AAPL", 200, 230.0), Position("MSFT", 100, 410.25)]
    bad = "symbol,shares,cost_basis\nAAPL,200,230\nMSFT,-5,410\n"
    with pytest.raises(InvalidPosition, match="line 3: shares must be a whole number"):
        read_positions_csv(bad)
    with pytest.raises(InvalidPosition, match="line 3: AAPL is listed twice"):
        read_positions_csv("symbol,shares,cost_basis\nAAPL,1,1\nAAPL,2,2\n")
    with pytest.raises(InvalidPosition, match="line 2: expected 3 values, got 2"):
        read_positions_csv("symbol,shares,cost_basis\nAAPL,1\n")
    with pytest.raises(InvalidPosition, match="line 1: the columns must be"):
        read_positions_csv("ticker,qty,price\nAAPL,1,1\n")
    with pytest.raises(InvalidPosition, match="line 2: invalid symbol"):
        read_positions_csv("symbol,shares,cost_basis\nNOT VALID,1,1\n")


def test_the_scan_covers_what_the_side_needs() -> None:
    book = Book({"AAPL": Holding(200, 230.0), "MSFT": Holding(50, 400.0)})

    def watchlist() -> list[str]:
        return ["AAPL", "MSFT", "NVDA"]

    assert scan_symbols("put", None, book, watchlist, unowned=False) == watchlist()
    assert scan_symbols("call", None, book, watchlist, unowned=False) == ["AAPL"]
    assert scan_symbols("call", None, book, watchlist, unowned=True) == ["AAPL", "MSFT", "NVDA"]
    assert scan_symbols("call", ["nvda"], book, watchlist, unowned=False) == ["NVDA"]
    assert "50 shares held, fewer than the 100" in book.not_held("MSFT")
    assert "NVDA is not held" in book.not_held("NVDA")


# -- sizing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def week_chain(tmp_path_factory: pytest.TempPathFactory):
    source = ReplaySource(build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl"))
    return source.chain("AAPL", date(2025, 8, 22))


def test_puts_are_sized_from_the_cash(week_chain) -> None:
    rows = analyze_chains([week_chain], "put", risk_free_rate=RATE)
    assert np.isnan(size_rows(rows, Book()).column("contracts")).all()  # no cash: not sized
    sized = size_rows(rows, Book(cash=20_000.0))
    np.testing.assert_array_equal(sized.collateral, rows.strike * 100)
    np.testing.assert_array_equal(sized.contracts, np.floor(20_000.0 / (rows.strike * 100)))
    over = sized.has_flag("over_cash")
    assert over.any() and not over.all()  # strikes above 200 need more than 20,000
    np.testing.assert_array_equal(over, rows.strike * 100 > 20_000.0)
    assert (sized.contracts[over] == 0).all()
    record = sized.records(sized.valid)[0]
    assert record["premium"] == round(record["bid"] * 100, 2)
    assert record["cost_basis"] is None and record["return_if_assigned"] is None


def test_calls_are_priced_on_the_holding_or_on_spot(week_chain) -> None:
    rows = analyze_chains([week_chain], "call", risk_free_rate=RATE)
    held = size_rows(rows, Book({"AAPL": Holding(250, 220.0)}))
    valid = held.valid
    assert (held.contracts == 2).all() and (held.cost_basis == 220.0).all()
    expected = (rows.strike - 220.0 + rows.bid) / 220.0 * 100
    np.testing.assert_allclose(held.return_if_assigned[valid], expected[valid])
    np.testing.assert_allclose(
        held.return_if_assigned_annualized[valid], expected[valid] * 365 / rows.dte[valid]
    )
    assert not held.has_flag("unowned").any()
    np.testing.assert_array_equal(held.has_flag("below_basis"), rows.strike < 220.0)
    spot = size_rows(rows, Book({"MSFT": Holding(100, 1.0)}))  # AAPL not held: at spot
    assert spot.has_flag("unowned").all() and (spot.cost_basis == rows.spot).all()
    assert np.isnan(spot.contracts).all()
    # The chain-only figures: downside protection, expected move and sigma distance.
    np.testing.assert_allclose(held.downside_protection, rows.bid / rows.spot * 100)
    ok = np.isfinite(rows.iv)
    move = rows.spot * rows.iv * np.sqrt(rows.t_years)
    np.testing.assert_allclose(held.expected_move[ok], move[ok])
    distance = np.abs(rows.strike - rows.forward) / (rows.forward * rows.iv * np.sqrt(rows.t_years))
    np.testing.assert_allclose(held.sigma_distance[ok], distance[ok])
    assert math.isnan(rows.collateral[0])  # calls tie up shares, not cash


def test_the_nearest_iv_is_at_the_strike_nearest_the_forward(week_chain) -> None:
    rows = analyze_chains([week_chain], "put", risk_free_rate=RATE)
    ok = np.flatnonzero(np.isfinite(rows.iv))
    at = ok[np.argmin(np.abs(rows.strike[ok] - rows.forward[ok]))]
    assert rows.near_iv() == rows.iv[at] and 0.1 < rows.near_iv() < 1.0


# -- the durable stores ------------------------------------------------------------------------


@pytest.fixture
def positions(database: Path | str) -> Positions:
    return Positions(database, clock=fixed_clock)


def test_positions_are_set_listed_and_removed(positions: Positions, database) -> None:
    assert positions.entries() == [] and positions.cash() is None
    positions.set("aapl", "200", "230")
    positions.set("MSFT", 50, 410.5)
    positions.set("AAPL", 300, "231.25")  # replaces
    assert positions.entries() == [Position("AAPL", 300, 231.25), Position("MSFT", 50, 410.5)]
    assert positions.set_cash("50000") == 50000.0
    book = Positions(database).book()  # another process sees the same
    assert book.cash == 50000.0 and book.covered_symbols() == ["AAPL"]
    assert book.holdings["AAPL"] == Holding(300, 231.25)
    with pytest.raises(UnknownPosition, match="no position in NVDA"):
        positions.remove(["MSFT", "NVDA"])
    assert [p.symbol for p in positions.entries()] == ["AAPL", "MSFT"]  # nothing removed
    assert positions.remove(["msft"]) == ["MSFT"]
    assert positions.set_cash("") is None and positions.cash() is None


def test_bad_values_change_nothing(positions: Positions) -> None:
    positions.set("AAPL", 200, 230)
    positions.set_cash(1000)
    for change in (
        lambda: positions.set("AAPL", -1, 230),
        lambda: positions.set("AAPL", 100, 0),
        lambda: positions.set("NOT VALID", 1, 1),
        lambda: positions.set_cash("-5"),
    ):
        with pytest.raises((InvalidPosition, InvalidSymbol)):
            change()
    assert positions.entries() == [Position("AAPL", 200, 230.0)] and positions.cash() == 1000.0


def test_an_import_is_all_or_nothing(positions: Positions) -> None:
    positions.set("NVDA", 100, 120)
    with pytest.raises(InvalidPosition, match="line 3"):
        positions.import_csv("symbol,shares,cost_basis\nAAPL,200,230\nMSFT,x,1\n")
    assert [p.symbol for p in positions.entries()] == ["NVDA"]
    done = positions.import_csv("symbol,shares,cost_basis\nAAPL,200,230\nMSFT,100,400\n")
    assert [p.symbol for p in done.positions] == ["AAPL", "MSFT"] and done.removed == []
    assert [p.symbol for p in positions.entries()] == ["AAPL", "MSFT", "NVDA"]
    replaced = positions.import_csv("symbol,shares,cost_basis\nAAPL,100,231\n", replace=True)
    assert replaced.removed == ["MSFT", "NVDA"]
    assert positions.entries() == [Position("AAPL", 100, 231.0)]


def test_saved_rules_are_laid_over_the_environments(database: Path | str) -> None:
    store = SavedRules(database, clock=fixed_clock)
    base = Rules(put_min_return_pct=25.0)
    assert store.defaults(base).rules == base and store.defaults(base).saved_at is None
    chosen = Rules(min_dte=3, top_n=5, exclude_earnings=True)
    store.save(chosen)
    found = SavedRules(database).defaults(base)  # another process, or host, sees them
    assert found.rules == chosen and found.saved_at == FIXED.isoformat()
    store.clear()
    assert store.defaults(base).rules == base


def test_a_saved_value_that_no_longer_passes_is_skipped(database: Path | str, caplog) -> None:
    from optscan.store.sql import savedrules as sql

    store = SavedRules(database)
    store.save(Rules(min_dte=4))
    with store._db.write() as conn:
        sql.replace_all(conn, {"min_dte": -2, "top_n": 7, "gone_rule": 1}, FIXED.isoformat())
    found = store.defaults(Rules())
    assert found.rules == Rules(top_n=7)
    assert "min_dte must be at least 0" in caplog.text
