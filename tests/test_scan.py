"""perform_scan() on recorded chains: rules, per-symbol failures, progress, the store."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

from optscan.core.market import MarketCalendar
from optscan.core.rules import Rules, call_delta_target
from optscan.core.scan import ScanEnv, perform_scan
from optscan.sources.base import Chain
from optscan.sources.replay import ReplaySource
from optscan.store.results import ResultStore
from optscan.store.watchlist import Watchlist
from tests.clocks import FrozenClock
from tests.replaydirs import build_replay_dir, clone_symbol

SATURDAY = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # 10:00 ET, market closed


@pytest.fixture
def store(redis_client: redis.Redis, redis_prefix: str) -> ResultStore:
    return ResultStore(redis_client, redis_prefix)


def make_env(
    root: Path, tmp_path: Path, clock: FrozenClock, store: ResultStore | None, **rules: object
) -> ScanEnv:
    return ScanEnv(
        source=ReplaySource(root),
        watchlist=Watchlist(tmp_path / "watchlist.sqlite3", seed=("AAPL",)),
        calendar=MarketCalendar(clock=clock),
        rules=Rules(**rules),
        risk_free_rate=0.045,
        wide_spread_pct=50.0,
        clock=clock,
        store=store,
    )


def raw_chain(root: Path, symbol: str, expiration: str) -> dict:
    return json.loads((root / symbol / f"{expiration}.json").read_text())["optionChain"]["result"][
        0
    ]


def test_put_scan_keeps_only_contracts_that_pass_the_rules(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock, store: ResultStore
) -> None:
    result = perform_scan(force=True, env=make_env(aapl_dir, tmp_path, clock, store))
    assert result.success, result.message
    report = result.symbols["AAPL"]
    assert report.status == "ok"
    # Nearest recording: captured 2025-08-15 16:00 ET, when the 08-15 expiry ends; horizon 28 days.
    assert report.expirations == ["2025-08-22", "2025-08-29", "2025-09-05", "2025-09-12"]
    assert result.matches, "the recorded AAPL chains hold puts that pass 30 % / -0.20"
    for match in result.matches:
        assert match["side"] == "put"
        assert match["annualized_return"] >= 30.0
        assert -0.20 <= match["delta"] < 0
        assert match["bid"] > 0
        raw = raw_chain(aapl_dir, "AAPL", match["expiration"])
        recorded = next(p for p in raw["options"][0]["puts"] if p["strike"] == match["strike"])
        assert match["bid"] == recorded["bid"] and match["ask"] == recorded["ask"]
        # Annualized return by hand: bid / strike * 365 / DTE, in percent.
        expected = recorded["bid"] / recorded["strike"] * 365 / max(match["dte"], 1) * 100
        assert match["annualized_return"] == pytest.approx(expected, rel=1e-12)
        assert match["breakeven"] == pytest.approx(recorded["strike"] - recorded["bid"])
    assert result.counts()["matches"] == len(result.matches) == report.matches
    assert report.contracts > len(result.matches)


def test_call_scan_uses_the_delta_target_that_grows_with_dte(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock
) -> None:
    result = perform_scan(side="call", force=True, env=make_env(aapl_dir, tmp_path, clock, None))
    assert result.success
    assert result.matches
    for match in result.matches:
        assert match["side"] == "call"
        assert match["annualized_return"] >= 20.0
        assert 0 < match["delta"] <= float(call_delta_target(match["dte"])) + 1e-12
        assert match["otm_pct"] > -5  # low-delta calls sit near or above the money


def test_pre_market_chains_without_bids_yield_no_matches(
    tmp_path: Path, clock: FrozenClock
) -> None:
    root = build_replay_dir(tmp_path / "replay", "premarket")
    env = make_env(root, tmp_path, clock, None, put_min_return_pct=0.0, put_max_delta=1.0)
    result = perform_scan(["AAPL", "AMZN", "GOOG"], force=True, env=env)
    assert result.success
    assert result.counts()["contracts"] > 0
    # Even with the loosest rules, a zero bid never passes (the origin app let delta=1 through).
    assert result.matches == []


def test_a_failing_symbol_is_reported_and_the_scan_goes_on(
    tmp_path: Path, clock: FrozenClock, store: ResultStore
) -> None:
    root = build_replay_dir(tmp_path / "replay", "premarket")
    env = make_env(root, tmp_path, clock, store)
    seen: list[tuple[int, int, str, int, str]] = []
    result = perform_scan(
        ["BTC-USD", "NOPE", "AAPL"],
        force=True,
        env=env,
        progress=lambda i, n, s, m, r: seen.append((i, n, s, len(m), r.status)),
    )
    assert result.success
    assert result.symbols["BTC-USD"].status == "no_options"
    assert result.symbols["NOPE"].status not in ("ok", "partial")
    assert "NOPE" in (result.symbols["NOPE"].error or "")
    assert result.symbols["AAPL"].status == "ok"
    assert [(i, n, s) for i, n, s, _, _ in seen] == [
        (1, 3, "BTC-USD"),
        (2, 3, "NOPE"),
        (3, 3, "AAPL"),
    ]
    assert [status for *_, status in seen] == ["no_options", "error", "ok"]
    assert "Failed: BTC-USD, NOPE" in result.message
    assert store.last("put")["counts"]["failed"] == 2


def test_a_failed_symbol_keeps_its_rows_and_a_subset_scan_changes_only_its_symbols(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock, store: ResultStore
) -> None:
    clone_symbol(aapl_dir, "AAPL", "MSFT")  # a second symbol with rows
    env = make_env(aapl_dir, tmp_path, clock, store)
    good = perform_scan(["AAPL", "MSFT"], force=True, env=env, scan_id="first")
    assert good.success and good.saved and good.matches
    before = store.board("put")
    assert set(before) == {"AAPL", "MSFT"}
    assert [m for g in before.values() for m in g["matches"]] == good.matches
    assert {g["scan_id"] for g in before.values()} == {"first"}
    assert before["AAPL"]["as_of"] == good.symbols["AAPL"].as_of
    assert before["AAPL"]["rules"] == good.rules

    # MSFT fails (its recordings are gone): AAPL is replaced, MSFT keeps its rows.
    shutil.rmtree(aapl_dir / "MSFT")
    partly = perform_scan(["AAPL", "MSFT"], force=True, env=env, scan_id="second")
    assert partly.success and partly.symbols["MSFT"].status == "error"
    assert "MSFT; the previous results of 1 of them are kept" in partly.message
    after = store.board("put")
    assert after["AAPL"]["scan_id"] == "second" and after["MSFT"] == before["MSFT"]
    assert store.failures("put")["MSFT"]["status"] == "error"

    # A scan of one symbol touches nothing else; a success clears that symbol's failure.
    clone_symbol(aapl_dir, "AAPL", "MSFT")
    assert perform_scan(["MSFT"], force=True, env=env, scan_id="third").success
    assert store.board("put")["AAPL"]["scan_id"] == "second"
    assert store.board("put")["MSFT"]["scan_id"] == "third"
    assert store.failures("put") == {}

    # A scan where nothing could be scanned changes no rows and keeps the last good summary.
    last = store.last("put")
    failed = perform_scan(["NVDA"], force=True, env=env, scan_id="fourth")
    assert not failed.success and failed.message.endswith("could be scanned.")
    assert "previous results" not in failed.message  # NVDA never had any
    assert store.last("put") == last and store.last_attempt("put")["success"] is False
    assert set(store.board("put")) == {"AAPL", "MSFT"}

    interrupted = perform_scan(force=True, env=env, should_continue=lambda: False)
    assert interrupted.interrupted and not interrupted.success
    assert store.last("put") == last and set(store.board("put")) == {"AAPL", "MSFT"}


def test_market_closed_refuses_unless_forced_and_names_the_next_open(
    aapl_dir: Path, tmp_path: Path, store: ResultStore
) -> None:
    env = make_env(aapl_dir, tmp_path, FrozenClock(SATURDAY), store)
    refused = perform_scan(env=env)
    assert refused.refused == "market_closed" and not refused.success
    assert "2026-11-23 09:30 ET" in refused.message
    assert store.last("put") is None and store.last_attempt("put") is None
    assert perform_scan(env=env, force=True).success


def test_scan_uses_the_active_watchlist(aapl_dir: Path, tmp_path: Path, clock: FrozenClock) -> None:
    env = make_env(aapl_dir, tmp_path, clock, None)
    env.watchlist.add(["MSFT"])
    env.watchlist.set_active(["AAPL"], False)
    result = perform_scan(force=True, env=env)
    assert list(result.symbols) == ["MSFT"]
    env.watchlist.set_active(["MSFT"], False)
    assert perform_scan(force=True, env=env).refused == "no_symbols"


def test_overridden_rules_apply_to_one_run(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock
) -> None:
    env = make_env(aapl_dir, tmp_path, clock, None)
    loose = env.rules.overridden("put", min_return_pct=5, max_delta=0.4)
    wide = perform_scan(force=True, env=env, rules=loose)
    strict = perform_scan(force=True, env=env)
    assert len(wide.matches) > len(strict.matches)
    assert min(m["delta"] for m in wide.matches) < -0.20
    assert all(m["delta"] >= -0.4 for m in wide.matches)


def test_invalid_side_is_refused(aapl_dir: Path, tmp_path: Path, clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="side must be one of put, call"):
        perform_scan(side="straddle", env=make_env(aapl_dir, tmp_path, clock, None))  # type: ignore[arg-type]


def test_expirations_are_dated_in_new_york(aapl_dir: Path) -> None:
    assert ReplaySource(aapl_dir).expirations("AAPL")[0] == date(2025, 8, 15)


def test_reports_carry_each_expirations_forward(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock
) -> None:
    rules = {"put_min_return_pct": 0.0, "put_max_delta": 1.0}
    result = perform_scan(force=True, env=make_env(aapl_dir, tmp_path, clock, None, **rules))
    report = result.symbols["AAPL"]
    assert sorted(report.forwards) == report.expirations
    for day, forward in report.forwards.items():
        assert forward["source"] == "market" and forward["pairs"] == 3
        assert abs(forward["forward"] / report.price - 1) < 0.01
        rows = [m for m in result.matches if m["expiration"] == day]
        assert rows and all(m["forward"] == forward["forward"] for m in rows)
        assert not any("forward_fallback" in m["flags"] for m in rows)
    assert json.loads(json.dumps(result.to_dict()))["symbols"]["AAPL"]["forwards"] == (
        report.forwards
    )


class _BrokenChains(ReplaySource):
    """A replay whose chains of one symbol carry a quote without a price: analysis raises."""

    def chain(self, symbol: str, expiration: date) -> Chain:
        chain = super().chain(symbol, expiration)
        if symbol != "BROKE":
            return chain
        return dataclasses.replace(chain, quote=dataclasses.replace(chain.quote, price=None))


def test_an_analysis_failure_fails_only_its_symbol(
    aapl_dir: Path, tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(aapl_dir / "AAPL", aapl_dir / "BROKE")
    for path in (aapl_dir / "BROKE").iterdir():
        path.write_bytes(path.read_bytes().replace(b'"AAPL', b'"BROKE'))
    env = dataclasses.replace(
        make_env(aapl_dir, tmp_path, clock, None), source=_BrokenChains(aapl_dir)
    )
    result = perform_scan(["BROKE", "AAPL"], force=True, env=env)
    broken = result.symbols["BROKE"]
    assert broken.status == "error" and broken.error == "unexpected error (TypeError)"
    assert broken.expirations == [] and broken.matches == 0
    assert result.symbols["AAPL"].status == "ok" and result.matches
    assert all(m["symbol"] == "AAPL" for m in result.matches)
    assert "analysis of BROKE failed" in caplog.text
