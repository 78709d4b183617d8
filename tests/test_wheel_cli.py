"""The wheel from the command line: `flask positions`, then call and put scans on recorded AAPL.

The recorded AAPL chains quote spot near 231.59 (230.03 to 232.87 on the expirations scanned).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.replaydirs import build_replay_dir


@pytest.fixture
def runner(make_app, tmp_path: Path):
    app = make_app(SOURCE=f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}")
    return app.test_cli_runner()


def ok(runner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def scan_json(runner, *args: str) -> dict:
    return json.loads(ok(runner, "scan", "--force", "--json", *args))


def test_positions_commands(runner, tmp_path: Path) -> None:
    assert "No positions." in ok(runner, "positions", "list")
    assert "Set: AAPL 200 shares at 230 USD" in ok(runner, "positions", "set", "aapl", "200", "230")
    assert "Cash: 50,000.00 USD" in ok(runner, "positions", "cash", "50000")
    listed = ok(runner, "positions", "list")
    assert "AAPL" in listed and "covers 2 calls" in listed and "Cash: 50,000.00 USD" in listed

    refused = runner.invoke(args=["positions", "set", "AAPL", "1.5", "230"])
    assert refused.exit_code == 2 and "Nothing was changed" in refused.stderr
    refused = runner.invoke(args=["positions", "cash", "--", "-1"])
    assert refused.exit_code == 2 and "cash must be 0 or more" in refused.stderr
    refused = runner.invoke(args=["positions", "remove", "AAPL", "ZZZZ"])
    assert refused.exit_code == 2 and "no position in ZZZZ" in refused.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,shares,cost_basis\nMSFT,100,410\nNVDA,100,-1\n")
    refused = runner.invoke(args=["positions", "import", str(bad)])
    assert refused.exit_code == 2 and "line 3: cost basis must be more than 0" in refused.stderr
    assert "MSFT" not in ok(runner, "positions", "list")  # the good line was not applied either
    good = tmp_path / "good.csv"
    good.write_text("symbol,shares,cost_basis\nMSFT,100,410\n")
    assert "Imported: 1 position" in ok(runner, "positions", "import", str(good))
    listed = ok(runner, "positions", "list")
    assert "MSFT" in listed and "AAPL" in listed and "Cash: 50,000.00 USD" in listed
    assert "removed: AAPL" in ok(runner, "positions", "import", "--replace", str(good))
    assert "Removed: MSFT" in ok(runner, "positions", "remove", "MSFT")
    assert "Cash: cleared" in ok(runner, "positions", "cash", "--clear")


def test_the_wheel_calls_follow_holdings_and_puts_follow_cash(runner) -> None:
    ok(runner, "positions", "set", "AAPL", "200", "230")
    ok(runner, "positions", "cash", "50000")

    calls = scan_json(runner, "--calls", "--top", "0")
    # The default watchlist has 26 symbols; a call scan covers the one held.
    assert list(calls["symbols"]) == ["AAPL"] and calls["matches"]
    assert calls["symbols"]["AAPL"]["shares"] == 200
    for m in calls["matches"]:
        assert m["symbol"] == "AAPL" and m["side"] == "call"
        assert m["strike"] >= 230 and m["contracts"] == 2 and m["cost_basis"] == 230
        assert m["collateral"] is None
        assert m["premium"] == pytest.approx(m["bid"] * 100)
        expected = (m["strike"] - 230 + m["bid"]) / 230 * 100
        assert m["return_if_assigned"] == pytest.approx(expected)
        assert m["return_if_assigned_annualized"] == pytest.approx(expected * 365 / m["dte"])
        assert m["downside_protection"] == pytest.approx(m["bid"] / m["spot"] * 100)
        assert m["earnings_date"] == "2025-10-30" and "ex_dividend_date" in m
        assert m["expected_move"] > 0 and m["sigma_distance"] >= 0

    puts = scan_json(runner, "--symbols", "AAPL", "--top", "0")
    assert puts["matches"]
    for m in puts["matches"]:
        assert m["collateral"] == pytest.approx(m["strike"] * 100)
        assert m["contracts"] == math.floor(50000 / m["collateral"])
        assert m["cost_basis"] is None and m["return_if_assigned"] is None
        assert m["spot"] > 0 and m["premium"] == pytest.approx(m["bid"] * 100)


def test_a_named_symbol_not_held_is_reported_not_scanned(runner) -> None:
    ok(runner, "positions", "set", "AAPL", "50", "230")  # fewer than one contract's 100 shares
    result = runner.invoke(args=["scan", "--force", "--json", "--calls", "--symbols", "AAPL"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["symbols"]["AAPL"]["status"] == "not_held" and body["matches"] == []
    assert "50 shares held, fewer than the 100" in body["message"]
    bare = runner.invoke(args=["scan", "--force", "--calls"])
    assert bare.exit_code == 1 and "covered calls need a position" in bare.stderr


def test_below_basis_and_unowned(runner) -> None:
    ok(runner, "positions", "set", "AAPL", "100", "236")
    at_basis = scan_json(runner, "--calls", "--top", "0", "--min-return", "0", "--max-delta", "1")
    assert at_basis["matches"] and all(m["strike"] >= 236 for m in at_basis["matches"])
    args = ["--calls", "--top", "0", "--min-return", "0", "--max-delta", "1", "--below-basis"]
    lifted = scan_json(runner, *args)["matches"]
    below = [m for m in lifted if m["strike"] < 236]
    assert below and all("below_basis" in m["flags"] for m in below)
    assert len(lifted) == len(at_basis["matches"]) + len(below)

    ok(runner, "positions", "remove", "AAPL")
    unowned = scan_json(runner, "--calls", "--unowned", "--top", "0")
    assert unowned["symbols"]["AAPL"]["status"] == "ok" and unowned["matches"]
    for m in unowned["matches"]:
        assert "unowned" in m["flags"] and m["contracts"] is None
        assert m["cost_basis"] == m["spot"] and m["strike"] >= m["spot"]


def test_puts_needing_more_than_the_cash_are_marked(runner) -> None:
    ok(runner, "positions", "cash", "20000")  # less than one 227.50 put's 22,750
    puts = scan_json(runner, "--symbols", "AAPL", "--top", "0")["matches"]
    assert puts and all(m["contracts"] == 0 and "over_cash" in m["flags"] for m in puts)
    ok(runner, "positions", "cash", "--clear")
    unsized = scan_json(runner, "--symbols", "AAPL", "--top", "0")["matches"]
    assert unsized and all(
        m["contracts"] is None and "over_cash" not in m["flags"] for m in unsized
    )


def test_rule_flags_shape_the_rows(runner) -> None:
    loose = ["--symbols", "AAPL", "--min-return", "0", "--max-delta", "1", "--top", "0"]
    every = scan_json(runner, *loose)["matches"]
    assert {m["dte"] for m in every} == {1, 7}
    week = scan_json(runner, *loose, "--min-dte", "2")
    assert week["matches"] and all(m["dte"] >= 2 for m in week["matches"])
    assert week["one_off"] is True and "DTE 2-28" in week["rules"]
    liquid = scan_json(runner, *loose, "--min-oi", "5000", "--min-volume", "1000")["matches"]
    assert liquid and all(m["open_interest"] >= 5000 and m["volume"] >= 1000 for m in liquid)
    tight = scan_json(runner, *loose, "--max-spread", "5")["matches"]
    assert tight and all(m["spread_pct"] <= 5 for m in tight) and len(tight) < len(every)

    # JSON carries every match for scripts, unless --top asks for the best of each symbol.
    unlimited = scan_json(runner, *loose[:-2])["matches"]
    assert sorted(m["contract"] for m in unlimited) == sorted(m["contract"] for m in every)
    best = scan_json(runner, *loose[:-2], "--top", "3")
    assert best["top"] == 3 and len(best["matches"]) == 3 < best["symbols"]["AAPL"]["matches"]
    returns = [m["annualized_return"] for m in best["matches"]]
    assert returns == sorted((m["annualized_return"] for m in every), reverse=True)[:3]
    table = runner.invoke(args=["scan", "--force", *loose[:-2], "--top", "2"])
    assert table.exit_code == 0 and len(table.stdout.splitlines()) == 2 + 2
    assert "Showing the best 2 of each symbol" in table.stderr

    refused = runner.invoke(args=["scan", "--force", "--min-dte", "-1"])
    assert refused.exit_code == 2 and "--min-dte must be at least 0, got '-1'" in refused.output
    refused = runner.invoke(args=["scan", "--force", "--min-dte", "30", "--max-dte", "7"])
    assert refused.exit_code == 2 and "--max-dte (7) must be at least --min-dte (30)" in (
        refused.output
    )


def test_a_bare_scan_uses_the_saved_defaults(make_app, runner, tmp_path: Path) -> None:
    from optscan.core.rules import Rules

    app = runner.app
    app.extensions["optscan"].saved_rules.save(
        Rules(put_min_return_pct=0, put_max_delta=1, min_dte=2, top_n=1)
    )
    body = scan_json(runner, "--symbols", "AAPL")
    assert body["one_off"] is False and "DTE 2-28" in body["rules"]
    assert body["matches"] and all(m["dte"] >= 2 for m in body["matches"])
    table = runner.invoke(args=["scan", "--force", "--symbols", "AAPL"])
    assert table.exit_code == 0 and len(table.stdout.splitlines()) == 2 + 1  # top_n 1
    flipped = scan_json(runner, "--symbols", "AAPL", "--min-dte", "1", "--top", "0")
    assert flipped["one_off"] is True and {m["dte"] for m in flipped["matches"]} == {1, 7}
