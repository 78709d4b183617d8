"""Result rows drawn as HTML; sections kept by content, never served after they changed."""

from __future__ import annotations

import copy

from markupsafe import Markup

from optscan.core.match import Match, side_columns
from optscan.web import rowshtml


def _row(**changes: object) -> Match:
    row: dict = {
        "symbol": "AAPL",
        "side": "put",
        "contract": "AAPL250829P00227500",
        "expiration": "2025-08-29",
        "dte": 14,
        "strike": 227.5,
        "bid": 0.35,
        "ask": 0.36,
        "mid": 0.355,
        "annualized_return": 56.2,
        "delta": -0.142,
        "flags": ["new"],
    }
    row.update(changes)
    return row  # type: ignore[return-value]


def test_the_same_rows_draw_the_same_html() -> None:
    columns = side_columns("put")
    first = rowshtml.render_rows([_row()], columns)
    again = rowshtml.render_rows([copy.deepcopy(_row())], columns)
    assert again == first
    assert 'data-contract="AAPL250829P00227500"' in first and ">0.35<" in first


def test_changed_rows_columns_or_top_draw_anew() -> None:
    columns = side_columns("put")
    base = rowshtml.render_rows([_row(), _row(contract="B")], columns)
    assert ">0.40<" in rowshtml.render_rows([_row(bid=0.40), _row(contract="B")], columns)
    assert base.count("badge-ok") == 2
    assert (
        rowshtml.render_rows([_row(flags=[]), _row(contract="B")], columns).count("badge-ok") == 1
    )
    top = rowshtml.render_rows([_row(), _row(contract="B")], columns, top=1)
    assert "data-beyond-top hidden" in top and "data-beyond-top" not in base
    shown = rowshtml.render_rows([_row(), _row(contract="B")], columns, top=1, expanded=True)
    assert "data-beyond-top" in shown and "hidden" not in shown
    fewer = rowshtml.render_rows([_row(), _row(contract="B")], columns[:3])
    assert fewer.count("<td") + fewer.count("<th") == 2 * 3


def test_the_cache_stays_within_its_limit() -> None:
    cache = rowshtml.HtmlCache(limit_bytes=20_000)
    draws = []

    def draw(number: int) -> Markup:
        draws.append(number)
        return Markup(f"<tr><td>{number}</td></tr>" * 50)

    for number in range(200):
        assert cache.get_or_draw(b"%d" % number, lambda n=number: draw(n)).startswith("<tr>")
    assert 0 < cache.size_bytes <= 20_000 and 0 < len(cache) < 200
    cache.get_or_draw(b"199", lambda: draw(-1))  # the newest is kept
    cache.get_or_draw(b"0", lambda: draw(-2))  # the oldest was evicted
    assert draws[200:] == [-2]


def test_a_section_is_drawn_once_per_content() -> None:
    columns = side_columns("put")
    calls: list[str] = []

    def macro(view: dict) -> str:
        calls.append(view["symbol"])
        return f"<tbody>{view['symbol']} {view['count']}</tbody>"

    view = {"symbol": "AAPL", "count": 2, "columns": columns, "matches": [_row()], "stale": False}
    first = rowshtml.render_group(view, macro)
    assert rowshtml.render_group(copy.deepcopy(view), macro) == first == "<tbody>AAPL 2</tbody>"
    assert rowshtml.render_group({**view, "stale": True}, macro) == first
    assert rowshtml.render_group({**view, "count": 3}, macro) == "<tbody>AAPL 3</tbody>"
    assert calls == ["AAPL", "AAPL", "AAPL"]
