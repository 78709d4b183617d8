"""The scan history: the store on SQLite and PostgreSQL, retention, the hook, CLI, JSON, IV rank.

Every test of the store runs on SQLite and, when a server is reachable, PostgreSQL.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from optscan.core.ivrank import trading_day
from optscan.core.market import NEW_YORK
from optscan.core.models import ScanResult, SymbolReport
from optscan.store.history import HistoryStore
from optscan.web.liverows import RowRenderer
from tests.clocks import FrozenClock

T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # Mon 11:00 ET


def match(symbol: str, strike: float, ret: float) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": "put",
        "contract": f"{symbol}261204P{int(strike * 1000):08d}",
        "expiration": "2026-12-04",
        "dte": 11,
        "strike": strike,
        "bid": 1.0,
        "ask": 1.1,
        "otm_pct": 5.0,
        "annualized_return": ret,
        "delta": -0.15,
        "iv": 0.3,
        "open_interest": 100,
        "volume": 10,
        "flags": ["earnings"],
    }


def scan_result(at: datetime, reports: dict[str, SymbolReport], matches: list) -> ScanResult:
    return ScanResult(
        success=True,
        message="",
        side="put",
        trigger="cli",
        started_at=at,
        finished_at=at,
        rules="",
        symbols=reports,
        matches=matches,
    )


def report(iv30: float | None = 0.25, matches: int = 0, **more: Any) -> SymbolReport:
    fields: dict[str, Any] = {
        "status": "ok",
        "price": 200.0,
        "as_of": (T0 - timedelta(minutes=5)).isoformat(),
        "atm_iv": {"2026-11-27": 0.24, "2026-12-04": 0.26},
        "iv30": iv30,
        "matches": matches,
    }
    return SymbolReport(**{**fields, **more})


def record(store: HistoryStore, at: datetime, **reports: SymbolReport) -> int:
    """Record a scan at `at` whose quotes are from `at` too."""
    for one in reports.values():
        one.as_of = at.isoformat()
    return store.record(scan_result(at, reports, []), uuid.uuid4().hex)


# -- the store -------------------------------------------------------------------------------


def test_a_completed_scan_is_recorded_once_and_read_back(database: Path | str) -> None:
    store = HistoryStore(database, clock=FrozenClock(T0), matches_per_symbol=2)
    found = [match("AAPL", 190, 40.0), match("AAPL", 185, 55.0), match("AAPL", 180, 31.0)]
    reports = {
        "AAPL": report(0.25, matches=3, vendor_iv30=0.27),
        "MSFT": report(None, matches=0),
        "NVDA": SymbolReport(status="rate_limited", error="Yahoo said 429"),
    }
    result = scan_result(T0, reports, found)
    assert store.record(result, "scan-1") == 2  # the failed symbol: no row
    assert store.record(result, "scan-1") == 0  # once only
    # A symbol added to the same scan adds its row alone, and no match twice.
    result.symbols["AMZN"] = report(0.3, matches=1)
    result.matches.append(match("AMZN", 150, 33.0))
    assert store.record(result, "scan-1") == 1
    assert store.stats().matches == 3
    del result.symbols["AMZN"]
    result.matches.pop()
    unsuccessful = scan_result(T0, reports, found)
    unsuccessful.success = False
    assert store.record(unsuccessful, "scan-2") == 0

    (point,) = store.points("AAPL")
    assert point == {
        "id": point["id"],
        "scan_id": "scan-1",
        "side": "put",
        "symbol": "AAPL",
        "scanned_at": "2026-11-23T16:00:00+00:00",
        "trading_day": "2026-11-23",
        "spot": 200.0,
        "quote_at": "2026-11-23T15:55:00+00:00",
        "atm_iv": {"2026-11-27": 0.24, "2026-12-04": 0.26},
        "iv30": 0.25,
        "vendor_iv30": 0.27,
        "matches": 3,
        "best_return": 55.0,
    }
    assert store.points("MSFT")[0]["iv30"] is None and store.points("NVDA") == []
    # The best two matches are kept, best first.
    kept = store.matches_of([point["id"]])[point["id"]]
    assert [m["strike"] for m in kept] == [185.0, 190.0]
    assert kept[0]["flags"] == "earnings" and kept[0]["contract"] == "AAPL261204P00185000"
    figures = store.stats()
    assert (figures.rows, figures.matches, figures.symbols) == (3, 3, 3)
    assert figures.oldest == figures.newest == T0 and figures.bytes > 0
    assert [s for s, _, _ in store.symbols()] == ["AAPL", "AMZN", "MSFT"]


def test_each_trading_days_value_is_its_last_scan_with_a_30_day_iv(database: Path | str) -> None:
    store = HistoryStore(database)
    d1, d2, d3 = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23)
    at = lambda day, hour: datetime.combine(day, time(hour), NEW_YORK)  # noqa: E731
    record(store, at(d1, 10), AAPL=report(0.20), MSFT=report(0.50))
    record(store, at(d1, 15), AAPL=report(0.30))  # d1's last scan
    record(store, at(d2, 11), AAPL=report(0.25))
    record(store, at(d2, 14), AAPL=report(None))  # no IV: the day keeps 0.25
    record(store, at(d2, 20), AAPL=report(0.27))  # 20:00 ET: still d2's quotes
    record(store, at(d3, 10), AAPL=report(0.40))  # today: not a prior day
    record(store, at(d1, 12), AAPL=report(0.90))  # recorded late, but not d1's last scan
    assert store.daily_iv30("AAPL", d1, d3) == [0.30, 0.27]
    assert store.daily_iv30("MSFT", d1, d3) == [0.50]
    assert store.daily_iv30("NVDA", d1, d3) == []
    assert store.daily_iv30("AAPL", d2, d3) == [0.27]  # the window's start
    assert store.points("AAPL")[-2]["trading_day"] == "2026-11-20"


def test_pruning_follows_the_retention_with_a_fake_clock(database: Path | str) -> None:
    clock = FrozenClock(T0)
    store = HistoryStore(database, clock=clock, retention_days=400)
    ages = (500, 401, 400.5, 399, 1)
    for age in ages:
        at = T0 - timedelta(days=age)
        one = report(iv30=age / 1000, matches=2, as_of=at.isoformat())
        store.record(scan_result(at, {"AAPL": one}, [match("AAPL", 190, 40.0)] * 2), f"scan-{age}")
    assert store.stats().matches == 10
    everything = (date(2020, 1, 1), date(2030, 1, 1))
    assert store.daily_iv30("AAPL", *everything) == [0.5, 0.401, 0.4005, 0.399, 0.001]
    # Batches of one: three transactions delete the three rows older than 400 days.
    assert store.prune(batch=1) == 3
    left = store.points("AAPL")
    assert [p["scan_id"] for p in left] == ["scan-399", "scan-1"]
    assert store.stats().matches == 4  # their matches went with them
    assert store.daily_iv30("AAPL", *everything) == [0.399, 0.001]  # and their days
    assert store.prune() == 0
    clock.at = T0 + timedelta(days=2)  # two days on, the 399-day-old scan is due
    assert store.prune() == 1
    assert [p["scan_id"] for p in store.points("AAPL")] == ["scan-1"]
    assert store.daily_iv30("AAPL", *everything) == [0.001]
    with pytest.raises(ValueError, match="retention_days must be at least 1"):
        HistoryStore(database, retention_days=0)


# -- through the app: the CLI, the JSON, the page --------------------------------------------


def cli_scan(app, *args: str) -> dict[str, Any]:
    result = app.test_cli_runner().invoke(
        args=["scan", "--force", "--symbols", "AAPL", "--json", *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_two_identical_cli_scans_are_both_in_the_history(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    first, second = cli_scan(app), cli_scan(app)
    aapl = first["symbols"]["AAPL"]
    assert aapl["iv30"] is not None and set(aapl["atm_iv"]) <= set(aapl["expirations"])
    assert aapl["iv_days"] == 1 and aapl["iv_rank"] is None and aapl["vendor_iv30"] is None
    assert second["symbols"]["AAPL"]["iv30"] == aapl["iv30"]

    client = app.test_client()
    response = client.get("/history.json?symbol=aapl")
    assert response.status_code == 200
    body = response.get_json()
    assert body["symbol"] == "AAPL"
    points = body["points"]
    assert len(points) == 2 and points[0]["id"] < points[1]["id"]  # oldest first
    assert {p["matches"] for p in points} == {len(first["matches"])}
    assert points[0]["iv30"] == aapl["iv30"] and points[0]["spot"] == aapl["price"]
    assert points[0]["best_return"] == max(m["annualized_return"] for m in first["matches"])

    for bad in ("/history.json?symbol=$$", "/history.json", "/history.json?symbol=AAPL&days=x"):
        refused = client.get(bad)
        assert refused.status_code == 400 and refused.is_json, bad
        assert refused.get_json()["error"]
    assert "invalid symbol '$$'" in client.get("/history.json?symbol=$$").get_json()["error"]
    assert client.get("/history.json?symbol=ZZZZ").get_json()["points"] == []

    runner = app.test_cli_runner()
    listed = runner.invoke(args=["history", "AAPL", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == points
    table = runner.invoke(args=["history", "aapl"])
    assert table.exit_code == 0
    assert table.stdout.count("Mon 2026-11-23 11:00 ET") == 2
    assert "IV rank n/a (1 of 20 days)" in table.stdout
    stats = runner.invoke(args=["history", "--stats", "--json"])
    assert json.loads(stats.stdout)["rows"] == 2
    assert runner.invoke(args=["history"]).exit_code == 2
    assert runner.invoke(args=["history", "$$"]).exit_code == 2

    page = client.get("/history?symbol=AAPL&days=all")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    chart = re.search(r'<script type="application/json" id="history-data">(.*?)</script>', html)
    assert chart is not None and len(json.loads(chart.group(1))) == 2
    assert html.count('<tr data-scan-id="') == 2
    assert client.get("/history?symbol=$$").status_code == 400
    index = client.get("/history").get_data(as_text=True)
    assert 'href="/history?symbol=AAPL"' in index and "2 scan rows" in index


def seed_days(app, today: date, values: list[float], symbol: str = "AAPL") -> None:
    """Record one scan per weekday before `today`, oldest first, with these 30-day IVs."""
    days: list[date] = []
    day = today
    while len(days) < len(values):
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    svc = app.extensions["optscan"]
    for back, (day, iv30) in enumerate(zip(reversed(days), values, strict=True)):
        # Quotes of `day` (the replayed ones are from 2025), scanned days before the clock's
        # time, within the retention.
        one = report(iv30)
        one.as_of = datetime.combine(day, time(15), NEW_YORK).isoformat()
        at = svc.now() - timedelta(days=len(values) - back)
        svc.history.record(scan_result(at, {symbol: one}, []), uuid.uuid4().hex)


def group_html(html: str, symbol: str) -> str:
    found = re.search(
        rf'<tbody class="group[^"]*"[^>]*data-symbol="{symbol}".*?</tbody>', html, re.S
    )
    assert found is not None, html
    return found.group(0)


def test_iv_rank_shows_and_the_minimum_filters(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    # Without history: no rank, and the minimum is not applied (and says so).
    fresh = cli_scan(app, "--min-iv-rank", "50")
    aapl = fresh["symbols"]["AAPL"]
    assert fresh["matches"] and aapl["matches"] == len(fresh["matches"])
    assert aapl["iv_rank_note"] == (
        "not filtered by the minimum IV rank 50%: IV rank n/a (1 of 20 days)"
    )
    assert "IV rank >= 50%" in fresh["rules"]

    # 25 prior trading days from 15 % to 39 %; today's 30-day IV lies among them.
    values = [0.15 + 0.01 * i for i in range(25)]
    seed_days(app, trading_day(aapl["as_of"]), values)
    ranked = cli_scan(app)
    aapl = ranked["symbols"]["AAPL"]
    today = aapl["iv30"]
    assert 0.15 < today < 0.39
    assert aapl["iv_days"] == 26  # the 25 days and today (today's earlier scan is replaced)
    assert aapl["iv_rank"] == pytest.approx((today - 0.15) / (0.39 - 0.15))
    assert aapl["iv_percentile"] == pytest.approx(sum(v < today for v in values) / 25)
    assert aapl["iv_rank_note"] is None and ranked["matches"]
    shown = f"IV rank {aapl['iv_rank'] * 100:.0f}%, percentile {aapl['iv_percentile'] * 100:.0f}%"

    # The page's symbol head line shows it, and the live rendering of the scan's symbol-done
    # event is the same section.
    client = app.test_client()
    stored = group_html(client.get("/").get_data(as_text=True), "AAPL")
    assert shown in stored and f"IV30 {today * 100:.1f}%" in stored
    svc = app.extensions["optscan"]
    (done,) = [e for e in svc.events.logged() if e.type == "symbol-done"][-1:]
    live = RowRenderer(app)("symbol-done", done.id, done.data)["html"]
    assert live == stored

    # A minimum above today's rank: AAPL keeps no rows, says why, and did not fail.
    above = aapl["iv_rank"] * 100 + 1
    filtered = cli_scan(app, "--min-iv-rank", f"{above:.3f}")
    aapl = filtered["symbols"]["AAPL"]
    assert filtered["matches"] == [] and aapl["matches"] == 0 and aapl["status"] == "ok"
    assert aapl["iv_rank_note"] == (
        f"IV rank {aapl['iv_rank'] * 100:.0f}% is below the minimum {above:.3f}%: no rows kept"
    )
    assert filtered["counts"]["failed"] == 0 and filtered["success"] is True
    page = client.get("/").get_data(as_text=True)
    assert "no rows kept" in group_html(page, "AAPL")
    table = app.test_cli_runner().invoke(
        args=["scan", "--force", "--symbols", "AAPL", "--min-iv-rank", f"{above:.3f}"]
    )
    assert f"AAPL: IV rank {aapl['iv_rank'] * 100:.0f}% is below the minimum" in table.stderr
    # A minimum at or below it keeps the rows.
    assert cli_scan(app, "--min-iv-rank", f"{above - 2:.3f}")["matches"]
    # The history page ranks the latest day the same way.
    history = client.get("/history?symbol=AAPL").get_data(as_text=True)
    assert shown in history


def test_a_failing_history_never_fails_the_scan(make_app, aapl_dir: Path, caplog) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    svc = app.extensions["optscan"]
    # The history's file is a folder: neither the rank's read nor the recording can open it.
    Path(svc.instance_path / "history.sqlite3").mkdir()
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "AAPL", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["success"] is True and body["matches"]
    assert body["symbols"]["AAPL"]["iv_rank"] is None
    assert "History: the scan was not recorded" in result.stderr
    errors = [r for r in caplog.records if "not recorded in the history" in r.getMessage()]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
