"""The wheel on the page, through Flask's test client: positions, the rules form, best N rows."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from optscan.core.match import side_columns
from optscan.store.passwords import PasswordStore
from tests.replaydirs import build_replay_dir
from tests.test_security import PASSWORD, InlineFinder, login
from tests.test_web import FETCH, Page, page, wait_until_idle, watch_only

# Every field of the rules form, as the page posts it by default.
FORM = {
    "rules": "1", "min_dte": "1", "horizon_days": "28", "put_min_return_pct": "5",
    "put_max_delta": "0.2", "call_min_return_pct": "20", "call_max_delta": "",
    "min_open_interest": "0", "min_volume": "0", "max_spread_pct": "", "top_n": "3",
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("no_scan_left_running")


@pytest.fixture
def replay(tmp_path: Path) -> str:
    return f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}"


@pytest.fixture
def app(make_app, replay: str):
    app = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, PUT_MIN_RETURN_PCT=5)
    watch_only(app, ["AAPL"])
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def flashed(response) -> list[str]:
    return re.findall(r'<p class="alert alert-ok">([^<]*)</p>', response.text)


# -- the positions page ----------------------------------------------------------------------


def test_positions_are_edited_on_the_page(app, client) -> None:
    svc = app.extensions["optscan"]
    answer = client.post(
        "/positions/set", data={"symbol": "aapl", "shares": "200", "cost_basis": "230"}
    )
    assert answer.status_code == 303  # post/redirect/get
    shown = client.get(answer.headers["Location"])
    assert "Set: AAPL 200 shares at 230.00 USD per share" in flashed(shown)
    assert '<tr data-symbol="AAPL">' in shown.text
    assert client.post("/positions/cash", data={"cash": "50000"}).status_code == 303
    assert svc.positions.cash() == 50000.0
    assert 'value="50000.00"' in client.get("/positions").text

    refused = client.post(
        "/positions/set", data={"symbol": "MSFT", "shares": "-1", "cost_basis": "5"}
    )
    assert refused.status_code == 400
    assert "shares must be a whole number, 0 or more, got &#39;-1&#39;. Nothing was changed." in (
        refused.text
    )
    assert 'value="MSFT"' in refused.text  # what was typed stays in the form
    refused = client.post("/positions/cash", data={"cash": "-5"})
    assert refused.status_code == 400 and svc.positions.cash() == 50000.0

    bad = io.BytesIO(b"symbol,shares,cost_basis\nMSFT,100,410\nNVDA,100,zero\n")
    refused = client.post("/positions/import", data={"file": (bad, "books.csv")})
    assert refused.status_code == 400 and "line 3: cost basis must be a number" in refused.text
    assert [p.symbol for p in svc.positions.entries()] == ["AAPL"]
    good = io.BytesIO(b"symbol,shares,cost_basis\nMSFT,100,410\n")
    done = client.post("/positions/import", data={"file": (good, "books.csv"), "replace": "1"})
    assert done.status_code == 303
    assert [p.symbol for p in svc.positions.entries()] == ["MSFT"]
    assert client.post("/positions/remove", data={"symbol": "MSFT"}).status_code == 303
    assert client.post("/positions/remove", data={"symbol": "MSFT"}).status_code == 400
    assert client.post("/positions/cash", data={"cash": ""}).status_code == 303
    assert svc.positions.cash() is None
    finder = InlineFinder()
    finder.feed(client.get("/positions").text)
    assert finder.problems == []


def test_the_positions_page_is_private_with_a_password(make_app, instance_path, replay) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False)  # reading is public by default...
    client = app.test_client()
    assert client.get("/").status_code == 200
    # ...but not the books.
    page_answer = client.get("/positions", headers={"Accept": "text/html"})
    assert page_answer.status_code == 302 and "/login" in page_answer.headers["Location"]
    change = client.post("/positions/cash", data={"cash": "1"})
    assert change.status_code == 401 and app.extensions["optscan"].positions.cash() is None
    saved = client.post("/rules/default", data=FORM)
    assert saved.status_code == 401
    login(client)
    assert client.get("/positions").status_code == 200
    assert client.post("/positions/cash", data={"cash": "1"}).status_code == 303


def test_forms_need_their_csrf_token(make_app, replay) -> None:
    client = make_app(SOURCE=replay).test_client()
    refused = client.post("/positions/cash", data={"cash": "1"})
    assert refused.status_code == 400 and "nothing was done" in refused.text
    assert client.post("/rules/default", data=FORM).status_code == 400


# -- the rules form ----------------------------------------------------------------------------


def test_the_rules_form_says_the_defaults(client) -> None:
    text = client.get("/").text
    assert 'name="min_dte"' in text and 'id="save-rules"' in text
    assert re.search(r'id="rule-min-dte"[^>]*value="1"', text)
    assert "default: 1" in text and "defaults from the environment" in text
    assert 'id="reset-rules"' not in text  # nothing saved to go back from


def test_save_as_default_persists_and_drives_later_scans(app, client) -> None:
    svc = app.extensions["optscan"]
    chosen = {**FORM, "min_dte": "2", "top_n": "1", "put_max_delta": "1", "exclude_earnings": "1"}
    answer = client.post("/rules/default", data={**chosen, "side": "put"})
    assert answer.status_code == 303
    shown = client.get(answer.headers["Location"])
    assert any("Saved as the default rules" in words for words in flashed(shown))
    assert re.search(r'id="rule-min-dte"[^>]*value="2"', shown.text)
    assert "defaults saved on this page" in shown.text and 'id="reset-rules"' in shown.text
    defaults = svc.defaults().rules
    assert (defaults.min_dte, defaults.top_n, defaults.exclude_earnings) == (2, 1, True)
    # A bare CLI scan (the timer's) uses them, and is not one-off.
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert '"one_off": false' in result.stdout and "DTE 2-28" in result.stdout

    refused = client.post("/rules/default", data={**chosen, "min_dte": "40", "horizon_days": "7"})
    assert refused.status_code == 400
    assert "Max DTE (7) must be at least Min DTE (40). Nothing was changed." in refused.text
    assert re.search(r'id="rule-min-dte"[^>]*value="40"', refused.text)  # as typed
    assert svc.defaults().rules == defaults

    assert client.post("/rules/reset", data={"side": "put"}).status_code == 303
    assert svc.defaults().rules == svc.settings.rules


def test_a_scan_with_changed_rules_is_one_off_and_respects_them(app, client) -> None:
    changed = {**FORM, "side": "put", "force": "1", "min_dte": "2", "put_max_delta": "1"}
    started = client.post("/scan", data=changed, headers=FETCH)
    assert started.status_code == 202 and "with one-off rules" in started.text
    wait_until_idle(client)
    stored = app.extensions["optscan"].store.results("put")
    assert stored["matches"] and all(m["dte"] >= 2 for m in stored["matches"])
    assert stored["last_scan"]["one_off"] is True
    assert "one-off rules" in client.get("/").text

    plain = client.post("/scan", data={**FORM, "side": "put", "force": "1"}, headers=FETCH)
    assert plain.status_code == 202 and "one-off" not in plain.text
    wait_until_idle(client)

    bad = client.post("/scan", data={**FORM, "side": "put", "min_dte": "-1"}, headers=FETCH)
    assert bad.status_code == 400
    assert "Min DTE must be at least 0, got &#39;-1&#39;. The scan did not start." in bad.text
    full = client.post("/scan", data={**FORM, "side": "put", "put_max_delta": "3"})
    assert full.status_code == 400 and "<html" in full.text
    assert re.search(r'id="rule-put-max-delta"[^>]*value="3"', full.text)


# -- the table ---------------------------------------------------------------------------------


def test_best_n_per_symbol_and_show_all_without_javascript(app, client) -> None:
    started = client.post("/scan", data={**FORM, "side": "put", "force": "1", "put_max_delta": "1"})
    assert started.status_code == 202
    wait_until_idle(client)
    count = len(app.extensions["optscan"].store.results("put")["matches"])
    assert count > 3
    text = client.get("/").text
    shown = Page(text)
    visible = [r for r in shown.rows if "hidden" not in r["attrs"]]
    assert len(shown.rows) == count and len(visible) == 3
    at = [c.name for c in side_columns("put")].index("annualized_return")
    returns = [float(r["cells"][at]["attrs"]["data-v"]) for r in shown.rows]
    assert returns == sorted(returns, reverse=True)  # the best first, the rest after
    assert f"show all {count}" in text
    expanded = page(client, "/?side=put&symbol=AAPL&all=1")
    assert all("hidden" not in r["attrs"] for r in expanded.rows) and len(expanded.rows) == count
    assert "show the best 3" in client.get("/?all=1").text


def test_the_call_head_line_shows_the_holding(app, client) -> None:
    app.extensions["optscan"].positions.set("AAPL", 200, 230)
    started = client.post("/scan", data={**FORM, "side": "call", "force": "1"})
    assert started.status_code == 202
    wait_until_idle(client)
    (head,) = page(client, "/?side=call").heads
    words = head["cells"][0]["text"]
    assert "held 200 sh @ 230.00" in words and "IV " in words and "earnings 2025-10-30" in words
    text = client.get("/?side=call").text
    assert "Asg. %" in text and "Collat. $" not in text  # the side's own columns
    assert "Collat. $" in client.get("/?side=put").text
    # Removing the position removes the call rows priced on it.
    assert client.post("/positions/remove", data={"symbol": "AAPL"}).status_code == 303
    assert page(client, "/?side=call").rows == []


def test_the_head_line_shows_the_forward_and_carry_per_expiration(app, client) -> None:
    started = client.post("/scan", data={**FORM, "side": "put", "force": "1"})
    assert started.status_code == 202
    wait_until_idle(client)
    forwards = app.extensions["optscan"].store.board("put")["AAPL"]["report"]["forwards"]
    assert len(forwards) >= 2
    text = client.get("/").text
    found = re.search(r'class="group-fact group-forward" title="([^"]*)">fwd ([0-9.]+)<', text)
    assert found is not None
    title, nearest = found.group(1), found.group(2)
    first = min(forwards)
    assert nearest == f"{forwards[first]['forward']:.2f}"
    for day, entry in forwards.items():
        # Carry is stored as a fraction per year and shown as percent per year.
        assert f"{day}: {entry['forward']:.2f} (carry {entry['carry'] * 100:+.1f} %/yr" in title
