"""Watchlist: the page and the `flask watchlist` commands, with the same validation."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import click
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from optscan.extensions import services
from optscan.watchlist import NOTE_MAX_CHARS, InvalidNote, InvalidSymbol, UnknownSymbol

bp = Blueprint("watchlist", __name__, cli_group="watchlist")

_REFUSED = (InvalidSymbol, UnknownSymbol, InvalidNote)
FLASH_SYMBOLS = 20  # symbols named in the confirmation; the rest are counted


def _refusal(exc: Exception) -> str:
    """Return the plain sentence for a refused change (the CLI and the page say the same)."""
    return f"{exc.args[0] if exc.args else exc}. Nothing was changed."


# -- page ----------------------------------------------------------------------------------


def _page(error: str | None = None, status: int = 200, form: dict | None = None):
    entries = services().watchlist.entries()
    return (
        render_template(
            "watchlist/index.html",
            entries=entries,
            active_count=sum(1 for e in entries if e.active),
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
    except _REFUSED as exc:
        return _page(_refusal(exc), 400, form)
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
    return _change(lambda: services().watchlist.remove([symbol]), "Removed")


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


# -- command line --------------------------------------------------------------------------


def _apply(change: Callable[[], list[str]], verb: str) -> None:
    try:
        changed = change()
    except _REFUSED as exc:
        click.echo(f"Error: {_refusal(exc)}", err=True)
        sys.exit(2)
    click.echo(f"{verb}: {' '.join(changed)}" if changed else f"{verb}: nothing")


@bp.cli.command("list")
def list_command() -> None:
    """List the watchlist's symbols with their state and note."""
    for entry in services().watchlist.entries():
        state = "active" if entry.active else "inactive"
        click.echo(f"{entry.symbol:<10} {state:<8} {entry.note}".rstrip())


@bp.cli.command("add")
@click.argument("symbols", nargs=-1, required=True)
@click.option("--note", default="", help="A note kept with the symbols.")
def add_command(symbols: tuple[str, ...], note: str) -> None:
    """Add symbols to the watchlist (active)."""
    _apply(lambda: services().watchlist.add(symbols, note=note), "Added")


@bp.cli.command("remove")
@click.argument("symbols", nargs=-1, required=True)
def remove_command(symbols: tuple[str, ...]) -> None:
    """Remove symbols from the watchlist."""
    _apply(lambda: services().watchlist.remove(symbols), "Removed")


@bp.cli.command("activate")
@click.argument("symbols", nargs=-1, required=True)
def activate_command(symbols: tuple[str, ...]) -> None:
    """Include symbols in scans."""
    _apply(lambda: services().watchlist.set_active(symbols, True), "Activated")


@bp.cli.command("deactivate")
@click.argument("symbols", nargs=-1, required=True)
def deactivate_command(symbols: tuple[str, ...]) -> None:
    """Leave symbols out of scans without removing them."""
    _apply(lambda: services().watchlist.set_active(symbols, False), "Deactivated")
