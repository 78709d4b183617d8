"""The command line: `flask scan`, `flask watchlist`, through CliRunner and as real processes."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from vollib.black_scholes_merton.greeks.analytical import delta as ref_delta
from vollib.black_scholes_merton.implied_volatility import implied_volatility as ref_iv

from optscan.store.lock import ScanLock
from tests.clocks import FrozenClock
from tests.flaskrun import run_flask, scan_env

NEW_YORK = ZoneInfo("America/New_York")


def check_against_reference(matches: list[dict], root: Path, side: str) -> int:
    """Recompute every match's IV and delta with vollib from the raw recording; return the count."""
    flag = "p" if side == "put" else "c"
    for m in matches:
        raw = json.loads((root / m["symbol"] / f"{m['expiration']}.json").read_text())
        result = raw["optionChain"]["result"][0]
        quote = result["quote"]
        contracts = result["options"][0]["puts" if side == "put" else "calls"]
        rec = next(c for c in contracts if c["contractSymbol"] == m["contract"])
        as_of = datetime.fromtimestamp(quote["regularMarketTime"], UTC)
        expiry = datetime.combine(
            datetime.strptime(m["expiration"], "%Y-%m-%d").date(), time(16), NEW_YORK
        )
        t = (expiry - as_of).total_seconds() / (365 * 86400)
        spot = quote["regularMarketPrice"]
        if "forward_fallback" in m["flags"]:
            q = (quote.get("dividendYield") or 0) / 100  # Yahoo gives percent
            assert m["forward"] == pytest.approx(spot * math.exp((0.045 - q) * t), rel=1e-12)
        else:
            # Priced on the chain's own forward: BSM with the yield that carries spot there.
            assert abs(m["forward"] / spot - 1) < 0.01
            q = 0.045 - math.log(m["forward"] / spot) / t
        mid = (rec["bid"] + rec["ask"]) / 2
        assert m["mid"] == pytest.approx(mid, rel=1e-12)
        sigma = ref_iv(mid, spot, m["strike"], t, 0.045, q, flag)
        assert m["iv"] == pytest.approx(sigma, rel=1e-5, abs=1e-6), m
        assert m["delta"] == pytest.approx(
            ref_delta(flag, spot, m["strike"], t, 0.045, sigma, q), abs=1e-5
        ), m
        assert m["dte"] == (expiry.date() - as_of.astimezone(NEW_YORK).date()).days
        assert m["otm_pct"] == pytest.approx(
            (spot - m["strike"]) / spot * 100
            if side == "put"
            else (m["strike"] - spot) / spot * 100
        )
        assert not math.isnan(m["pop_otm"])
    return len(matches)


