"""End to end in headless Chromium: click Scan, watch progress and rows arrive, reload mid-scan.

The scan is held at the emulator in stages (three symbols, then six, then all ten), so that
what the page must show mid-scan is there for as long as the test looks, on any machine.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optscan.store.watchlist import Watchlist
from tests.conftest import private_prefix
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "NFLX", "CRM", "ADBE", "UBER"]
# The watchlist scans in alphabetical order: it stops at the fourth symbol until the first
# stage is released, then at the seventh until the second is.
ORDER = sorted(SYMBOLS)
STAGES = (f"/({'|'.join(ORDER[3:6])})$", f"/({'|'.join(ORDER[6:])})$")
CHROMIUM = "/usr/bin/chromium"
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


# Playwright's waits give up after 30 s by default, which a loaded 2-core machine can exceed:
# every wait here waits for an event on the page, so its limit is only a hang guard.
HANG_GUARD_MS = 240_000


class GuardedBrowser:
    """Chromium whose pages and contexts wait up to HANG_GUARD_MS before giving up."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_page(self, **options: Any) -> Any:
        """Open a page in a context of its own."""
        page = self._browser.new_page(**options)
        page.set_default_timeout(HANG_GUARD_MS)
        return page

    def new_context(self, **options: Any) -> Any:
        """Open a context whose pages inherit the hang guard."""
        context = self._browser.new_context(**options)
        context.set_default_timeout(HANG_GUARD_MS)
        return context


@pytest.fixture(scope="module")
def browser() -> Iterator[GuardedBrowser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `just system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield GuardedBrowser(instance)
        instance.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str):
    """Serve the app on 2 gevent workers, shared by this module's tests (each starts a scan)."""
    recordings = build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl")
    instance_path = Path(tempfile.mkdtemp(prefix="optscan-inst-"))  # short: a socket lives here
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    # Every symbol answers with AAPL's recordings.
    aliases = dict.fromkeys(SYMBOLS, "AAPL")
    with YahooEmulator(recordings, aliases=aliases) as yahoo, private_prefix(redis_url) as prefix:
        env = {
            "OPTSCAN_INSTANCE_PATH": str(instance_path),
            "REDIS_URL": redis_url,
            "OPTSCAN_REDIS_PREFIX": prefix,
            "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}",
            "OPTSCAN_SECRET_KEY": "browser-test-secret-key-0123456789",
            "OPTSCAN_SCAN_CONCURRENCY": "2",
            "OPTSCAN_SSE_HEARTBEAT_SECONDS": "1",
            "OPTSCAN_FETCH_TIMEOUT_SECONDS": "120",  # held answers must not time out
        }
        try:
            with gunicorn_server(env, workers=2) as url:
                yield url, yahoo
        finally:
            shutil.rmtree(instance_path, ignore_errors=True)


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


# Every value the progress bar takes, recorded by the page itself as it changes.
RECORD_PROGRESS = """() => {
    window.progressValues = [];
    const bar = document.querySelector('#progress-bar');
    new MutationObserver(() => window.progressValues.push(Number(bar.value)))
        .observe(bar, {attributes: true, attributeFilter: ['value']});
}"""


def progress_reaches(page, value: int) -> None:
    """Wait until the page's progress bar shows at least `value` symbols done."""
    page.wait_for_function(
        f"() => Number(document.querySelector('#progress-bar').value) >= {value}"
    )


def test_scan_progress_and_rows_arrive_live(browser, live_server) -> None:
    url, yahoo = live_server
    stages = [yahoo.hold(stage) for stage in STAGES]
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
    try:
        page.goto(url)
        page.evaluate(RECORD_PROGRESS)
        page.get_by_label("Scan even if the market is closed").check()
        page.click("#scan-button")

        # Three symbols done, the rest held: the page shows them while the scan runs.
        progress_reaches(page, 3)
        first_stage = sample(page)
        assert first_stage["value"] == 3 and first_stage["max"] == len(SYMBOLS)
        assert first_stage["rows"] > 0, "no rows appeared before the scan ended"
        # A second click while the scan runs must be refused with a clear message.
        page.click("#scan-button")
        page.wait_for_function(
            "() => /already running/.test(document.querySelector('#scan-outcome').textContent)"
        )
        second_click = sample(page)
        # A page opened mid-scan shows the progress at once, then follows the stream.
        other = browser.new_page()
        other.goto(url)
        at_load = sample(other)

        stages[0].release()
        progress_reaches(page, 6)
        assert sample(page)["value"] == 6
        stages[1].release()
        page.wait_for_function(
            "() => /Scanned/.test(document.querySelector('#scan-summary').textContent)"
        )
    finally:
        for stage in stages:
            stage.release()

    page.screenshot(path=str(ARTIFACTS / "browser-scan.png"), full_page=True)
    final = sample(page)
    assert "Scanned 10 of 10 symbols" in final["summary"]
    values = page.evaluate("window.progressValues")
    assert values == sorted(values), f"the progress bar went backwards: {values}"
    assert {3, 6, len(SYMBOLS)} <= set(values), values
    assert not any(stage.timed_out for stage in stages)

    assert "already running" in second_click["outcome"]
    assert at_load["value"] == 3, f"reloaded page did not show progress at once: {at_load}"
    other.wait_for_function(
        "() => /Scanned 10 of 10/.test(document.querySelector('#scan-summary').textContent)",
        timeout=HANG_GUARD_MS,
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
    url, _ = live_server
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(url)
    page.get_by_label("Scan even if the market is closed").check()
    page.click("#scan-button")
    page.wait_for_load_state()
    assert "started" in page.text_content("#scan-outcome").lower()
    context.close()
