"""`flask watchlist`: list, add, remove, activate and deactivate symbols."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask.cli import AppGroup

from optscan.cli import EXIT_USAGE
from optscan.extensions import services
from optscan.store.watchlist import REFUSED, refusal

watchlist_group = AppGroup("watchlist", help="Show and edit the watchlist.")


def _apply(change: Callable[[], list[str]], verb: str) -> None:
    try:
        changed = change()
    except REFUSED as exc:
        click.echo(f"Error: {refusal(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{verb}: {' '.join(changed)}" if changed else f"{verb}: nothing")


@watchlist_group.command("list")
def list_command() -> None:
    """List the watchlist's symbols with their state and note."""
    for entry in services().watchlist.entries():
        state = "active" if entry.active else "inactive"
        click.echo(f"{entry.symbol:<10} {state:<8} {entry.note}".rstrip())


@watchlist_group.command("add")
@click.argument("symbols", nargs=-1, required=True)
@click.option("--note", default="", help="A note kept with the symbols.")
def add_command(symbols: tuple[str, ...], note: str) -> None:
    """Add symbols to the watchlist (active)."""
    _apply(lambda: services().watchlist.add(symbols, note=note), "Added")


@watchlist_group.command("remove")
@click.argument("symbols", nargs=-1, required=True)
def remove_command(symbols: tuple[str, ...]) -> None:
    """Remove symbols from the watchlist."""
    _apply(lambda: services().remove_symbols(symbols), "Removed")


@watchlist_group.command("activate")
@click.argument("symbols", nargs=-1, required=True)
def activate_command(symbols: tuple[str, ...]) -> None:
    """Include symbols in scans."""
    _apply(lambda: services().watchlist.set_active(symbols, True), "Activated")


@watchlist_group.command("deactivate")
@click.argument("symbols", nargs=-1, required=True)
def deactivate_command(symbols: tuple[str, ...]) -> None:
    """Leave symbols out of scans without removing them."""
    _apply(lambda: services().watchlist.set_active(symbols, False), "Deactivated")
