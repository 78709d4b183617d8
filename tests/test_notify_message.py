"""The pure parts of alerts and "new" rows: messages, URL lists, contract identity, flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optscan.core.newness import NEW, contract_key, contract_keys, mark_new
from optscan.notify.message import match_line, new_matches_message, page_link, probe_message
from optscan.notify.send import split_urls
from optscan.web.presentation import alert_view


def row(n: int, ret: float, **extra) -> dict:
    base = {
        "symbol": "AAPL", "side": "put", "contract": f"AAPL261218P{n:08d}",
        "expiration": "2026-12-18", "strike": 200.0 + n, "bid": 1.25, "annualized_return": ret,
        "delta": -0.1234, "flags": [],
    }  # fmt: skip
    return {**base, **extra}


def test_a_match_line_has_symbol_expiry_strike_bid_return_and_delta() -> None:
    line = match_line(row(5, 31.26))  # type: ignore[arg-type]
    assert line == "AAPL 2026-12-18 put 205.00: bid 1.25, 31.3 % annualized, delta -0.123"
    assert "bid –" in match_line(row(5, 31.26, bid=None))  # type: ignore[arg-type]


def test_the_message_lists_the_ten_best_then_how_many_more_and_the_link() -> None:
    new = [row(n, float(n)) for n in range(1, 13)]
    message = new_matches_message("put", new, "https://x.example/?side=put")  # type: ignore[arg-type]
    assert message.title == "optscan: 12 new puts"
    lines = message.body.splitlines()
    assert [line.split()[3] for line in lines[:10]] == [f"{200 + n}.00:" for n in range(12, 2, -1)]
    assert lines[10:] == ["…and 2 more.", "All results: https://x.example/?side=put"]


def test_one_new_call_without_a_link() -> None:
    message = new_matches_message("call", [row(1, 40.0, side="call")], None)  # type: ignore[list-item]
    assert message.title == "optscan: 1 new call"
    assert message.body.count("\n") == 0
    with pytest.raises(ValueError, match="at least one"):
        new_matches_message("put", [], None)


def test_links_and_the_probe() -> None:
    assert page_link(None, "put") is None
    assert page_link("https://x.example/optscan/", "call") == "https://x.example/optscan/?side=call"
    assert probe_message(None).title == "optscan: test message"


@pytest.mark.parametrize(
    ("raw", "urls"),
    [
        ("json://a/x", ["json://a/x"]),
        ("json://a/x, ntfy://ntfy.sh/t  tgram://1:ab/2", ["json://a/x", "ntfy://ntfy.sh/t", "tgram://1:ab/2"]),
        # Commas inside a URL (several e-mail recipients) do not split it.
        ("mailtos://u:p@x.example?to=a@x.example,b@y.example", ["mailtos://u:p@x.example?to=a@x.example,b@y.example"]),
        (" , json://a/x ,\n", ["json://a/x"]),
    ],
)  # fmt: skip
def test_url_lists_split_only_where_a_new_url_starts(raw: str, urls: list[str]) -> None:
    assert split_urls(raw) == urls


def test_new_rows_are_those_not_among_the_previous_contracts() -> None:
    rows = [row(1, 10.0), row(2, 20.0, flags=["earnings"]), row(3, 30.0, contract=None)]
    assert mark_new(rows, None) == rows  # a symbol's first scan: nothing is new
    marked = mark_new(rows, [rows[0]["contract"]])  # type: ignore[arg-type]
    assert [m["flags"] for m in marked] == [[], [NEW, "earnings"], [NEW]]
    assert rows[1]["flags"] == ["earnings"]  # the input rows are left as they were
    assert contract_key(rows[2]) == "AAPL put 2026-12-18 203"  # type: ignore[arg-type]
    assert contract_keys(rows + rows) == sorted(contract_key(r) for r in rows)  # type: ignore[arg-type]
    # Never flagged twice.
    assert [m["flags"] for m in mark_new(marked, [])] == [[NEW], [NEW, "earnings"], [NEW]]


def test_the_alert_status_names_the_failure_and_the_last_sent() -> None:
    now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    sent = {"ok": True, "count": 3, "side": "put", "at": (now - timedelta(minutes=5)).isoformat()}
    failed = {"ok": False, "reason": "error=500", "side": "put", "at": now.isoformat()}
    view = alert_view(failed, sent, now)
    assert view["failed"]["reason"] == "error=500" and view["sent"]["age"] == "5 minutes ago"
    assert alert_view(sent, sent, now)["failed"] is None
    assert alert_view(None, None, now) == {"failed": None, "sent": None}
