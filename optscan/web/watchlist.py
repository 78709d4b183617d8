"""Watchlist page: add, remove, activate and deactivate symbols."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import redis
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from optscan.extensions import services
from optscan.store.redisserver import RedisUnavailable
from optscan.store.watchlist import NOTE_MAX_CHARS, REFUSED, refusal

bp = Blueprint("watchlist", __name__)
log = logging.getLogger(__name__)

FLASH_SYMBOLS = 20  # symbols named in the confirmation; the rest are counted


# -- page ----------------------------------------------------------------------------------


def _unknown_symbols() -> dict[str, str]:
    # What the last scans learnt (a note in Redis); the page shows without it when Redis is down.
    try:
        return services().yahoo_memo.unknown()
    except (redis.RedisError, RedisUnavailable) as exc:
        log.warning("unknown symbols not shown: %s", exc)
        return {}


def _page(error: str | None = None, status: int = 200, form: dict | None = None):
    entries = services().watchlist.entries()
    return (
        render_template(
            "watchlist/index.html",
            entries=entries,
            active_count=sum(1 for e in entries if e.active),
            unknown=_unknown_symbols(),
            error=error,
            form=form or {},
            note_max=NOTE_MAX_CHARS,
        ),
        status,
    )


@bp.get("/watchlist")
def page():
    """List the watchlist with forms to add, remove, activate and deactivate symbols."""
    return _page()


def _change(change: Callable[[], list[str]], verb: str, form: dict | None = None):
    try:
        changed = change()
    except REFUSED as exc:
        return _page(refusal(exc), 400, form)
    # The message travels in the session cookie, which browsers drop past 4 KB.
    shown = " ".join(changed[:FLASH_SYMBOLS])
    if len(changed) > FLASH_SYMBOLS:
        shown += f" and {len(changed) - FLASH_SYMBOLS} more"
    flash(f"{verb}: {shown}" if changed else f"{verb}: nothing (no change needed)")
    # Post/redirect/get: a reload does not repeat the change.
    return redirect(url_for("watchlist.page"), code=303)


def _one_symbol() -> str:
    return request.form.get("symbol", "")


@bp.post("/watchlist/add")
def add() -> Response | tuple[str, int]:
    """Add symbols (separated by spaces or commas) with an optional note."""
    raw = request.form.get("symbols", "")
    note = request.form.get("note", "")
    symbols = [s for s in re.split(r"[\s,]+", raw) if s]
    form = {"symbols": raw, "note": note}
    if not symbols:
        return _page("Enter at least one symbol. Nothing was changed.", 400, form)
    return _change(lambda: services().watchlist.add(symbols, note=note), "Added", form)


@bp.post("/watchlist/remove")
def remove() -> Response | tuple[str, int]:
    """Remove one symbol."""
    symbol = _one_symbol()
    return _change(lambda: services().remove_symbols([symbol]), "Removed")


@bp.post("/watchlist/activate")
def activate() -> Response | tuple[str, int]:
    """Include one symbol in scans."""
    symbol = _one_symbol()
    return _change(lambda: services().watchlist.set_active([symbol], True), "Activated")


@bp.post("/watchlist/deactivate")
def deactivate() -> Response | tuple[str, int]:
    """Leave one symbol out of scans without removing it."""
    symbol = _one_symbol()
    return _change(lambda: services().watchlist.set_active([symbol], False), "Deactivated")
