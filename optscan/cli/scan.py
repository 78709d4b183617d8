"""`flask scan` and `flask record`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask.cli import with_appcontext

from optscan.cli import EXIT_BUSY, EXIT_FAILED, EXIT_MARKET_CLOSED, EXIT_OK, EXIT_REDIS
from optscan.cli.report import ProgressPrinter, format_matches
from optscan.core.match import Side, top_per_symbol
from optscan.core.rulefields import RULE_FIELDS, InvalidRule, RuleField, apply_values
from optscan.core.rules import Rules
from optscan.core.symbols import InvalidSymbol, normalize_symbols
from optscan.extensions import Services, services
from optscan.jobs.history import Recording
from optscan.jobs.scanjob import Refusal, ScanRequest, prepare
from optscan.notify.hook import Delivery
from optscan.sources.base import Unreachable

S = TypeVar("S")

_REFUSAL_EXIT = {"market_closed": EXIT_MARKET_CLOSED, "busy": EXIT_BUSY, "redis": EXIT_REDIS}


def _symbols_option(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    try:
        return normalize_symbols(s for s in raw.split(",") if s.strip())
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from exc


def _refused(refusal: Refusal, as_json: bool) -> None:
    if as_json:
        body = {"success": False, "refused": refusal.kind, "message": refusal.message}
        click.echo(json.dumps(body))
    click.echo(refusal.message, err=True)
    sys.exit(_REFUSAL_EXIT.get(refusal.kind, EXIT_FAILED))


def _rule_option(field: RuleField) -> Callable[[Any], Any]:
    """Return the option of one rule field; its value is checked by the one rule validation."""
    assert field.flag is not None
    if field.kind == "flag":
        names = f"{field.flag}/{field.off_flag}" if field.off_flag else field.flag
        off = f" ({field.off_flag}: not)" if field.off_flag else ""
        return click.option(names, field.name, default=None, help=f"{field.doc[:1].upper()}"
                            f"{field.doc[1:]}{off}, for this run.")  # fmt: skip
    metavar = "N" if field.kind == "int" else "PCT" if field.name.endswith("_pct") else "X"
    return click.option(
        field.flag, field.name, metavar=metavar, help=f"{field.doc[:1].upper()}{field.doc[1:]}."
    )


def rule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add an option for every rule field that has a flag, in the table's order."""
    for field in reversed([f for f in RULE_FIELDS if f.flag]):
        command = _rule_option(field)(command)
    return command


def rules_for_run(base: Rules, given: dict[str, Any]) -> Rules:
    """Return `base` with the rule options given, or exit 2 naming the bad ones."""
    try:
        return apply_values(base, {k: v for k, v in given.items() if v is not None})
    except InvalidRule as exc:
        raise click.UsageError(exc.text(lambda f: f.cli_name)) from None


def alert_words(alert: Delivery) -> str:
    """Wait (bounded) for the scan's alert and return how it went, in one line."""
    if not alert.wait():
        return f"Alert: no outcome within {alert.limit:g} s; not waiting for it."
    outcome = alert.outcome
    if outcome is None:
        return "Alert: nothing new to send."
    if outcome.get("ok"):
        return f"Alert sent: {outcome['count']} new match{'es' if outcome['count'] != 1 else ''}."
    return f"Alert failed: {outcome.get('reason')}"


def recording_words(recording: Recording) -> str | None:
    """Wait (bounded) for the scan's recording in the history; say only if it failed."""
    if not recording.wait():
        return f"History: not recorded within {recording.limit:g} s; not waiting for it."
    if recording.error:
        return f"History: the scan was not recorded ({recording.error})."
    return None