def test_scan_json_agrees_with_an_independent_reference(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "AAPL", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["success"] is True and body["side"] == "put"
    assert body["symbols"]["AAPL"]["status"] == "ok"
    assert set(body["matches"][0]) >= {
        "symbol", "side", "expiration", "dte", "strike", "bid", "ask", "mid", "otm_pct",
        "annualized_return", "iv", "delta", "pop_otm", "open_interest", "volume", "breakeven",
        "flags",
    }  # fmt: skip
    assert check_against_reference(body["matches"], aapl_dir, "put") > 0
    forwards = body["symbols"]["AAPL"]["forwards"]
    assert sorted(forwards) == body["symbols"]["AAPL"]["expirations"]
    for m in body["matches"]:
        assert m["forward"] == forwards[m["expiration"]]["forward"]


def test_call_scan_with_overrides(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    # Nothing is held: --unowned prices the watchlist's calls as if bought at spot.
    args = ["scan", "--force", "--calls", "--min-return", "10", "--max-delta", "0.3", "--json"]
    args += ["--unowned", "--top", "0"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["side"] == "call" and body["matches"]
    assert all(0 < m["delta"] <= 0.3 and m["annualized_return"] >= 10 for m in body["matches"])
    check_against_reference(body["matches"], aapl_dir, "call")


def test_table_output_lists_matches_and_the_summary(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "aapl"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["Symbol", "Expiry", "DTE", "Strike"]
    assert all(line.startswith("AAPL ") for line in lines[2:])
    assert "scan 1/1 AAPL:" in result.stderr  # not a terminal: plain progress lines
    assert "Scanned 1 of 1 symbols" in result.stderr


def test_market_closed_exits_3_and_names_the_next_open(make_app, aapl_dir: Path) -> None:
    app = make_app(
        SOURCE=f"replay:{aapl_dir}", CLOCK=FrozenClock(datetime(2026, 11, 26, 15, tzinfo=UTC))
    )
    result = app.test_cli_runner().invoke(args=["scan"])
    assert result.exit_code == 3
    assert "next opens Fri 2026-11-27 09:30 ET" in result.stderr  # Thanksgiving is a holiday


def test_busy_lock_exits_4_and_says_who_runs(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    svc = app.extensions["optscan"]
    holder = ScanLock(
        svc.redis,
        svc.lock_key,
        ttl=30,
        holder={"trigger": "web", "started_at": svc.now().isoformat()},
    )
    assert holder.acquire()
    try:
        result = app.test_cli_runner().invoke(args=["scan", "--force"])
    finally:
        holder.release()
    assert result.exit_code == 4
    assert "already running (started by web since Mon 2026-11-23 11:00 ET)" in result.stderr


def test_invalid_symbols_exit_2_and_change_nothing(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "AAPL,BAD SYM"])
    assert result.exit_code == 2
    assert "BAD SYM" in result.output
    assert app.extensions["optscan"].store.last_attempt("put") is None


def test_dead_redis_exits_5_with_a_clear_message(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}", REDIS_URL="redis://127.0.0.1:1/0")
    result = app.test_cli_runner().invoke(args=["scan", "--force"])
    assert result.exit_code == 5
    assert "Redis is unavailable" in result.stderr


def test_watchlist_commands(make_app) -> None:
    runner = make_app().test_cli_runner()
    listed = runner.invoke(args=["watchlist", "list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()][:3] == ["AAPL", "ADBE", "AMZN"]
    assert len(listed.stdout.splitlines()) == 26

    added = runner.invoke(args=["watchlist", "add", "brk.b", "tsla", "--note", "test"])
    assert added.exit_code == 0 and "Added: BRK.B TSLA" in added.stdout
    refused = runner.invoke(args=["watchlist", "add", "IBM", "NOT VALID"])
    assert refused.exit_code == 2 and "Nothing was changed" in refused.stderr
    assert runner.invoke(args=["watchlist", "deactivate", "TSLA"]).exit_code == 0
    unknown = runner.invoke(args=["watchlist", "remove", "TSLA", "ZZZZ"])
    assert unknown.exit_code == 2 and "ZZZZ" in unknown.stderr

    rows = {
        line.split()[0]: line.split()[1]
        for line in runner.invoke(args=["watchlist", "list"]).stdout.splitlines()
    }
    assert rows["TSLA"] == "inactive" and rows["BRK.B"] == "active"
    assert "IBM" not in rows


@pytest.mark.slow
def test_bad_config_is_a_clear_error_at_start_up(tmp_path: Path, redis_url: str) -> None:
    env = dict(os.environ, OPTSCAN_PUT_MAX_DELTA="2", OPTSCAN_INSTANCE_PATH=str(tmp_path))
    proc = run_flask("scan", "--force", env=env)
    assert proc.returncode == 2
    assert "OPTSCAN_PUT_MAX_DELTA must be at most 1" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_scan_as_a_real_process(
    aapl_dir: Path, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = scan_env(f"replay:{aapl_dir}", redis_url, redis_prefix, tmp_path / "instance")
    proc = run_flask("scan", "--force", "--symbols", "AAPL", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert check_against_reference(body["matches"], aapl_dir, "put") == len(body["matches"]) > 0
    assert "gevent" not in proc.stderr


def test_record_then_replay_reproduces_the_scan(
    make_app, aapl_dir: Path, tmp_path: Path, instance_path: Path
) -> None:
    from tests.yahoo_emulator import YahooEmulator

    recorded = tmp_path / "recorded"
    with YahooEmulator(aapl_dir) as yahoo:
        live = make_app(SOURCE=f"yahoo:{yahoo.base_url}")
        done = live.test_cli_runner().invoke(args=["record", str(recorded), "AAPL"])
        assert done.exit_code == 0, done.output
        assert "AAPL: 5 expirations" in done.stdout
        live_scan = live.test_cli_runner().invoke(args=["scan", "--force", "--json"])
    # yfinance's cookie cache lives in this app's instance folder, not the user's home.
    assert (instance_path / "yfinance-cache" / "cookies.db").exists()
    # The nearest recording (2025-08-15) plus the four expirations within 28 days of it.
    assert sorted(p.name for p in (recorded / "AAPL").iterdir())[:2] == [
        "2025-08-15.json",
        "2025-08-22.json",
    ]
    replayed = make_app(SOURCE=f"replay:{recorded}").test_cli_runner()
    replay_scan = replayed.invoke(args=["scan", "--force", "--symbols", "AAPL", "--json"])
    live_matches = json.loads(live_scan.stdout)["matches"]
    assert live_matches and json.loads(replay_scan.stdout)["matches"] == [
        m for m in live_matches if m["symbol"] == "AAPL"
    ]


def test_record_refuses_invalid_symbols(make_app) -> None:
    result = make_app().test_cli_runner().invoke(args=["record", "/tmp/x", "NOT VALID"])
    assert result.exit_code == 2 and "NOT VALID" in result.output
