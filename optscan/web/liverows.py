"""Render a live `symbol-done` event's rows as the page's HTML, once per event in each worker.

A scan writes each symbol's rows once, to the results board, then announces the symbol; the web
worker that serves the stream reads that symbol's group from the board and renders the same
table section the page renders. No scanning process renders templates, the rows cross Redis
once, and every browser on a worker shares one rendering.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from flask import Flask

from optscan.extensions import services
from optscan.web.presentation import group_renderer, group_view

MEMO_SIZE = 256  # events kept rendered per process: a scan's symbols, replays included


class RowRenderer:
    """Replace a symbol-done event's `rows` with `html`; other events pass unchanged."""

    def __init__(self, app: Flask, size: int = MEMO_SIZE):
        self.app = app
        self.size = size
        self._render = group_renderer(app)
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.renderings = 0  # how many events this process rendered (for tests)

    def __call__(self, type: str | None, id: str | None, data: Any) -> Any:
        """Return the event data as the page's script wants it."""
        if type != "symbol-done" or not isinstance(data, dict):
            return data
        if "rows" not in data and "scan_id" not in data:  # not a scan's: nothing to render
            return data
        if id is not None:
            with self._lock:
                found = self._memo.get(id)
                if found is not None:
                    self._memo.move_to_end(id)
                    return found
        svc = services(self.app)
        group = {"symbol": "", **data, "matches": data.get("rows") or []}
        if "rows" not in data and data.get("count"):
            group = self._group(data) or group
        view = group_view(
            group,
            calendar=svc.calendar,
            now=svc.now(),
            stale_after_minutes=svc.settings.stale_after_minutes,
        )
        rendered = {k: v for k, v in data.items() if k != "rows"}
        rendered["html"] = self._render(view) if view["matches"] else ""
        self.renderings += 1
        if id is not None:
            with self._lock:
                self._memo[id] = rendered
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        return rendered

    def _group(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """Return the symbol's group on the board if this event's scan wrote it."""
        found = services(self.app).store.group(str(data.get("side")), str(data.get("symbol")))
        # A later scan may have replaced it: that scan's own events bring its rows.
        return found if found is not None and found.get("scan_id") == data.get("scan_id") else None
