"""A ticker Yahoo does not know: added without asking Yahoo (the network may be down), scanned
as `unknown_symbol`, and marked on the watchlist page from the note the scan leaves in Redis;
a symbol that exists without options (BTC-USD) is not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from optscan.core.models import OK_STATUSES
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

UNKNOWN = "ZZZZZZZZZ"
MARK = f"Yahoo does not know {UNKNOWN}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_replay_dir(tmp_path_factory.mktemp("premarket"), "premarket")


@pytest.fixture(params=["404", "empty"])
def yahoo(request: pytest.FixtureRequest, root: Path) -> Iterator[YahooEmulator]:
    # Yahoo has answered both ways for a symbol it does not know.
    with YahooEmulator(root, unknown_symbol=request.param) as server:
        yield server


def row(page: str, symbol: str) -> str:
    found = re.search(rf'<tr data-symbol="{re.escape(symbol)}".*?</tr>', page, re.S)
    assert found, symbol
    return found.group(0)


def scan(app) -> dict:
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_unknown_ticker_is_scanned_as_such_and_marked_on_the_watchlist(
    make_app, yahoo: YahooEmulator
) -> None:
    app = make_app(SOURCE=f"yahoo:{yahoo.base_url}", WTF_CSRF_ENABLED=False)
    watchlist = app.extensions["optscan"].watchlist
    watchlist.remove([e.symbol for e in watchlist.entries()])
    client = app.test_client()
    added = client.post("/watchlist/add", data={"symbols": f"{UNKNOWN} BTC-USD AAPL"})
    assert added.status_code == 303
    assert yahoo.hits == []  # adding never asks Yahoo
    assert MARK not in client.get("/watchlist").text

    result = scan(app)
    reports = result["symbols"]
    assert reports[UNKNOWN]["status"] == "unknown_symbol"
    assert reports[UNKNOWN]["error"] == MARK
    assert reports["BTC-USD"]["status"] == "no_options"  # exists, lists no options
    assert reports["AAPL"]["status"] in OK_STATUSES  # premarket: some days not recorded

    page = client.get("/watchlist").text
    assert MARK in row(page, UNKNOWN)
    assert "Yahoo does not know" not in row(page, "BTC-USD") + row(page, "AAPL")

    # Once Yahoo knows it (a new listing), the next scan takes the mark away.
    yahoo.aliases[UNKNOWN] = "AAPL"
    assert scan(app)["symbols"][UNKNOWN]["status"] in OK_STATUSES
    assert MARK not in client.get("/watchlist").text


def test_the_watchlist_page_shows_without_redis(make_app, tmp_path: Path) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    page = app.test_client().get("/watchlist")
    assert page.status_code == 200
    assert "AAPL" in page.text  # the seeded watchlist, from its own database
