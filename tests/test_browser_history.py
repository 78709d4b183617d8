"""In Chromium under gunicorn: two CLI scans, then a symbol's history page and its chart."""

from __future__ import annotations

import http.client
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from optscan.core.ivrank import trading_day
from optscan.core.market import NEW_YORK
from optscan.core.models import ScanResult, SymbolReport
from optscan.store.history import HistoryStore
from optscan.store.watchlist import Watchlist
from tests.browsers import csp_reports, watched_page
from tests.flaskrun import run_flask
from tests.replaydirs import build_replay_dir
from tests.servers import child_environment, gunicorn_server
from tests.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture

pytestmark = pytest.mark.slow

SECRET = "history-test-secret-key-0123456789abcdef"
PRIOR_DAYS = 24


def seed(instance_path: Path, before: date) -> None:
    """Record one earlier scan of AAPL per weekday before `before`, with a moving spot and IV."""
    store = HistoryStore(instance_path / "history.sqlite3")
    days: list[date] = []
    day = before
    while len(days) < PRIOR_DAYS:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    now = datetime.now(UTC)
    for back, day in enumerate(reversed(days)):
        report = SymbolReport(
            status="ok",
            price=220.0 + back,
            as_of=datetime.combine(day, time(16), NEW_YORK).isoformat(),
            atm_iv={"2025-08-22": 0.2 + 0.004 * back},
            iv30=0.18 + 0.005 * back,
            matches=back % 4,
        )
        at = now - timedelta(days=PRIOR_DAYS - back)
        result = ScanResult(True, "", "put", "cli", at, at, "", symbols={"AAPL": report})
        store.record(result, uuid.uuid4().hex)


def cli_scan(env: dict[str, str]) -> dict:
    done = run_flask("scan", "--force", "--symbols", "AAPL", "--json", env=child_environment(env))
    assert done.returncode == 0, done.stderr
    assert "History:" not in done.stderr  # said only when the recording failed
    return json.loads(done.stdout)


def get_json(url, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, body


CHART_STATE = """() => {
    const canvas = document.querySelector('#history-chart canvas');
    const chart = canvas && window.Chart.getChart(canvas);
    if (!chart) { return null; }
    return {
        total: window.optscanCharts.pointCount(canvas),
        series: chart.data.datasets.map(d => [d.label, d.data.length]),
        axes: Object.keys(chart.scales).sort(),
    };
}"""


def test_two_cli_scans_then_the_history_page_charts_every_point(
    browser,  # noqa: F811
    tmp_path: Path,
    instance_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    replay = build_replay_dir(tmp_path / "replay", "aapl")
    Watchlist(instance_path / "watchlist.sqlite3", seed=["AAPL"])
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance_path),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": redis_prefix,
        "OPTSCAN_SOURCE": f"replay:{replay}",
        "OPTSCAN_SECRET_KEY": SECRET,
    }
    first = cli_scan(env)
    seed(instance_path, trading_day(first["symbols"]["AAPL"]["as_of"]))
    second = cli_scan(env)
    aapl = second["symbols"]["AAPL"]
    assert aapl["iv_days"] == PRIOR_DAYS + 1 and aapl["iv_rank"] is not None
    ARTIFACTS.mkdir(exist_ok=True)

    with gunicorn_server(env) as url:
        status, body = get_json(url, "/history.json?symbol=AAPL")
        assert status == 200
        points = body["points"]
        # The two identical CLI scans and the seeded days, oldest first.
        assert len(points) == PRIOR_DAYS + 2
        assert [p["scan_id"] for p in points[-2:]] != [None, None]
        assert points[-1]["iv30"] == points[-2]["iv30"] == aapl["iv30"]
        assert [p["scanned_at"] for p in points] == sorted(p["scanned_at"] for p in points)
        status, refused = get_json(url, "/history.json?symbol=%3Cb%3E")
        assert status == 400 and "invalid symbol" in refused["error"]

        page, problems = watched_page(browser, 1280, 1100)
        page.goto(f"{url}/")
        page.click("nav.topnav >> text=History")
        assert page.locator("nav.topnav a[aria-current=page]").inner_text() == "History"
        page.fill("#history-symbol", "aapl")
        page.select_option("#history-days", "all")
        page.click(".history-choice button[type=submit]")
        page.wait_for_function(
            "() => { const c = document.querySelector('#history-chart canvas');"
            " return c && window.Chart && window.Chart.getChart(c); }"
        )
        chart = page.evaluate(CHART_STATE)
        # One point per recorded scan in each series: spot, 30-day IV, matches.
        assert chart["series"] == [
            ["Spot", len(points)],
            ["30-day IV %", len(points)],
            ["Matches", len(points)],
        ]
        assert chart["total"] == 3 * len(points) and chart["axes"] == ["x", "y", "y2"]
        rank_line = page.text_content("#history-rank")
        assert f"{aapl['iv30'] * 100:.1f}%" in rank_line and "IV rank" in rank_line
        assert page.locator("#history-table tbody tr[data-scan-id]").count() == len(points)
        page.screenshot(path=str(ARTIFACTS / "history-chart.png"), full_page=True)

        # The results page shows the rank in AAPL's head line.
        page.goto(f"{url}/")
        head = page.locator('tbody.group[data-symbol="AAPL"] .group-iv')
        assert "IV rank" in head.inner_text() and "percentile" in head.inner_text()
        page.locator('tbody.group[data-symbol="AAPL"] tr.group-head').screenshot(
            path=str(ARTIFACTS / "results-iv-rank.png")
        )
        csp = csp_reports(page)
        page.close()
    assert csp == [] and problems == []