@click.command("scan")
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
@rule_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--trigger",
    type=click.Choice(["cli", "timer"]),
    default="cli",
    show_default=True,
    help="Who started the scan, as shown on the page (the systemd timer passes timer).",
)
@with_appcontext
def scan_command(
    force: bool,
    symbols: str | None,
    calls: bool,
    min_return: float | None,
    max_delta: float | None,
    as_json: bool,
    trigger: str,
    **rule_flags: Any,
) -> None:
    """Scan for options worth selling and print the best matches of each symbol.

    Puts cover the active watchlist, sized from the cash; covered calls the symbols held with
    at least 100 shares, at strikes at or above their cost basis. The rules are the defaults
    (the environment's, then those saved on the page) changed by the options given.
    """
    wanted = _symbols_option(symbols)
    side: Side = "call" if calls else "put"
    svc = services()
    rules = rules_for_run(svc.defaults().rules, rule_flags).overridden(
        side, min_return_pct=min_return, max_delta=max_delta
    )
    request = ScanRequest(side, force=force, trigger=trigger, symbols=wanted, rules=rules)
    job = prepare(svc, request)
    if isinstance(job, Refusal):
        _refused(job, as_json)
        return
    progress = None if as_json else ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
    result = job.run(progress)
    shown = top_per_symbol(result.matches, rules.top_n)
    if as_json:
        # Every match for scripts, unless --top asks for the best N of each symbol.
        top = rule_flags.get("top_n")
        body = result.to_dict()
        if top is not None:
            body.update(top=rules.top_n, matches=shown)
        click.echo(json.dumps(body, allow_nan=False))
    else:
        if shown:
            click.echo(format_matches(shown))
        if len(shown) < len(result.matches):
            click.echo(
                f"Showing the best {rules.top_n} of each symbol: {len(shown)} of"
                f" {len(result.matches)} matches (--top 0 shows all).",
                err=True,
            )
        for symbol, report in result.symbols.items():
            # "Yahoo could not be reached" is said once, in the scan's own line.
            if report.error and report.status != Unreachable.kind:
                click.echo(f"{symbol}: {report.status}: {report.error}", err=True)
            if report.iv_rank_note:
                click.echo(f"{symbol}: {report.iv_rank_note}", err=True)
            if report.fallback:
                click.echo(f"{symbol}: from {report.source} ({report.fallback})", err=True)
    # The scan job's log line (stderr) ends with result.message: not echoed a second time.
    if job.alert is not None:
        click.echo(alert_words(job.alert), err=True)
    if job.recording is not None and (words := recording_words(job.recording)):
        click.echo(words, err=True)
    sys.exit(EXIT_OK if result.success else EXIT_FAILED)


@click.command("record")
@click.option(
    "--source",
    "vendor",
    type=click.Choice(["yahoo", "cboe"]),
    default="yahoo",
    show_default=True,
    help="Record Yahoo's v7 answers (one per expiration) or Cboe's document (one per symbol).",
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("symbols", nargs=-1)
@with_appcontext
def record_command(directory: Path, symbols: tuple[str, ...], vendor: str) -> None:
    """Record live option chains into DIRECTORY for replay."""
    from optscan.sources.cboe import CboeSource
    from optscan.sources.record import record, record_cboe
    from optscan.sources.yahoo import YahooSource

    try:
        wanted = normalize_symbols(symbols) if symbols else None
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOLS") from exc
    svc = services()
    wanted = wanted or svc.watchlist.active_symbols()
    # Record from the configured live source of that vendor (or its compatible base URL); a
    # replay setting still records from the live vendor. Either way under the shared rate
    # limit and retry policy.
    timeout = svc.settings.fetch_timeout_seconds
    outcome: dict[str, list[Path] | str]
    if vendor == "cboe":
        cboe = _configured(svc, CboeSource) or CboeSource(
            timeout=timeout, policy=svc.fetch_policy("cboe")
        )
        outcome = record_cboe(directory, wanted, fetch_raw=cboe.fetch_raw)
    else:
        yahoo = _configured(svc, YahooSource) or YahooSource(
            svc.instance_path / "yfinance-cache", timeout=timeout, policy=svc.fetch_policy()
        )
        outcome = record(
            directory,
            wanted,
            fetch_raw=yahoo.fetch_raw,
            horizon_days=svc.defaults().rules.horizon_days,
        )
    failed = 0
    for symbol, files in outcome.items():
        if isinstance(files, str):
            failed += 1
            click.echo(f"{symbol}: {files}", err=True)
        elif vendor == "cboe":
            click.echo(f"{symbol}: {files[0]}")
        else:
            click.echo(f"{symbol}: {len(files)} expirations")
    sys.exit(EXIT_FAILED if failed == len(outcome) else EXIT_OK)


def _configured(svc: Services, kind: type[S]) -> S | None:
    """Return the configured source of a kind (alone or within a fallback), if there is one."""
    from optscan.sources.fallback import FallbackSource

    configured = svc.new_source()
    parts = configured.sources if isinstance(configured, FallbackSource) else [("", configured)]
    return next((source for _, source in parts if isinstance(source, kind)), None)
