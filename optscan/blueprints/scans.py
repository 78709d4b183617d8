"""Scans: the `flask scan` and `flask record` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import redis
from flask import Blueprint

from optscan.extensions import services
from optscan.market import NEW_YORK
from optscan.redisserver import RedisUnavailable
from optscan.scanjob import ScanBusy, run_exclusive
from optscan.textreport import ProgressPrinter, format_matches
from optscan.watchlist import InvalidSymbol, normalize_symbols

bp = Blueprint("scans", __name__, cli_group=None)

# Exit codes of `flask scan`, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MARKET_CLOSED = 3
EXIT_BUSY = 4
EXIT_REDIS = 5


def _symbols_option(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    try:
        return normalize_symbols(s for s in raw.split(",") if s.strip())
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from exc


@bp.cli.command("scan")
@click.option("--force", is_flag=True, help="Scan even when the market is closed.")
@click.option("--symbols", metavar="AAPL,MSFT", help="Scan these instead of the active watchlist.")
@click.option("--calls", is_flag=True, help="Scan covered calls instead of cash-secured puts.")
@click.option(
    "--min-return",
    type=click.FloatRange(min=0),
    metavar="PCT",
    help="Minimum annualized return in percent, for this run.",
)
@click.option(
    "--max-delta",
    type=click.FloatRange(min=0, max=1),
    metavar="D",
    help="Bound on |delta| for this run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def scan_command(
    force: bool,
    symbols: str | None,
    calls: bool,
    min_return: float | None,
    max_delta: float | None,
    as_json: bool,
) -> None:
    """Scan the watchlist for options worth selling and print the matches."""
    wanted = _symbols_option(symbols)
    side = "call" if calls else "put"
    svc = services()
    env = svc.scan_env()
    rules = env.rules.overridden(side, min_return_pct=min_return, max_delta=max_delta)
    lock = svc.scan_lock({"trigger": "cli", "started_at": svc.now().isoformat(), "side": side})
    progress = None if as_json else ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
    try:
        result = run_exclusive(
            lock,
            symbols=wanted,
            side=side,
            force=force,
            progress=progress,
            env=env,
            rules=rules,
            trigger="cli",
        )
    except ScanBusy as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BUSY)
    except (redis.RedisError, RedisUnavailable) as exc:
        click.echo(f"Redis is unavailable: {exc}", err=True)
        sys.exit(EXIT_REDIS)

    if as_json:
        click.echo(json.dumps(result.to_dict(), allow_nan=False))
    else:
        if result.matches:
            click.echo(format_matches(result.matches))
        for symbol, report in result.symbols.items():
            if report.error:
                click.echo(f"{symbol}: {report.status}: {report.error}", err=True)
        click.echo(result.message, err=True)
    if result.refused == "market_closed":
        sys.exit(EXIT_MARKET_CLOSED)
    sys.exit(EXIT_OK if result.success else EXIT_FAILED)


@bp.cli.command("record")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("symbols", nargs=-1)
def record_command(directory: Path, symbols: tuple[str, ...]) -> None:
    """Record live Yahoo option chains into DIRECTORY for replay."""
    from optscan.sources.record import record
    from optscan.sources.yahoo import YahooSource

    try:
        wanted = normalize_symbols(symbols) if symbols else None
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOLS") from exc
    svc = services()
    wanted = wanted or svc.watchlist.active_symbols()
    source = YahooSource(
        svc.instance_path / "yfinance-cache", timeout=svc.settings.fetch_timeout_seconds
    )
    outcome = record(
        directory,
        wanted,
        fetch_raw=source.fetch_raw,
        horizon_days=svc.settings.rules.horizon_days,
        as_of_date=svc.now().astimezone(NEW_YORK).date(),
    )
    failed = 0
    for symbol, files in outcome.items():
        if isinstance(files, str):
            failed += 1
            click.echo(f"{symbol}: {files}", err=True)
        else:
            click.echo(f"{symbol}: {len(files)} expirations")
    sys.exit(EXIT_FAILED if failed == len(outcome) else EXIT_OK)
