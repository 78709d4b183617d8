"""The web pages and endpoints through Flask's test client, on a real Redis and recorded chains."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from optscan.core.market import format_et
from optscan.core.match import MATCH_FIELDS, side_columns
from optscan.core.scan import perform_scan
from optscan.jobs.live import LiveScan
from optscan.jobs.scanjob import new_holder
from optscan.store.lock import ScanLock
from tests.clocks import FrozenClock
from tests.replaydirs import build_replay_dir

FETCH = {"X-Requested-With": "fetch"}
THANKSGIVING_10_ET = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
DAY_AFTER_10_ET = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("no_scan_left_running")


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    """Return a replay folder: AAPL (Aug-Oct 2025), GOOG (no match) and BTC-USD (no options)."""
    root = build_replay_dir(tmp_path / "replay", "aapl")
    premarket = build_replay_dir(tmp_path / "premarket", "premarket")
    for symbol in ("GOOG", "BTC-USD"):
        (premarket / symbol).rename(root / symbol)
    return root


@pytest.fixture
def app(make_app, replay: Path):
    app = make_app(SOURCE=f"replay:{replay}", WTF_CSRF_ENABLED=False, PUT_MIN_RETURN_PCT=5)
    watch_only(app, ["AAPL"])
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def watch_only(app, symbols: list[str]) -> None:
    """Make `symbols` the whole active watchlist."""
    watchlist = app.extensions["optscan"].watchlist
    watchlist.add(symbols)
    others = [e.symbol for e in watchlist.entries() if e.symbol not in symbols]
    if others:
        watchlist.remove(others)


def wait_until_idle(client, timeout: float = 240.0) -> dict:
    """Poll /scan/status until no scan holds the lock; return the last status (hang guard only)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get("/scan/status").get_json()
        if not status["running"]:
            return status
        assert time.monotonic() < deadline, f"scan still running after {timeout} s: {status}"
        time.sleep(0.05)


