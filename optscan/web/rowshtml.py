"""Render result rows as HTML in Python: the page's largest part, drawn per cell.

The results table has a cell per row and column (a thousand and more on a busy page); a Jinja
macro paid its call, attribute and filter machinery per cell, which made the page several
times slower to render than the rest of it together. This one function is still the only
renderer of rows: the page's sections and the live sections (web/liverows.py) both use it
through the `group` macro of templates/scans/_rows.html.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from optscan.core.formatting import display
from optscan.core.match import Column, Match
from optscan.web.presentation import badge, sort_value

_TEXT_KINDS = ("text", "date")


def _cell(column: Column, value: Any) -> str:
    if column.name == "symbol":
        text = escape(value)
        return f'<th scope="row" class="col-text" data-v="{text}">{text}</th>'
    if column.kind == "flags":
        flags = value or []
        badges = "".join(badge(flag) for flag in flags)
        return f'<td class="col-flags" data-v="{escape(" ".join(flags))}">{badges}</td>'
    if column.kind in _TEXT_KINDS or not isinstance(value, int | float | None):
        shown = escape(display(value, column.kind))
        return f'<td class="col-text" data-v="{escape(sort_value(value))}">{shown}</td>'
    # A number shows as digits, signs, separators and a dash: nothing to escape.
    return f'<td class="num" data-v="{sort_value(value)}">{display(value, column.kind)}</td>'


def render_rows(
    matches: Sequence[Match], columns: Sequence[Column], top: int = 0, expanded: bool = False
) -> Markup:
    """Return the rows' <tr> elements; rows past `top` are marked, and hidden unless expanded."""
    parts = []
    for number, match in enumerate(matches, 1):
        beyond = bool(top) and number > top
        extra = (" data-beyond-top" + ("" if expanded else " hidden")) if beyond else ""
        symbol, contract = escape(match.get("symbol")), escape(match.get("contract"))
        cells = "\n  ".join(_cell(column, match.get(column.name)) for column in columns)
        parts.append(
            f'\n<tr data-symbol="{symbol}" data-contract="{contract}"{extra}>\n  {cells}\n</tr>'
        )
    return Markup("".join(parts))
