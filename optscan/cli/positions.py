"""`flask positions`: the shares, cost basis and cash the wheel scans follow."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from flask.cli import AppGroup

from optscan.cli import EXIT_USAGE
from optscan.core.wheel import CONTRACT_SIZE
from optscan.extensions import services
from optscan.store.positions import REFUSED, refusal

positions_group = AppGroup(
    "positions", help="Show and edit the positions (shares, cost basis) and the cash for puts."
)

T = TypeVar("T")


def _apply(change: Callable[[], T]) -> T:
    try:
        return change()
    except REFUSED as exc:
        click.echo(f"Error: {refusal(exc)}", err=True)
        sys.exit(EXIT_USAGE)


def _forget_calls(symbols: list[str]) -> None:
    """Drop call rows priced on positions that changed (best effort: Redis may be down)."""
    services().forget_call_rows(symbols)


@positions_group.command("list")
def list_command() -> None:
    """List the positions (symbol, shares, cost basis USD per share, calls covered) and cash."""
    svc = services()
    entries = svc.positions.entries()
    for p in entries:
        covers = p.shares // CONTRACT_SIZE
        click.echo(f"{p.symbol:<10} {p.shares:>10,d} shares  basis {p.cost_basis:>12,.2f}"
                   f"  covers {covers} call{'s' if covers != 1 else ''}")  # fmt: skip
    if not entries:
        click.echo("No positions.")
    cash = svc.positions.cash()
    click.echo("Cash: not set" if cash is None else f"Cash: {cash:,.2f} USD")


@positions_group.command("set")
@click.argument("symbol")
@click.argument("shares")
@click.argument("cost_basis", metavar="COST_BASIS")
def set_command(symbol: str, shares: str, cost_basis: str) -> None:
    """Set SYMBOL's SHARES (a whole number) and COST_BASIS (USD per share)."""
    position = _apply(lambda: services().positions.set(symbol, shares, cost_basis))
    _forget_calls([position.symbol])
    click.echo(f"Set: {position.symbol} {position.shares} shares at {position.cost_basis:g} USD")


@positions_group.command("remove")
@click.argument("symbols", nargs=-1, required=True)
def remove_command(symbols: tuple[str, ...]) -> None:
    """Remove the positions of SYMBOLS."""
    removed = _apply(lambda: services().positions.remove(symbols))
    _forget_calls(removed)
    click.echo(f"Removed: {' '.join(removed)}")


@positions_group.command("cash")
@click.argument("amount", required=False)
@click.option("--clear", is_flag=True, help="Forget the cash: puts are not sized.")
def cash_command(amount: str | None, clear: bool) -> None:
    """Set the cash available for cash-secured puts (USD), or show it."""
    svc = services()
    if clear and amount is not None:
        raise click.UsageError("give an AMOUNT or --clear, not both")
    if clear or amount is not None:
        set_to = _apply(lambda: svc.positions.set_cash(None if clear else amount))
        click.echo("Cash: cleared" if set_to is None else f"Cash: {set_to:,.2f} USD")
        return
    cash = svc.positions.cash()
    click.echo("Cash: not set" if cash is None else f"Cash: {cash:,.2f} USD")


@positions_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Also remove the positions the file does not list.")
def import_command(file: Path, replace: bool) -> None:
    """Set every position of a CSV FILE with the columns symbol,shares,cost_basis.

    A bad line refuses the whole file, naming its line; nothing changes.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"Error: {file} cannot be read ({exc}). Nothing was changed.", err=True)
        sys.exit(EXIT_USAGE)
    outcome = _apply(lambda: services().positions.import_csv(text, replace=replace))
    _forget_calls([p.symbol for p in outcome.positions] + outcome.removed)
    count = len(outcome.positions)
    removed = f"; removed: {' '.join(outcome.removed)}" if outcome.removed else ""
    click.echo(f"Imported: {count} position{'s' if count != 1 else ''}{removed}")
