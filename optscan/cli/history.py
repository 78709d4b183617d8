"""`flask history`: a symbol's recorded scans, the history's size, and pruning."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

import click
from flask.cli import with_appcontext

from optscan.cli import EXIT_USAGE
from optscan.core.formatting import display
from optscan.core.ivrank import rank_words
from optscan.core.market import format_et
from optscan.core.match import Kind
from optscan.core.symbols import InvalidSymbol, normalize_symbol
from optscan.extensions import services

# The table's columns: (point key, label, kind).
TABLE: tuple[tuple[str, str, Kind], ...] = (
    ("scanned_at", "Scanned", "text"),
    ("side", "Side", "text"),
    ("spot", "Spot", "money"),
    ("nearest_atm_iv", "ATM IV %", "fraction"),
    ("iv30", "IV30 %", "fraction"),
    ("vendor_iv30", "Vendor IV30 %", "fraction"),
    ("matches", "Matches", "count"),
    ("best_return", "Best ann. %", "percent"),
)


def _table(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        shown = {
            **p,
            "scanned_at": format_et(datetime.fromisoformat(p["scanned_at"])),
            "nearest_atm_iv": next(iter(p["atm_iv"].values()), None),
        }
        rows.append([display(shown.get(key), kind, blank="-") for key, _, kind in TABLE])
    headers = [label for _, label, _ in TABLE]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if TABLE[i][2] == "text" else c.rjust(widths[i])
            for i, c in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _mb(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


@click.command("history")
@click.argument("symbol", required=False)
@click.option("--days", type=click.IntRange(min=1), metavar="N", help="Only the last N days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--stats", is_flag=True, help="Show how big the history is.")
@click.option("--prune", is_flag=True, help="Delete what the retention lets go, now.")
@with_appcontext
def history_command(
    symbol: str | None, days: int | None, as_json: bool, stats: bool, prune: bool
) -> None:
    """Show SYMBOL's recorded scans (oldest first), or the history's size (--stats)."""
    svc = services()
    history = svc.history
    if not (symbol or stats or prune):
        click.echo("Error: name a SYMBOL, or give --stats or --prune.", err=True)
        sys.exit(EXIT_USAGE)
    if prune:
        removed = history.prune()
        click.echo(f"Pruned {removed} scan rows older than {history.retention_days} days.")
    if stats:
        figures = history.stats()
        if as_json:
            click.echo(json.dumps(figures.to_dict()))
        else:
            span = (
                f"from {format_et(figures.oldest)} to {format_et(figures.newest)}"
                if figures.oldest and figures.newest
                else "empty"
            )
            click.echo(
                f"{figures.rows} scan rows, {figures.matches} matches, {figures.symbols} symbols;"
                f" {span}; {_mb(figures.bytes)} ({figures.bytes} bytes) in {figures.location};"
                f" kept {figures.retention_days} days"
            )
    if not symbol:
        return
    try:
        wanted = normalize_symbol(symbol)
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOL") from exc
    since = svc.now() - timedelta(days=days) if days else None
    points = history.points(wanted, since=since)
    if as_json:
        click.echo(json.dumps(points, allow_nan=False))
        return
    if not points:
        click.echo(f"No scan of {wanted} recorded{f' in the last {days} days' if days else ''}.")
        return
    click.echo(_table(points))
    latest = history.latest_rank(wanted)
    if latest is not None:
        day, iv30, ranked = latest
        words = rank_words(ranked.rank, ranked.percentile, ranked.days)
        click.echo(f"{wanted} on {day.isoformat()}: 30-day IV {iv30 * 100:.1f}%; {words}.")
