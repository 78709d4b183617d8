"""End to end in headless Chromium: click Scan, watch progress and rows arrive, reload mid-scan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optscan.store.watchlist import Watchlist
from tests.debian import ensure_command
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "NFLX", "CRM", "ADBE", "UBER"]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine's network is closed: background fetches only add refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    ensure_command("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def live_server(tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str):
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    # Every symbol answers with AAPL's recordings after 0.3 s, like a slow Yahoo.
    aliases = dict.fromkeys(SYMBOLS, "AAPL")
    with YahooEmulator(recordings, latency=0.3, aliases=aliases) as yahoo:
        env = {
            "OPTSCAN_INSTANCE_PATH": str(instance_path),
            "REDIS_URL": redis_url,
            "OPTSCAN_REDIS_PREFIX": redis_prefix,
            "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}",
            "OPTSCAN_SECRET_KEY": "browser-test-secret-key-0123456789",
            "OPTSCAN_SCAN_CONCURRENCY": "2",
            "OPTSCAN_SSE_HEARTBEAT_SECONDS": "1",
        }
        with gunicorn_server(env, workers=2) as url:
            yield url


def sample(page) -> dict:
    return page.evaluate(
        """() => ({
            value: Number(document.querySelector('#progress-bar').value),
            max: Number(document.querySelector('#progress-bar').max),
            rows: document.querySelectorAll('#results-table tbody tr[data-symbol]').length,
            summary: document.querySelector('#scan-summary').textContent.trim(),
            outcome: document.querySelector('#scan-outcome').textContent.trim(),
        })"""
    )


def test_scan_progress_and_rows_arrive_live(browser, live_server) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The busy answer is a 409 by design; Chromium logs every 4xx fetch as a console error.
    page.on(
        "console",
        lambda msg: (
            msg.type == "error" and "status of 409" not in msg.text and errors.append(msg.text)
        ),
    )
    page.goto(live_server)
    page.get_by_label("Scan even if the market is closed").check()
    page.click("#scan-button")

    timeline: list[dict] = []
    second_click = reloaded = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = sample(page)
        timeline.append(state)
        if "Scanned" in state["summary"]:
            break
        if second_click is None and 0 < state["value"] < state["max"]:
            # A second click while the scan runs must be refused with a clear message.
            page.click("#scan-button")
            page.wait_for_function(
                "() => /already running/.test(document.querySelector('#scan-outcome').textContent)"
            )
            second_click = sample(page)
            # A page opened mid-scan shows the progress at once, then follows the stream.
            other = browser.new_page()
            other.goto(live_server)
            reloaded = (other, sample(other))
        time.sleep(0.05)
    else:
        pytest.fail(f"the scan did not finish in the page: {timeline[-3:]}")

    page.screenshot(path=str(ARTIFACTS / "browser-scan.png"), full_page=True)
    final = timeline[-1]
    assert "Scanned 10 of 10 symbols" in final["summary"]
    values = [s["value"] for s in timeline]
    assert values == sorted(values), "the progress bar went backwards"
    mid = [s for s in timeline if 0 < s["value"] < s["max"] and s["rows"] > 0]
    assert mid, "no rows appeared before the scan ended"
    assert len({s["value"] for s in timeline if s["value"] < s["max"]}) >= 3

    assert second_click is not None and "already running" in second_click["outcome"]
    assert reloaded is not None
    other, at_load = reloaded
    assert at_load["value"] >= 1, f"reloaded page did not show progress at once: {at_load}"
    other.wait_for_function(
        "() => /Scanned 10 of 10/.test(document.querySelector('#scan-summary').textContent)",
        timeout=30_000,
    )
    # After the scan the stored table (server-rendered) replaces the live rows.
    page.wait_for_function(
        "() => document.querySelectorAll('#results-table tbody tr[data-symbol]').length > 0"
    )
    symbols = set(
        page.eval_on_selector_all(
            "#results-table tbody tr[data-symbol]", "rs => rs.map(r => r.dataset.symbol)"
        )
    )
    assert symbols <= set(SYMBOLS) and len(symbols) == len(SYMBOLS)
    assert errors == []
    other.close()
    page.close()


def test_page_works_with_javascript_off(browser, live_server) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server)
    page.get_by_label("Scan even if the market is closed").check()
    page.click("#scan-button")
    page.wait_for_load_state()
    assert "started" in page.text_content("#scan-outcome").lower()
    context.close()