class Page(HTMLParser):
    """Collect what the tests look at: elements by id, result rows and their cells."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.rows: list[dict] = []
        self.heads: list[dict] = []  # one per symbol section
        self._row: dict = {}
        self.meta: dict[str, str] = {}
        self._in_results_body = False
        self._table = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids[attributes["id"]] = attributes
        if tag == "meta" and attributes.get("name"):
            self.meta[attributes["name"]] = attributes.get("content") or ""
        if tag == "table":
            self._table = attributes.get("id")
        if tag == "tbody" and self._table == "results-table":
            self._in_results_body = True
        if self._in_results_body and tag == "tr":
            # A symbol's head line is a row of the section, not a result row.
            target = self.heads if "data-group-head" in attributes else self.rows
            target.append({"attrs": attributes, "cells": []})
            self._row = target[-1]
        if self._in_results_body and tag in ("td", "th"):
            self._cell = []
            self._row["cells"].append({"attrs": attributes, "text": ""})

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_results_body = False
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"][-1]["text"] = " ".join("".join(self._cell).split())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page(client, url: str = "/") -> Page:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return Page(response.text)


def run_cli_scan(app, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["scan", *args])
    assert result.exit_code == 0, result.output


def all_events(app, redis_client) -> list[dict]:
    """Return the event log: the first event read directly, the rest through since()."""
    events = app.extensions["optscan"].events
    first = redis_client.xrange(events.log_key, count=1)
    if not first:
        return []
    first_id, fields = first[0]
    head = {"id": first_id, "type": fields["type"], "data": json.loads(fields["data"])}
    return [head] + [{"id": e.id, "type": e.type, "data": e.data} for e in events.since(first_id)]


# -- the page ------------------------------------------------------------------------------


def test_index_without_results_has_the_stable_ids(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "No completed put scan yet" in response.text
    found = Page(response.text)
    for element in ("scan-form", "scan-button", "progress", "progress-bar", "results-table",
                    "scan-summary", "symbol-filter"):  # fmt: skip
        assert element in found.ids, element
    assert found.rows == []
    assert "hidden" in found.ids["progress"]  # no scan runs
    assert found.meta["csrf-token"]
    # A strict CSP comes later: no inline script, handler or style.
    assert "<script>" not in response.text and " onclick=" not in response.text
    assert " style=" not in response.text


def test_index_shows_results_grouped_by_symbol_with_their_quote_time(app, client) -> None:
    run_cli_scan(app, "--symbols", "AAPL")
    stored = app.extensions["optscan"].store.results("put")
    shown = page(client)
    assert sorted(r["attrs"]["data-contract"] for r in shown.rows) == sorted(
        m["contract"] for m in stored["matches"]
    )
    by_contract = {m["contract"]: m for m in stored["matches"]}
    names = [c.name for c in side_columns("put")]
    for row in shown.rows:
        m = by_contract[row["attrs"]["data-contract"]]
        cell = dict(zip(names, (c["text"] for c in row["cells"]), strict=True))
        # Fixed decimals, derived here from the stored numbers: strike/bid 2, % 1, delta 3.
        assert [cell[n] for n in ("symbol", "expiration", "dte", "strike")] == [
            "AAPL", m["expiration"], str(m["dte"]), f"{m['strike']:.2f}"
        ]  # fmt: skip
        assert cell["bid"] == f"{m['bid']:.2f}" and cell["otm_pct"] == f"{m['otm_pct']:.1f}"
        assert cell["annualized_return"] == f"{m['annualized_return']:.1f}"
        assert cell["delta"] == f"{m['delta']:.3f}" and cell["iv"] == f"{m['iv'] * 100:.1f}"
        # The wheel's dollars: the premium per contract and the cash one put ties up.
        assert cell["premium"] == f"{m['bid'] * 100:,.2f}"
        assert cell["collateral"] == f"{m['strike'] * 100:,.2f}"
        assert cell["mid"] == f"{m['mid']:.2f}" and cell["pop_otm"] == f"{m['pop_otm'] * 100:.1f}"
        strike_cell = row["cells"][names.index("strike")]
        assert strike_cell["attrs"]["class"] == "num"  # right-aligned by the stylesheet
    (head,) = shown.heads
    group = stored["symbols"]["AAPL"]
    quoted = format_et(datetime.fromisoformat(group["as_of"]))
    assert head["cells"][0]["text"].startswith(f"AAPL spot {group['spot']:,.2f} quotes {quoted}")


def test_staleness_is_judged_from_the_quote_time_not_the_scan_time(app, client, clock) -> None:
    run_cli_scan(app, "--symbols", "AAPL")
    as_of = datetime.fromisoformat(app.extensions["optscan"].store.board("put")["AAPL"]["as_of"])
    # Scanned just now, but from quotes a year old while the market is open: stale.
    assert "just now" in client.get("/").text
    assert len(page(client).heads) == 1 and "stale" in page(client).heads[0]["cells"][0]["text"]
    # The recording was captured at 16:00:01 ET on Friday 2025-08-15, just after the close.
    assert as_of == datetime(2025, 8, 15, 20, 0, 1, tzinfo=UTC)

    def head() -> str:
        return page(client).heads[0]["cells"][0]["text"]

    clock.at = as_of + timedelta(minutes=5)  # Friday evening: the closing quotes are current
    assert "stale" not in head()
    clock.at = as_of + timedelta(days=1)  # Saturday: still the last session's quotes
    assert "stale" not in head()
    clock.at = datetime(2025, 8, 18, 13, 31, tzinfo=UTC)  # Monday 09:31 ET: a new session runs
    assert "stale" in head()
    assert "badge-stale" in client.get("/").text


def test_market_closed_on_thanksgiving_names_the_next_open(make_app) -> None:
    client = make_app(CLOCK=FrozenClock(THANKSGIVING_10_ET)).test_client()
    text = client.get("/").text
    assert "Closed" in text and "next open Fri 2026-11-27 09:30 ET" in text


def test_market_open_shows_todays_close(client) -> None:
    assert "closes today at 16:00 ET" in client.get("/").text


def test_market_open_on_the_early_close_day_shows_13_00(make_app) -> None:
    text = make_app(CLOCK=FrozenClock(DAY_AFTER_10_ET)).test_client().get("/").text
    assert "closes today at 13:00 ET (early close)" in text


def test_results_partial_and_side_toggle(app, client) -> None:
    app.extensions["optscan"].positions.set("AAPL", 100, 200)
    run_cli_scan(app, "--symbols", "AAPL", "--calls")
    partial = client.get("/results?side=call", headers=FETCH)
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<section id="results"')
    assert 'data-side="call"' in partial.text
    calls = app.extensions["optscan"].store.results("call")["matches"]
    assert len(Page(partial.text).rows) == len(calls) > 0
    assert len(page(client, "/?side=put").rows) == 0  # puts were never scanned
    assert client.get("/results?side=both").status_code == 400


def test_rows_show_flags_as_labelled_badges(app) -> None:
    from optscan.web.liverows import RowRenderer

    svc = app.extensions["optscan"]
    match = perform_scan(["AAPL"], "put", True, env=svc.scan_env()).matches[0]
    flagged = {**match, "flags": ["earnings", "ex_dividend", "yahoo_iv", "wide_spread"]}
    event = {"symbol": "AAPL", "status": "ok", "count": 1, "rows": [flagged]}
    html = RowRenderer(app)("symbol-done", "1-0", event)["html"]  # no request: as in a stream
    badges = re.findall(r'<span class="badge badge-(\w+)" title="([^"]+)">([^<]+)</span>', html)
    assert [(style, text) for style, _, text in badges] == [
        ("warn", "Earnings"), ("warn", "Ex-div"), ("info", "Yahoo IV"), ("info", "Wide"),
    ]  # fmt: skip
    assert all(title for _, title, _ in badges)
    assert 'data-v="earnings ex_dividend yahoo_iv wide_spread"' in html


def test_the_results_partial_carries_the_last_scan_card(app, client) -> None:
    run_cli_scan(app, "--symbols", "AAPL")
    partial = client.get("/results?side=put", headers=FETCH).text
    template = partial.split("<template data-oob>", 1)[1].split("</template>", 1)[0]
    assert '<section id="last-scan"' in template and "Mon 2026-11-23 11:00 ET" in template
    assert "<template" not in client.get("/").text  # the full page has the card in place


def test_symbol_filter_works_without_javascript(app, client) -> None:
    run_cli_scan(app, "--symbols", "AAPL")
    assert page(client, "/?symbol=aa").rows
    assert page(client, "/?symbol=MSFT").rows == []


# -- POST /scan ----------------------------------------------------------------------------


def test_post_scan_starts_a_scan_that_completes(app, client) -> None:
    response = client.post("/scan", data={"side": "put"}, headers=FETCH)
    assert response.status_code == 202
    assert "Scan started: 1 symbol, puts." in response.text
    assert "<html" not in response.text  # a partial
    status = wait_until_idle(client)
    assert status["state"] == "idle" and status["last"]["put"]["success"] is True
    stored = app.extensions["optscan"].store.results("put")
    assert stored["last_scan"]["trigger"] == "web" and stored["matches"]
    assert status["last"]["put"]["counts"] == stored["last_scan"]["counts"]
    rows = page(client).rows
    assert [r["attrs"]["data-symbol"] for r in rows] == ["AAPL"] * len(stored["matches"])
    assert {r["attrs"]["data-contract"] for r in rows} == {m["contract"] for m in stored["matches"]}


def test_post_scan_without_javascript_answers_with_a_full_page(app, client) -> None:
    app.extensions["optscan"].positions.set("AAPL", 100, 200)
    response = client.post("/scan", data={"side": "call", "force": "on"})
    assert response.status_code == 202
    assert "<html" in response.text and "Scan started" in response.text
    wait_until_idle(client)
    assert app.extensions["optscan"].store.last("call")["success"] is True


@pytest.mark.parametrize("trigger", ["cli", "timer"])
def test_busy_answers_with_the_holder_and_its_progress(app, client, trigger: str) -> None:
    svc = app.extensions["optscan"]
    holder = new_holder(trigger, "put", svc.now())
    lock = ScanLock(svc.redis, svc.lock_key, ttl=30, holder=holder)
    assert lock.acquire()
    try:
        live = LiveScan(
            svc.events, scan_id=holder["scan_id"], trigger=trigger, side="put", clock=svc.clock
        )
        live.started(["AAPL", "MSFT", "NVDA"])
        live.progress(1, 3, "AAPL", [])
        response = client.post("/scan", data={"side": "put"}, headers=FETCH)
        status = client.get("/scan/status").get_json()
    finally:
        lock.release()
    assert response.status_code == 409
    assert f"A scan is already running (started by {trigger} since Mon 2026-11-23 11:00 ET)" in (
        response.text
    )
    assert "1 of 3 symbols, last AAPL; 0 matches so far" in response.text
    assert status["running"] is True and status["state"] == "running"
    assert status["holder"]["trigger"] == trigger
    assert status["progress"]["index"] == 1 and status["progress"]["total"] == 3
    assert svc.store.last_attempt("put") is None  # nothing else ran


def test_market_closed_offers_scan_anyway(make_app, replay: Path) -> None:
    app = make_app(
        SOURCE=f"replay:{replay}", CLOCK=FrozenClock(THANKSGIVING_10_ET), WTF_CSRF_ENABLED=False
    )
    watch_only(app, ["AAPL"])
    client = app.test_client()
    response = client.post("/scan", data={"side": "put"}, headers=FETCH)
    assert response.status_code == 409
    assert "it next opens Fri 2026-11-27 09:30 ET" in response.text
    form = Page(response.text)
    assert "Scan anyway" in response.text
    assert re.search(r'name="force" value="1"', response.text) and "data-scan-form" in response.text
    assert not form.rows
    svc = app.extensions["optscan"]
    assert svc.events.last_id() is None  # nothing announced
    assert client.get("/scan/status").get_json()["running"] is False

    forced = client.post("/scan", data={"side": "put", "force": "1"}, headers=FETCH)
    assert forced.status_code == 202
    wait_until_idle(client)
    assert svc.store.last("put")["success"] is True


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"side": "straddle"}, "The side must be put or call"),
        ({"side": "put", "force": "maybe"}, "The force option must be on or off"),
    ],
)
def test_bad_form_values_are_refused_with_400(app, client, form: dict, words: str) -> None:
    response = client.post("/scan", data=form, headers=FETCH)
    assert response.status_code == 400 and words in response.text
    assert "Traceback" not in response.text
    full = client.post("/scan", data=form)
    assert full.status_code == 400 and words in full.text and "<html" in full.text
    svc = app.extensions["optscan"]
    assert svc.events.last_id() is None and svc.store.last_attempt("put") is None


def test_csrf_refuses_a_post_without_a_token(make_app, replay: Path) -> None:
    app = make_app(SOURCE=f"replay:{replay}")  # CSRF on, as in production
    watch_only(app, ["AAPL"])
    client = app.test_client()
    refused = client.post("/scan", data={"side": "put"}, headers=FETCH)
    assert refused.status_code == 400 and "did not come from an optscan page" in refused.text
    assert client.post("/watchlist/add", data={"symbols": "IBM"}).status_code == 400
    svc = app.extensions["optscan"]
    assert "IBM" not in {e.symbol for e in svc.watchlist.entries()}
    assert svc.events.last_id() is None

    token = page(client).meta["csrf-token"]
    accepted = client.post("/scan", data={"side": "put"}, headers={**FETCH, "X-CSRFToken": token})
    assert accepted.status_code == 202
    wait_until_idle(client)
    added = client.post("/watchlist/add", data={"symbols": "IBM", "csrf_token": token})
    assert added.status_code == 303 and "IBM" in {e.symbol for e in svc.watchlist.entries()}


def test_no_active_symbol_is_a_plain_refusal(app, client) -> None:
    svc = app.extensions["optscan"]
    svc.watchlist.set_active(["AAPL"], False)
    response = client.post("/scan", data={"side": "put"}, headers=FETCH)
    assert response.status_code == 409 and "no symbol on the watchlist is active" in response.text
    assert client.get("/scan/status").get_json()["running"] is False


def test_a_failing_scan_keeps_the_previous_results_and_shows_the_failure(app, client) -> None:
    assert client.post("/scan", data={"side": "put"}, headers=FETCH).status_code == 202
    wait_until_idle(client)
    good = app.extensions["optscan"].store.results("put")
    watch_only(app, ["ZZZZ"])  # not in the replay folder
    assert client.post("/scan", data={"side": "put"}, headers=FETCH).status_code == 202
    status = wait_until_idle(client)
    assert status["last_attempt"]["put"]["success"] is False
    assert status["last"]["put"]["finished_at"] == good["last_scan"]["finished_at"]

    response = client.get("/")
    shown = Page(response.text)
    assert {r["attrs"]["data-contract"] for r in shown.rows} == {
        m["contract"] for m in good["matches"]
    }
    assert "last-failure" in shown.ids
    assert "The last put scan failed" in response.text
    assert "none of the 1 symbols could be scanned" in response.text
    assert "ZZZZ" in response.text  # the failed symbol is named
    assert app.extensions["optscan"].store.results("put")["matches"] == good["matches"]


# -- status --------------------------------------------------------------------------------


def test_status_reports_an_interrupted_scan(app, client) -> None:
    svc = app.extensions["optscan"]
    live = LiveScan(svc.events, scan_id="killed", trigger="cli", side="put", clock=svc.clock)
    live.started(["AAPL", "MSFT"])
    live.progress(1, 2, "AAPL", [])
    # No lock is held: the process that ran this scan is gone.
    status = client.get("/scan/status").get_json()
    assert status["state"] == "interrupted" and status["running"] is False
    assert status["progress"]["scan_id"] == "killed" and status["progress"]["index"] == 1
    text = client.get("/").text
    assert "was interrupted after" in text and "1 of 2 symbols" in text
    assert "hidden" in Page(text).ids["progress"]


def test_status_ignores_a_stale_snapshot_of_another_scan(app, client) -> None:
    svc = app.extensions["optscan"]
    old = LiveScan(svc.events, scan_id="old", trigger="cli", side="put", clock=svc.clock)
    old.started(["AAPL"])
    lock = ScanLock(svc.redis, svc.lock_key, ttl=30, holder=new_holder("timer", "put", svc.now()))
    assert lock.acquire()
    try:
        status = client.get("/scan/status").get_json()
    finally:
        lock.release()
    assert status["state"] == "running" and status["progress"] is None


def test_status_when_idle(client) -> None:
    status = client.get("/scan/status").get_json()
    assert status == {
        **status,
        "state": "idle",
        "running": False,
        "holder": None,
        "progress": None,
        "last": {"put": None, "call": None},
    }


# -- the page mid-scan ---------------------------------------------------------------------


def test_a_page_opened_mid_scan_shows_progress_rows_and_follows_on(app, client) -> None:
    svc = app.extensions["optscan"]
    perform_scan(["GOOG"], "put", True, env=svc.scan_env())  # an earlier scan
    holder = new_holder("cli", "put", svc.now())
    lock = ScanLock(svc.redis, svc.lock_key, ttl=30, holder=holder)
    assert lock.acquire()
    try:
        live = LiveScan(
            svc.events, scan_id=holder["scan_id"], trigger="cli", side="put", clock=svc.clock
        )
        live.started(["AAPL", "GOOG", "MSFT"])
        # This scan's first symbol is on the board, written with the scan's id.
        env = svc.scan_env()
        aapl = perform_scan(["AAPL"], "put", True, env=env, scan_id=holder["scan_id"]).matches
        assert aapl
        live.progress(1, 3, "AAPL", aapl)
        response = client.get("/")
    finally:
        lock.release()
    shown = Page(response.text)
    assert shown.ids["results"]["data-mode"] == "live"
    assert "hidden" not in shown.ids["progress"]
    assert shown.ids["progress-bar"]["value"] == "1" and shown.ids["progress-bar"]["max"] == "3"
    # Only this scan's rows: GOOG's rows from the earlier scan wait until it finishes.
    assert {r["attrs"]["data-contract"] for r in shown.rows} == {m["contract"] for m in aapl}
    assert [h["attrs"] for h in shown.heads] and len(shown.heads) == 1
    # The stream resumes right after the last event the snapshot includes.
    assert f'data-stream-url="/stream?lastEventId={live.last_event_id}"' in response.text
    assert 'http-equiv="refresh"' in response.text  # inside <noscript>: no-JS pages follow too


# -- events --------------------------------------------------------------------------------


def test_a_web_scan_publishes_its_events_in_order(app, client, redis_client) -> None:
    watch_only(app, ["AAPL", "BTC-USD", "GOOG"])
    assert client.post("/scan", data={"side": "put"}, headers=FETCH).status_code == 202
    wait_until_idle(client)
    stored = {**app.extensions["optscan"].store.results("put")}
    stored.update(app.extensions["optscan"].store.last("put"))
    log = all_events(app, redis_client)
    assert [e["type"] for e in log] == (
        ["scan-started"] + ["symbol-done", "progress"] * 3 + ["scan-finished"]
    )
    started = log[0]["data"]
    assert started["trigger"] == "web" and started["side"] == "put"
    assert started["symbols"] == ["AAPL", "BTC-USD", "GOOG"] and started["total"] == 3
    assert started["started_at"] == "2026-11-23T16:00:00+00:00"
    progress = [e["data"] for e in log if e["type"] == "progress"]
    # Symbols may finish in any order (the scan fetches concurrently); the count climbs by one.
    assert [(p["index"], p["total"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p["symbol"] for p in progress) == ["AAPL", "BTC-USD", "GOOG"]
    assert progress[-1]["matches_so_far"] == len(stored["matches"])
    # Elapsed time comes from a monotonic clock: it never goes back, whatever the machine's
    # speed; with every symbol done nothing is left to estimate. (Exact ETAs: test_live.)
    elapsed = [p["elapsed_s"] for p in progress]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert progress[-1]["eta_s"] == 0
    finished = log[-1]["data"]
    assert finished["success"] is True and finished["counts"] == stored["counts"]
    assert finished["message"] == stored["message"] and finished["failed"] == {
        "BTC-USD": stored["symbols"]["BTC-USD"]["error"]
    }

    # symbol-done names the symbol; its rows are on the board, written once, where the stream
    # reads and renders them with the page's own macro: the same markup as the page's section.
    done = {e["data"]["symbol"]: e["data"] for e in log if e["type"] == "symbol-done"}
    assert done["AAPL"]["count"] == len(stored["matches"]) and done["GOOG"]["count"] == 0
    assert "rows" not in done["AAPL"] and "html" not in done["AAPL"]
    from optscan.web.liverows import RowRenderer

    html = RowRenderer(app)("symbol-done", "1-0", done["AAPL"])["html"]
    table = client.get("/").text
    section = '<tbody class="group' + table.split('<tbody class="group', 1)[1]
    section = section.split("</tbody>", 1)[0] + "</tbody>"
    assert section.strip() == html.strip()
    assert {r["attrs"]["data-contract"] for r in Page(f"<table id='results-table'>"
            f"{html}</table>").rows} == {
        m["contract"] for m in stored["matches"]
    }  # fmt: skip
    assert app.extensions["optscan"].events.get_state()["status"] == "finished"


def test_a_failing_web_scan_publishes_scan_failed(app, client, redis_client) -> None:
    watch_only(app, ["ZZZZ"])
    assert client.post("/scan", data={"side": "put"}, headers=FETCH).status_code == 202
    wait_until_idle(client)
    log = all_events(app, redis_client)
    assert [e["type"] for e in log] == ["scan-started", "symbol-done", "progress", "scan-failed"]
    assert "none of the 1 symbols could be scanned" in log[-1]["data"]["reason"]


@pytest.mark.parametrize("trigger", [None, "timer"])
def test_flask_scan_publishes_the_same_events(app, redis_client, trigger: str | None) -> None:
    args = ["--force", "--symbols", "AAPL,GOOG"] + (["--trigger", trigger] if trigger else [])
    run_cli_scan(app, *args)
    log = all_events(app, redis_client)
    assert [e["type"] for e in log] == (
        ["scan-started"] + ["symbol-done", "progress"] * 2 + ["scan-finished"]
    )
    assert log[0]["data"]["trigger"] == (trigger or "cli")
    stored = app.extensions["optscan"].store.results("put")
    assert stored["last_scan"]["trigger"] == (trigger or "cli")
    done = next(e["data"] for e in log if e["data"].get("symbol") == "AAPL")
    assert (
        done["count"] == len(stored["matches"])
        and done["scan_id"] == (stored["symbols"]["AAPL"]["scan_id"])
    )


def test_flask_scan_refused_publishes_nothing(make_app, replay: Path, redis_client) -> None:
    app = make_app(SOURCE=f"replay:{replay}", CLOCK=FrozenClock(THANKSGIVING_10_ET))
    result = app.test_cli_runner().invoke(args=["scan", "--symbols", "AAPL"])
    assert result.exit_code == 3
    assert all_events(app, redis_client) == []


# -- downloads -----------------------------------------------------------------------------


def test_csv_and_json_downloads_equal_the_stored_results(app, client) -> None:
    missing = client.get("/results.csv?side=put")
    assert missing.status_code == 404 and missing.mimetype == "text/plain"
    assert "There are no puts results yet" in missing.text and "<html" not in missing.text
    run_cli_scan(app, "--symbols", "AAPL")
    stored = app.extensions["optscan"].store.results("put")

    as_json = client.get("/results.json?side=put")
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    assert "attachment" in as_json.headers["Content-Disposition"]
    assert json.loads(as_json.data) == stored

    as_csv = client.get("/results.csv?side=put")
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == list(MATCH_FIELDS) and len(rows) == len(stored["matches"]) > 0
    for row, match in zip(rows, stored["matches"], strict=True):
        for name in MATCH_FIELDS:
            value = match[name]
            if name == "flags":
                assert row[name].split() == value
            elif value is None:
                assert row[name] == ""
            elif isinstance(value, float):
                # Six decimals: no binary noise such as 0.29000000000000004 in the file.
                assert float(row[name]) == round(value, 6)
                assert len(row[name].partition(".")[2]) <= 6
            else:
                assert row[name] == str(value)
    assert client.get("/results.json?side=sideways").status_code == 400


# -- watchlist page ------------------------------------------------------------------------


def watchlist_rows(client) -> dict[str, dict]:
    text = client.get("/watchlist").text
    rows = re.findall(r'<tr data-symbol="([^"]+)" data-active="(true|false)"', text)
    return {symbol: {"active": active == "true"} for symbol, active in rows}


def test_watchlist_page_add_toggle_remove(make_app) -> None:
    client = make_app(WTF_CSRF_ENABLED=False).test_client()
    assert len(watchlist_rows(client)) == 26  # the seed

    added = client.post("/watchlist/add", data={"symbols": "brk.b, tsla", "note": "test note"})
    assert added.status_code == 303
    followed = client.get(added.headers["Location"])
    assert "Added: BRK.B TSLA" in followed.text and "test note" in followed.text
    assert watchlist_rows(client)["TSLA"] == {"active": True}

    assert client.post("/watchlist/deactivate", data={"symbol": "TSLA"}).status_code == 303
    assert watchlist_rows(client)["TSLA"] == {"active": False}
    assert client.post("/watchlist/activate", data={"symbol": "tsla"}).status_code == 303
    assert watchlist_rows(client)["TSLA"] == {"active": True}
    assert client.post("/watchlist/remove", data={"symbol": "TSLA"}).status_code == 303
    assert "TSLA" not in watchlist_rows(client)


@pytest.mark.parametrize(
    ("url", "form", "words"),
    [
        ("/watchlist/add", {"symbols": "IBM BAD$SYM"}, "invalid symbol"),
        ("/watchlist/add", {"symbols": "IBM", "note": "x" * 201}, "the limit is 200 characters"),
        ("/watchlist/add", {"symbols": "IBM", "note": "two\nlines"}, "one line"),
        ("/watchlist/add", {"symbols": "  "}, "Enter at least one symbol"),
        ("/watchlist/remove", {"symbol": "ZZZZ"}, "not on the watchlist: symbol ZZZZ"),
        ("/watchlist/deactivate", {"symbol": "BAD SYM"}, "invalid symbol"),
    ],
)
def test_watchlist_invalid_input_changes_nothing(make_app, url: str, form: dict, words: str):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    before = app.extensions["optscan"].watchlist.entries()
    response = client.post(url, data=form)
    assert response.status_code == 400
    assert words in response.text and "Nothing was changed." in response.text
    assert 'id="watchlist-error"' in response.text
    assert app.extensions["optscan"].watchlist.entries() == before
    if form.get("symbols", "").strip():
        assert f'value="{form["symbols"]}"' in response.text  # the input is kept for fixing


# -- errors --------------------------------------------------------------------------------


def test_errors_are_plain_words(make_app, replay: Path) -> None:
    client = make_app(WTF_CSRF_ENABLED=False).test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "There is nothing at this address." in missing.text

    dead = make_app(REDIS_URL="redis://127.0.0.1:1/0", WTF_CSRF_ENABLED=False).test_client()
    down = dead.get("/")
    assert down.status_code == 503 and "Redis is unavailable" in down.text
    assert "Traceback" not in down.text and "ConnectionError" not in down.text
    scan = dead.post("/scan", data={"side": "put", "force": "1"}, headers=FETCH)
    assert scan.status_code == 503 and "Redis is unavailable" in scan.text
    assert "<html" not in scan.text
    status = dead.get("/scan/status")
    assert status.status_code == 503 and "Redis is unavailable" in status.get_json()["error"]


def test_removing_a_symbol_from_the_watchlist_drops_its_rows(app, client) -> None:
    watch_only(app, ["AAPL", "GOOG"])
    run_cli_scan(app, "--symbols", "AAPL,GOOG")
    store = app.extensions["optscan"].store
    assert set(store.board("put")) == {"AAPL", "GOOG"}
    assert client.post("/watchlist/remove", data={"symbol": "AAPL"}).status_code == 303
    assert set(store.board("put")) == {"GOOG"}
    assert page(client).rows == [] and [h["attrs"] for h in page(client).heads]
    assert "AAPL" not in {h["cells"][0]["text"].split()[0] for h in page(client).heads}
