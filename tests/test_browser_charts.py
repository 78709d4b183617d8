"""Under gunicorn and in headless Chromium: alerts after web scans, the risk/return chart."""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from optscan.store.events import ScanEvents
from optscan.store.results import ResultStore
from optscan.store.watchlist import Watchlist
from tests.browsers import csp_reports, watched_page
from tests.hooks import HookServer
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL"]
SECRET = "charts-test-secret-key-0123456789abcdef"


def varied_recordings(root: Path) -> Path:
    """Return AAPL's recordings under each symbol, premiums scaled per symbol so points differ."""
    source = build_replay_dir(root / "aapl", "aapl") / "AAPL"
    for index, symbol in enumerate(SYMBOLS):
        factor = 1.0 + 0.35 * index
        (root / "varied" / symbol).mkdir(parents=True)
        for path in sorted(source.glob("*.json")):
            payload = json.loads(path.read_bytes())
            for result in payload["optionChain"]["result"]:
                result["underlyingSymbol"] = symbol
                result["quote"]["symbol"] = symbol
                for chain in result["options"]:
                    for put in chain.get("puts", []):
                        put["contractSymbol"] = symbol + put["contractSymbol"][len("AAPL") :]
                        for key in ("bid", "ask", "lastPrice"):
                            if put.get(key):
                                put[key] = round(put[key] * factor, 2)
            (root / "varied" / symbol / path.name).write_text(json.dumps(payload))
    return root / "varied"


@pytest.fixture
def serve(tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str):
    """Return a function that serves the app under gunicorn with alerts to a given webhook."""
    recordings = varied_recordings(tmp_path)
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)

    def start(hook: HookServer, latency: float = 0.0):
        yahoo = YahooEmulator(recordings, latency=latency)
        env = {
            "OPTSCAN_INSTANCE_PATH": str(instance_path),
            "REDIS_URL": redis_url,
            "OPTSCAN_REDIS_PREFIX": redis_prefix,
            "OPTSCAN_SECRET_KEY": SECRET,
            "OPTSCAN_SCAN_CONCURRENCY": "2",
            "OPTSCAN_SSE_HEARTBEAT_SECONDS": "1",
            "OPTSCAN_PUT_MIN_RETURN_PCT": "5",
            "OPTSCAN_PUT_MAX_DELTA": "0.3",
            "OPTSCAN_NOTIFY_URLS": hook.url(),
            # Only a hang guard: the webhook holds its answer while the test looks around.
            "OPTSCAN_NOTIFY_TIMEOUT_SECONDS": "60",
            "OPTSCAN_PUBLIC_URL": "https://optscan.example.org",
        }
        return yahoo, env

    return start


def get(url, path: str) -> tuple[int, str, str | None]:
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body, response.getheader("Set-Cookie")


def start_scan(url) -> None:
    _, page, cookie = get(url, "/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    connection.request(
        "POST",
        "/scan",
        body=urlencode({"side": "put", "force": "1", "csrf_token": token}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie.split(";", 1)[0],
            "X-Requested-With": "fetch",
        },
    )
    response = connection.getresponse()
    assert response.status == 202, response.read()
    connection.close()


