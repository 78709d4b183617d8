"""Render result rows as HTML in Python: the page's largest part, drawn per cell.

The results table has a cell per row and column (a thousand and more on a busy page); a Jinja
macro paid its call, attribute and filter machinery per cell, which made the page several
times slower to render than the rest of it together. This one function is still the only
renderer of rows: the page's sections and the live sections (web/liverows.py) both use it
through the `group` macro of templates/scans/_rows.html.

The same sections are shown again on every page view until a scan replaces them, so the page
keeps each section's HTML per content (its view, encoded) in a bounded cache: encoding a
symbol's section costs microseconds, drawing it about a hundred times that. Live sections are
drawn once per event (web/liverows.py keeps them by event id).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from markupsafe import Markup, escape

from optscan.core.formatting import display
from optscan.core.match import Column, Match
from optscan.web.presentation import badge, sort_value

_TEXT_KINDS = ("text", "date")
CACHE_LIMIT_BYTES = 8 << 20  # per process; a page of 500 symbols' best rows is about 2 MiB


class HtmlCache:
    """Rendered HTML by content: a bounded least-recently-used map from encoded inputs."""

    def __init__(self, limit_bytes: int = CACHE_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[bytes, Markup] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_draw(self, key: bytes, draw: Callable[[], Markup]) -> Markup:
        """Return the HTML drawn for `key` before, or draw and keep it."""
        with self._lock:
            html = self._entries.get(key)
            if html is not None:
                self._entries.move_to_end(key)
                return html
        html = draw()
        size = len(html) + len(key)
        if size > self.limit_bytes:
            return html
        with self._lock:
            if key not in self._entries:
                self._entries[key] = html
                self.size_bytes += size
                while self.size_bytes > self.limit_bytes:
                    old_key, old = self._entries.popitem(last=False)
                    self.size_bytes -= len(old) + len(old_key)
        return html


cache = HtmlCache()


def render_group(view: dict[str, Any], draw: Callable[[dict[str, Any]], Markup]) -> Markup:
    """Return a symbol's section as `draw` (the template's group macro) renders its view."""
    # The columns follow from the view's side: the key leaves out their long descriptions.
    key = msgspec.json.encode({k: v for k, v in view.items() if k != "columns"})
    return cache.get_or_draw(key, lambda: Markup(draw(view)))


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
