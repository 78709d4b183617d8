"""The wheel in headless Chromium under gunicorn: positions, rules on the page, saved defaults.

AAPL, MSFT and NVDA all answer with AAPL's recordings (spot near 231.59), served over HTTP by
the Yahoo emulator. The recorded calls that pass the default rules strike at 232.50 and 237.50.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from optscan.store.watchlist import Watchlist
from tests.conftest import private_prefix
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.test_browser import (  # noqa: F401 - browser: the Chromium fixture
    ARTIFACTS,
    HANG_GUARD_MS,
    browser,
)
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
SECRET = "wheel-browser-test-secret-0123456789abcdef"

# Each result row as the table holds it: symbol, whether shown, and its cells' raw values.
ROWS = """() => {
    const names = Array.from(document.querySelectorAll('#results-table thead th'))
        .map(th => th.dataset.col);
    return Array.from(document.querySelectorAll('#results-table tr[data-contract]')).map(r => {
        const v = {};
        Array.from(r.cells).forEach((c, i) => { v[names[i]] = c.dataset.v; });
        return {symbol: r.dataset.symbol, shown: !r.hidden, ...v};
    });
}"""


@contextmanager
def wheel_server(instance: Path, prefix: str, redis_url: str, yahoo: YahooEmulator):
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": prefix,
        "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}",
        "OPTSCAN_SECRET_KEY": SECRET,
        "OPTSCAN_SCAN_CONCURRENCY": "2",
        "OPTSCAN_SSE_HEARTBEAT_SECONDS": "1",
        "OPTSCAN_PUT_MIN_RETURN_PCT": "5",
        "OPTSCAN_PUT_MAX_DELTA": "0.5",
    }
    with gunicorn_server(env) as url:
        yield url


@pytest.fixture
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="optscan-inst-"))  # short: a socket lives here
    Watchlist(folder / "watchlist.sqlite3", seed=SYMBOLS)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def yahoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YahooEmulator]:
    recordings = build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl")
    with YahooEmulator(recordings, aliases=dict.fromkeys(SYMBOLS, "AAPL")) as emulator:
        yield emulator


@pytest.fixture
def served(instance: Path, redis_url: str, yahoo: YahooEmulator):
    with (
        private_prefix(redis_url) as prefix,
        wheel_server(instance, prefix, redis_url, yahoo) as url,
    ):
        yield url


def watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    return errors


def set_position(page, symbol: str, shares: int, basis: float) -> None:
    page.fill("#position-symbol", symbol)
    page.fill("#position-shares", str(shares))
    page.fill("#position-basis", str(basis))
    page.click("#position-form button[type=submit]")
    page.wait_for_selector(f'#positions-table tr[data-symbol="{symbol}"]')


def scan(page, side: str) -> None:
    """Press Scan for a side (market closed or not) and wait for the stored table."""
    page.check(f'#scan-form input[name="side"][value="{side}"]')
    page.get_by_label("Scan even if the market is closed").check()
    page.click("#scan-button")
    page.wait_for_function(
        "() => /Scanned|failed/.test(document.querySelector('#scan-summary').textContent)"
    )
    page.wait_for_function("() => document.querySelector('#results').dataset.mode === 'stored'")


def test_positions_set_on_the_page_drive_the_call_scan(browser, served) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = watch_errors(page)
    page.goto(served + "/positions")
    set_position(page, "AAPL", 200, 230)
    set_position(page, "NVDA", 100, 235)  # above the 232.50 call, below the 237.50
    set_position(page, "MSFT", 50, 100)  # fewer than one call's 100 shares: not covered
    page.fill("#cash-amount", "50000")
    page.click("#cash-form button[type=submit]")
    page.wait_for_selector("#cash-now >> text=50,000.00")

    page.goto(served + "/?side=call")
    scan(page, "call")
    rows = page.evaluate(ROWS)
    basis = {"AAPL": 230.0, "NVDA": 235.0}
    assert {r["symbol"] for r in rows} == set(basis)  # only the symbols held, MSFT not
    assert all(float(r["strike"]) >= basis[r["symbol"]] for r in rows)
    assert {float(r["strike"]) for r in rows if r["symbol"] == "AAPL"} == {232.5, 237.5}
    assert {float(r["strike"]) for r in rows if r["symbol"] == "NVDA"} == {237.5}
    assert {r["contracts"] for r in rows if r["symbol"] == "AAPL"} == {"2"}
    head = page.text_content('#results-table tbody[data-symbol="AAPL"] [data-group-head]')
    assert "held 200 sh @ 230.00" in head and "IV " in head
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#results").screenshot(path=str(ARTIFACTS / "wheel-calls-table.png"))

    page.goto(served + "/?side=put")
    scan(page, "put")
    puts = page.evaluate(ROWS)
    assert puts and all(int(r["contracts"]) == int(50000 // float(r["collateral"])) for r in puts)
    page.screenshot(path=str(ARTIFACTS / "wheel-puts.png"), full_page=True)
    assert errors == []
    page.close()


def test_rules_changed_on_the_page_shape_the_rows(browser, served) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = watch_errors(page)
    page.goto(served)
    # Puts held to 7 days or more and one row per symbol, for this scan only.
    page.fill("#rule-min-dte", "2")
    page.fill("#rule-top-n", "1")
    scan(page, "put")
    rows = page.evaluate(ROWS)
    assert rows and all(int(r["dte"]) >= 2 for r in rows)
    assert {r["symbol"] for r in rows} == set(SYMBOLS)
    shown = [r for r in rows if r["shown"]]
    assert sorted(r["symbol"] for r in shown) == sorted(SYMBOLS)  # the best one of each
    for symbol in SYMBOLS:
        mine = [float(r["annualized_return"]) for r in rows if r["symbol"] == symbol]
        best = next(r for r in shown if r["symbol"] == symbol)
        assert float(best["annualized_return"]) == max(mine)
    assert page.is_visible("#result-meta >> text=one-off rules")
    # "show all" expands one symbol in place, and hides its rows again.
    page.click('#results-table tbody[data-symbol="MSFT"] a[data-show-all]')
    expanded = page.evaluate(ROWS)
    assert all(r["shown"] for r in expanded if r["symbol"] == "MSFT")
    assert sum(r["shown"] for r in expanded if r["symbol"] == "AAPL") == 1
    page.click('#results-table tbody[data-symbol="MSFT"] a[data-show-all]')
    assert sum(r["shown"] for r in page.evaluate(ROWS) if r["symbol"] == "MSFT") == 1
    # The chart draws the rows shown.
    page.wait_for_function(
        f"() => document.querySelector('#risk-return canvas').dataset.points === '{len(SYMBOLS)}'"
    )
    assert errors == []
    page.close()


def test_the_page_works_without_javascript(browser, served) -> None:  # noqa: F811
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(served + "/positions")
    set_position(page, "AAPL", 100, 230)
    page.goto(served + "/?side=call")
    page.check('#scan-form input[name="side"][value="call"]')
    page.get_by_label("Scan even if the market is closed").check()
    page.fill("#rule-top-n", "1")
    page.click("#scan-button")
    assert "with one-off rules" in page.text_content("#scan-outcome")
    deadline = time.monotonic() + HANG_GUARD_MS / 1000  # a hang guard, not a timing
    while context.request.get(served + "/scan/status").json()["running"]:
        assert time.monotonic() < deadline, "the scan did not end"
        time.sleep(0.05)
    page.goto(served + "/?side=call")
    # No script runs: the server rendered the best row and hid the other.
    visible = page.locator("#results-table tr[data-contract]:not([hidden])")
    assert visible.count() == 1
    page.click("#results-table a[data-show-all]")  # a link: the server shows every row
    assert page.locator("#results-table tr[data-contract]:not([hidden])").count() == 2
    context.close()


def test_saved_defaults_survive_a_restart(
    browser,  # noqa: F811
    instance: Path,
    redis_url: str,
    yahoo: YahooEmulator,
) -> None:
    with private_prefix(redis_url) as prefix:
        with wheel_server(instance, prefix, redis_url, yahoo) as first:
            page = browser.new_page()
            page.goto(first)
            page.fill("#rule-min-dte", "3")
            page.fill("#rule-top-n", "2")
            page.check("#rule-exclude-earnings")
            page.click("#save-rules")
            page.wait_for_selector(".flashes >> text=Saved as the default rules")
            page.close()
        # A new server on the same instance folder (and a flushed Redis would not matter).
        with wheel_server(instance, prefix, redis_url, yahoo) as second:
            page = browser.new_page()
            page.goto(second)
            assert page.input_value("#rule-min-dte") == "3"
            assert page.input_value("#rule-top-n") == "2"
            assert page.is_checked("#rule-exclude-earnings")
            assert "defaults saved on this page" in page.text_content("#rules-form summary")
            assert "DTE 3-28" in page.text_content("#rules-in-force")
            scan(page, "put")
            rows = page.evaluate(ROWS)
            assert rows and all(int(r["dte"]) >= 3 for r in rows)
            assert not page.is_visible("#result-meta >> text=one-off rules")
            page.close()
