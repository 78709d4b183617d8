"""Render result rows as HTML in Python: the page's largest part, drawn per cell.

The results table has a cell per row and column (a thousand and more on a busy page); a Jinja
macro paid its call, attribute and filter machinery per cell, which made the page several
times slower to render than the rest of it together. This one function is still the only
renderer of rows: the page's sections and the live sections (web/liverows.py) both use it
through the `group` macro of templates/scans/_rows.html.

The same rows are shown again on every page view until a scan replaces them, so the HTML is
kept per content (the rows encoded, the columns, top N and expansion) in a bounded cache:
encoding a symbol's rows costs microseconds, drawing them about a hundred times that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec
from markupsafe import Markup, escape

from optscan.core.formatting import display
from optscan.core.match import Column, Match
from optscan.web.presentation import badge, sort_value

_TEXT_KINDS = ("text", "date")
CACHE_LIMIT_BYTES = 8 << 20  # per process; a page of 500 symbols' best rows is about 2 MiB

_cache: OrderedDict[tuple[bytes, tuple[str, ...], int, bool], Markup] = OrderedDict()
_cache_lock = threading.Lock()
_cached_bytes = 0


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
    global _cached_bytes
    key = (msgspec.json.encode(matches), tuple(c.name for c in columns), top, expanded)
    with _cache_lock:
        html = _cache.get(key)
        if html is not None:
            _cache.move_to_end(key)
            return html
    html = _draw(matches, columns, top, expanded)
    size = len(html) + len(key[0])
    if size > CACHE_LIMIT_BYTES:
        return html
    with _cache_lock:
        if key not in _cache:
            _cache[key] = html
            _cached_bytes += size
            while _cached_bytes > CACHE_LIMIT_BYTES:
                old_key, old = _cache.popitem(last=False)
                _cached_bytes -= len(old) + len(old_key[0])
    return html


def cached_entries() -> int:
    """Return how many renderings the cache holds."""
    return len(_cache)


def cached_bytes() -> int:
    """Return how many bytes the cache holds (HTML and keys)."""
    return _cached_bytes


def _draw(matches: Sequence[Match], columns: Sequence[Column], top: int, expanded: bool) -> Markup:
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
