"""OPTSCAN_SOURCE=yahoo,cboe and cboe,yahoo: per symbol, the next source serves when one cannot.

Both vendors are local servers: the Yahoo emulator serving the AAPL recordings of Aug-Oct 2025,
and the Cboe emulator serving one Cboe document made of the same contracts
(tests/replaydirs.cboe_body_from_v7), so that either vendor can serve any expiration a scan
asks for. Faults injected into one vendor make the scan move to the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cboe_emulator import OPTIONS_PREFIX as CBOE_PREFIX
from tests.cboe_emulator import CboeEmulator
from tests.replaydirs import build_cboe_dir, build_replay_dir, cboe_body_from_v7
from tests.yahoo_emulator import DATED, OPTIONS_PREFIX, YahooEmulator

pytestmark = pytest.mark.slow

# Fail fast: one try per request, a breaker that gives up without pausing.
QUICK = {"YAHOO_MAX_RETRIES": 0, "YAHOO_BREAKER_PAUSE_SECONDS": 0, "PUT_MIN_RETURN_PCT": 5}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    yahoo = build_replay_dir(tmp_path_factory.mktemp("yahoo"), "aapl")
    body = cboe_body_from_v7(yahoo, "AAPL", "2025-08-15.json")
    return yahoo, build_cboe_dir(tmp_path_factory.mktemp("cboe"), body=body)


@pytest.fixture
def servers(roots: tuple[Path, Path]) -> Iterator[tuple[YahooEmulator, CboeEmulator]]:
    with YahooEmulator(roots[0]) as yahoo, CboeEmulator(roots[1]) as cboe:
        yield yahoo, cboe


def scan(make_app, spec: str, symbols: str = "AAPL") -> dict:
    app = make_app(SOURCE=spec, **QUICK)
    done = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", symbols, "--json"])
    assert done.exit_code in (0, 1), done.output
    return json.loads(done.stdout)


def test_yahoo_answering_429_hands_the_symbol_to_cboe(make_app, servers, roots) -> None:
    yahoo, cboe = servers
    yahoo.inject("429", path=OPTIONS_PREFIX)
    body = scan(make_app, f"yahoo:{yahoo.base_url},cboe:{cboe.base_url}")
    report = body["symbols"]["AAPL"]
    assert body["success"] and report["status"] == "ok"
    assert report["source"] == "cboe"
    assert report["fallback"].startswith("yahoo: rate_limited: Yahoo answered 429")
    assert report["vendor_iv30"] == 0.25  # the document's iv30 of 25 (percent)
    assert body["matches"] and cboe.count(f"{CBOE_PREFIX}AAPL.json") == 1
    document = json.loads((roots[1] / "AAPL" / "cboe.json").read_bytes())
    by_name = {o["option"]: o for o in document["data"]["options"]}
    for match in body["matches"]:
        raw = by_name[match["contract"]]
        assert match["vendor_delta"] == raw["delta"]
        assert match["vendor_iv"] == (raw["iv"] if raw["iv"] > 0 else None)


def test_cboe_answering_429_hands_the_symbol_to_yahoo(make_app, servers) -> None:
    yahoo, cboe = servers
    cboe.inject("429")
    body = scan(make_app, f"cboe:{cboe.base_url},yahoo:{yahoo.base_url}")
    report = body["symbols"]["AAPL"]
    assert body["success"] and report["source"] == "yahoo"
    assert report["fallback"] == "cboe: rate_limited: Cboe answered 429 Too Many Requests"
    assert body["matches"] and all(m["vendor_delta"] is None for m in body["matches"])
    assert yahoo.count(f"{OPTIONS_PREFIX}AAPL", date=None) == 1


def test_a_yahoo_that_starts_refusing_half_way_leaves_the_rest_to_cboe(make_app, servers) -> None:
    yahoo, cboe = servers
    yahoo.inject("429", path=OPTIONS_PREFIX, date=DATED)  # the first answer goes through
    body = scan(make_app, f"yahoo:{yahoo.base_url},cboe:{cboe.base_url}")
    report = body["symbols"]["AAPL"]
    assert report["status"] == "ok" and report["source"] == "yahoo, cboe"
    assert report["fallback"].startswith("yahoo: rate_limited")
    # Each expiration was asked of Yahoo at most once (those under way together all failed),
    # then of Cboe, whose one document served them all.
    dated = [hit.date for hit in yahoo.hits if hit.date is not None]
    assert dated and len(dated) == len(set(dated)) <= len(report["expirations"])
    assert cboe.count(f"{CBOE_PREFIX}AAPL.json") == 1
    assert report["expirations"] and body["matches"]


def test_when_every_source_fails_the_symbol_fails_naming_each(make_app, servers) -> None:
    yahoo, cboe = servers
    yahoo.inject("429", path=OPTIONS_PREFIX)
    cboe.inject("500")
    body = scan(make_app, f"yahoo:{yahoo.base_url},cboe:{cboe.base_url}")
    report = body["symbols"]["AAPL"]
    assert not body["success"] and report["status"] == "error"
    assert "yahoo: rate_limited" in report["error"] and "cboe: error" in report["error"]
    assert "source" not in report or report["source"] is None


def test_an_unknown_symbol_is_an_answer_not_a_reason_to_ask_cboe(make_app, servers) -> None:
    yahoo, cboe = servers
    body = scan(make_app, f"yahoo:{yahoo.base_url},cboe:{cboe.base_url}", symbols="ZZZZ")
    assert body["symbols"]["ZZZZ"]["status"] == "unknown_symbol"
    assert cboe.count() == 0


def test_the_page_and_the_terminal_name_the_source_and_the_fallback(make_app, servers) -> None:
    yahoo, cboe = servers
    yahoo.inject("429", path=OPTIONS_PREFIX)
    app = make_app(SOURCE=f"yahoo:{yahoo.base_url},cboe:{cboe.base_url}", **QUICK)
    done = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "AAPL"])
    assert done.exit_code == 0, done.output
    assert "AAPL: from cboe (yahoo: rate_limited: Yahoo answered 429" in done.stderr
    text = app.test_client().get("/").text
    assert 'data-source="cboe">from Cboe</span>' in text
    assert 'title="yahoo: rate_limited: Yahoo answered 429' in text and "data-fallback" in text


def test_the_pipeline_prices_either_vendors_chain_alike(make_app, servers) -> None:
    """The same contracts and quote through Yahoo and through Cboe give the same figures."""
    yahoo, cboe = servers
    through_yahoo = scan(make_app, f"yahoo:{yahoo.base_url}")
    through_cboe = scan(make_app, f"cboe:{cboe.base_url}")
    # 2025-08-22 was recorded with the quote the Cboe document carries (2025-08-15's).
    day = "2025-08-22"

    def rows(body: dict) -> dict[str, dict]:
        return {m["contract"]: m for m in body["matches"] if m["expiration"] == day}

    a, b = rows(through_yahoo), rows(through_cboe)
    assert a and a.keys() == b.keys()
    assert through_yahoo["symbols"]["AAPL"]["forwards"][day]["source"] == "market"
    for name, m in a.items():
        for field in ("iv", "delta", "pop_otm", "forward", "annualized_return", "dte"):
            assert math.isclose(m[field], b[name][field], rel_tol=1e-12), (name, field)