def wait_until(check, what: str, seconds: float = 60.0):
    """Poll `check` until it returns something true (a hang guard, not a speed claim)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def test_a_web_scan_completes_while_its_alert_is_still_unanswered(
    serve, redis_client: redis.Redis, redis_prefix: str
) -> None:
    store = ResultStore(redis_client, redis_prefix)
    events = ScanEvents(redis_client, redis_prefix)
    with HookServer(500, hold=True) as hook:
        hook.on_request = lambda: store.last("put") is not None
        yahoo, env = serve(hook)
        with yahoo, gunicorn_server({**env, "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}"}) as url:
            start_scan(url)
            assert hook.arrived.wait(60), "the webhook was never called"
            # The scan was stored before the webhook was asked, and it is over (lock free,
            # scan-finished published) while the webhook still holds its answer.
            assert hook.seen == [True]
            _, status, _ = get(url, "/scan/status")
            assert json.loads(status)["state"] == "idle"
            kinds = [e.type for e in events.logged()]
            assert "scan-finished" in kinds and "alert" not in kinds
            hook.release()
            alert = wait_until(
                lambda: [e for e in events.logged() if e.type == "alert"], "the alert event"
            )
            assert alert[0].data["ok"] is False and "500" in alert[0].data["reason"]
            _, page, _ = get(url, "/")
    (sent,) = hook.bodies()
    assert sent["title"].startswith("optscan: ") and sent["title"].endswith(" new puts")
    assert "All results: https://optscan.example.org/?side=put" in sent["message"]
    assert "last alert failed:" in page and "error=500" in page


CHART_STATE = """() => {
    const canvas = document.querySelector('#risk-return canvas');
    const chart = canvas && window.Chart.getChart(canvas);
    return {
        // The rows shown: a symbol's rows past its best N stay hidden until "show all".
        rows: document.querySelectorAll(
            '#results-table tbody:not([hidden]) tr[data-contract]:not([hidden])').length,
        all: document.querySelectorAll('#results-table tr[data-contract]').length,
        points: chart ? chart.data.datasets.reduce((n, d) => n + d.data.length, 0) : -1,
        series: chart ? chart.data.datasets.map(d => d.label) : [],
        live: document.querySelector('#results').dataset.mode === 'live',
        summary: document.querySelector('#scan-summary').textContent.trim(),
        hidden: document.querySelector('#risk-return').hidden,
    };
}"""


def test_the_risk_return_chart_holds_one_point_per_row(browser, serve) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    with HookServer() as hook:
        yahoo, env = serve(hook, latency=0.2)
        with yahoo, gunicorn_server({**env, "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}"}) as url:
            page, problems = watched_page(browser, 1280, 1000)
            page.goto(url)
            before = page.evaluate(CHART_STATE)
            assert before["rows"] == 0 and before["hidden"] is True
            page.get_by_label("Scan even if the market is closed").check()
            page.click("#scan-button")

            samples = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                state = page.evaluate(CHART_STATE)
                samples.append(state)
                if "Scanned" in state["summary"]:
                    break
                time.sleep(0.05)
            # Live rows were drawn as they arrived, before the scan ended.
            assert any(s["live"] and 0 < s["rows"] == s["points"] for s in samples), samples[-5:]

            # After the scan the stored table is swapped in; the chart follows it.
            done = wait_until(
                lambda: (
                    (s := page.evaluate(CHART_STATE))["rows"] > 0
                    and not s["live"]
                    and s["points"] == s["rows"]
                    and s
                ),
                "the chart of the stored table",
            )
            assert done["series"] == sorted(SYMBOLS)
            page.wait_for_selector("#alert-status >> text=Last alert sent")
            # Every row was new to the alert: one message, counting them all.
            assert f"{done['all']} new puts" in page.text_content("#alert-status")
            assert len(hook.bodies()) == 1
            page.screenshot(path=str(ARTIFACTS / "results-chart.png"), full_page=True)

            # Hovering a point names its contract.
            box = page.locator("#risk-return canvas").bounding_box()
            chart_point = page.evaluate(
                """() => {
                    const canvas = document.querySelector('#risk-return canvas');
                    const chart = window.Chart.getChart(canvas);
                    const el = chart.getDatasetMeta(0).data[0];
                    return {x: el.x, y: el.y, name: chart.data.datasets[0].data[0].name};
                }"""
            )
            page.mouse.move(box["x"] + chart_point["x"], box["y"] + chart_point["y"])
            tooltip = wait_until(
                lambda: page.evaluate(
                    """() => {
                        const t = window.Chart.getChart(
                            document.querySelector('#risk-return canvas')).tooltip;
                        return t && t.opacity > 0 ? t.title.join(' ') : '';
                    }"""
                ),
                "the tooltip",
            )
            assert chart_point["name"] in tooltip and chart_point["name"].startswith("AAPL")
            page.locator("#risk-return").screenshot(path=str(ARTIFACTS / "results-chart-hover.png"))

            # Filtering the table filters the chart.
            page.fill("#symbol-filter", "MSFT")
            filtered = wait_until(
                lambda: (s := page.evaluate(CHART_STATE))["series"] == ["MSFT"] and s,
                "the filtered chart",
            )
            assert 0 < filtered["points"] == filtered["rows"] < done["rows"]

            # The helper a symbol's history page will use draws a time series.
            drawn = page.evaluate(
                """() => {
                    const box = document.createElement('div');
                    box.className = 'chart-box';
                    const canvas = document.createElement('canvas');
                    box.appendChild(canvas);
                    document.querySelector('main').appendChild(box);
                    const day = 86400000, t0 = Date.UTC(2026, 10, 2, 21);
                    window.optscanCharts.timeSeries(canvas, [
                        {label: 'spot',
                         points: [0, 1, 2].map(i => ({x: t0 + i * day, y: 200 + i}))},
                        {label: '30-day IV %', axis: 'y2',
                         points: [0, 1, 2].map(i => ({x: t0 + i * day, y: 30 - i}))},
                        {label: 'matches', kind: 'bar', axis: 'y2',
                         points: [0, 1, 2].map(i => ({x: t0 + i * day, y: i}))},
                    ], {yTitle: 'USD', y2Title: 'percent, count'});
                    const chart = window.Chart.getChart(canvas);
                    return {points: window.optscanCharts.pointCount(canvas),
                            axes: Object.keys(chart.scales).sort()};
                }"""
            )
            assert drawn == {"points": 9, "axes": ["x", "y", "y2"]}
            csp = csp_reports(page)
            seen_problems = list(problems)
            # The watch works: an inline script is refused, and reported.
            page.evaluate(
                """() => { const s = document.createElement('script');
                           s.textContent = 'window.__ran = true';
                           document.body.appendChild(s); }"""
            )
            wait_until(lambda: page.evaluate("() => (window.__csp || []).length"), "a report")
            assert page.evaluate("() => window.__ran === undefined")
            page.close()
    assert csp == [] and seen_problems == []
