"""Scans: the page, the scan endpoint, status and downloads; `flask scan` and `flask record`."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    get_template_attribute,
    jsonify,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from optscan.extensions import Services, services
from optscan.live import LiveScan, RenderRows
from optscan.market import NEW_YORK, MarketStatus, format_et
from optscan.redisserver import RedisUnavailable
from optscan.results import is_stale
from optscan.rules import SIDES, Side
from optscan.scanner import MATCH_FIELDS, OK_STATUSES
from optscan.textreport import ProgressPrinter, format_matches
from optscan.watchlist import InvalidSymbol, normalize_symbols
from optscan.webscan import (
    ScanBusy,
    ScanOutcome,
    ScanState,
    current_scan,
    describe_busy,
    new_holder,
    run_live_exclusive,
    start_scan,
)

bp = Blueprint("scans", __name__, cli_group=None)

# Exit codes of `flask scan`, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MARKET_CLOSED = 3
EXIT_BUSY = 4
EXIT_REDIS = 5

SIDE_WORDS = {"put": "puts", "call": "calls"}
_TRUE = frozenset({"1", "true", "on", "yes", "y"})
_FALSE = frozenset({"", "0", "false", "off", "no", "n"})

# The results table, in one place for the header, the rows and the CSV: (header, field,
# kind, title). Kinds: text, int, count (thousands separators), money (2 decimals), pct
# (a percent, 1 decimal), delta (3 decimals), iv (a fraction shown as a percent), flags.
RESULT_COLUMNS: tuple[dict[str, str], ...] = tuple(
    {"label": label, "field": field, "kind": kind, "title": title}
    for label, field, kind, title in (
        ("Symbol", "symbol", "text", "Underlying symbol"),
        ("Expiry", "expiration", "text", "Expiration date"),
        ("DTE", "dte", "int", "Calendar days to expiration (New York dates)"),
        ("Strike", "strike", "money", "Strike price, USD"),
        ("Bid", "bid", "money", "Bid, USD per share"),
        ("Ask", "ask", "money", "Ask, USD per share"),
        ("% OTM", "otm_pct", "pct", "How far out of the money, percent of the spot price"),
        ("Ann. %", "annualized_return", "pct", "Annualized return: bid / strike x 365 / DTE"),
        ("Delta", "delta", "delta", "Black-Scholes-Merton delta from the IV solved at mid"),
        ("IV %", "iv", "iv", "Implied volatility solved from the mid price, percent"),
        ("OI", "open_interest", "count", "Open interest, contracts"),
        ("Volume", "volume", "count", "Volume today, contracts"),
        ("Break-even", "breakeven", "money", "Break-even price: strike -/+ bid, USD"),
        ("Flags", "flags", "flags", "Warnings about this contract"),
    )
)

FLAG_INFO: dict[str, tuple[str, str, str]] = {
    # flag: (badge text, explanation, style)
    "earnings": ("Earnings", "An earnings date falls before expiration", "warn"),
    "ex_dividend": ("Ex-div", "An ex-dividend date falls before expiration", "warn"),
    "yahoo_iv": (
        "Yahoo IV",
        "No two-sided quote: Yahoo's own implied volatility was used",
        "info",
    ),
    "wide_spread": ("Wide", "The bid-ask spread is wide compared with the mid price", "info"),
    "no_ask": ("No ask", "No ask is quoted", "info"),
    "no_bid": ("No bid", "No bid is quoted", "bad"),
    "crossed": ("Crossed", "The bid is above the ask", "bad"),
    "expired": ("Expired", "The contract has expired", "bad"),
    "iv_out_of_range": ("IV?", "The implied volatility is outside 1%-500%", "bad"),
}


# -- template helpers ----------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@bp.app_template_filter("cell")
def cell_filter(value: Any, kind: str) -> str:
    """Format one results cell: fixed decimals, a dash when there is no value."""
    if _is_blank(value):
        return "\N{EN DASH}"
    if kind == "int":
        return f"{int(value):d}"
    if kind == "count":
        return f"{int(value):,d}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "pct":
        return f"{value:.1f}"
    if kind == "delta":
        return f"{value:.3f}"
    if kind == "iv":
        return f"{value * 100:.1f}"
    return str(value)


@bp.app_template_filter("sort_value")
def sort_value_filter(value: Any) -> str:
    """Return the raw value a column sorts by (empty when there is none)."""
    return "" if _is_blank(value) else str(value)


@bp.app_template_filter("by_symbol_return")
def by_symbol_return(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order matches by symbol, then best annualized return first."""
    return sorted(matches, key=lambda m: (m["symbol"], -(m.get("annualized_return") or 0.0)))


@bp.app_template_global("flag_info")
def flag_info(flag: str) -> tuple[str, str, str]:
    """Return a flag's badge text, explanation and style."""
    return FLAG_INFO.get(flag, (flag.replace("_", " "), flag.replace("_", " "), "info"))


bp.add_app_template_global(RESULT_COLUMNS, "result_columns")


def rows_renderer(app: Flask) -> RenderRows:
    """Return a function that renders matches with the page's row macro, from any thread."""

    def render(matches: list[dict[str, Any]]) -> str:
        with app.app_context():
            return str(get_template_attribute("scans/_rows.html", "rows")(matches))

    return render


# -- request parsing -----------------------------------------------------------------------


def _side_value(raw: str | None, *, default: Side = "put") -> Side:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in SIDES:
        abort(400, description=f"The side must be put or call, not {raw[:20]!r}.")
    return value  # type: ignore[return-value]


def _force_value(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    abort(400, description=f"The force option must be on or off (1 or 0), not {raw[:20]!r}.")


def _wants_partial() -> bool:
    """Return whether the page's script sent the request (it shows a partial in place)."""
    return request.headers.get("X-Requested-With") == "fetch"


# -- page context --------------------------------------------------------------------------


def _age_words(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        tail = f" {rest} min" if rest and hours < 6 else ""
        return f"{hours} hour{'s' if hours != 1 else ''}{tail} ago"
    days = hours // 24
    return f"{days} days ago"


def market_words(status: MarketStatus) -> dict[str, Any]:
    """Return the market status in words: open until when, or closed until when (ET)."""
    if status.is_open and status.session_close is not None:
        close = f"{status.session_close:%H:%M} ET"
        detail = f"closes today at {close}" + (" (early close)" if status.early_close else "")
        return {"open": True, "label": "Open", "detail": detail}
    return {
        "open": False,
        "label": "Closed",
        "detail": f"next open {format_et(status.next_open)}",
    }


def _result_view(result: dict[str, Any] | None, svc: Services, now: datetime) -> dict | None:
    if result is None:
        return None
    finished = datetime.fromisoformat(result["finished_at"])
    failed = {
        symbol: report.get("error") or report.get("status")
        for symbol, report in (result.get("symbols") or {}).items()
        if report.get("status") not in OK_STATUSES
    }
    as_of = result.get("as_of")
    return {
        "finished_at": format_et(finished),
        "finished_iso": finished.isoformat(),
        "age": _age_words(now - finished),
        "stale": is_stale(result, now, svc.settings.stale_after_minutes),
        "message": result.get("message", ""),
        "success": bool(result.get("success")),
        "trigger": result.get("trigger"),
        "counts": result.get("counts") or {},
        "as_of": format_et(datetime.fromisoformat(as_of)) if as_of else None,
        "rules": result.get("rules"),
        "failed": failed,
    }


def _progress_view(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    if not snapshot:
        return None
    index, total = snapshot.get("index") or 0, snapshot.get("total") or 0
    started = snapshot.get("started_at")
    return {
        "index": index,
        "total": total,
        "symbol": snapshot.get("symbol"),
        "matches_so_far": snapshot.get("matches_so_far") or 0,
        "eta_s": snapshot.get("eta_s"),
        "side": snapshot.get("side"),
        "trigger": snapshot.get("trigger"),
        "started_at": format_et(datetime.fromisoformat(started)) if started else None,
        "scan_id": snapshot.get("scan_id"),
    }


def progress_words(progress: dict[str, Any] | None) -> str:
    """Return a scan's progress as one sentence."""
    if not progress or not progress["total"]:
        return "Starting…"
    words = f"{progress['index']} of {progress['total']} symbols"
    if progress["symbol"]:
        words += f", last {progress['symbol']}"
    words += f"; {progress['matches_so_far']} matches so far"
    if progress["eta_s"] is not None and progress["index"] < progress["total"]:
        words += f"; about {math.ceil(progress['eta_s'])} s left"
    return words + "."


bp.add_app_template_global(progress_words, "progress_words")


def _results_context(svc: Services, side: Side | None, scan: ScanState, symbol: str) -> dict:
    now = svc.now()
    live_snapshot = scan.snapshot if scan.running else None
    if side is None:
        side = (live_snapshot or {}).get("side") or "put"
    live = live_snapshot is not None and live_snapshot.get("side") == side
    last = svc.store.last(side)
    attempt = svc.store.last_attempt(side)
    # Every scan overwrites the attempt; an unsuccessful one is newer than the last good one.
    failure = _result_view(attempt, svc, now) if attempt and not attempt.get("success") else None
    matches = (live_snapshot or {}).get("rows", []) if live else (last or {}).get("matches", [])
    shown = [m for m in matches if m["symbol"].startswith(symbol)] if symbol else matches
    return {
        "side": side,
        "side_words": SIDE_WORDS[side],
        "live": live,
        "scan_id": (live_snapshot or {}).get("scan_id") if live else None,
        "last": _result_view(last, svc, now),
        "failure": failure,
        "matches": matches,
        "shown": shown,
        "symbol_filter": symbol,
    }


def _page_context(side: Side | None, symbol: str = "") -> dict[str, Any]:
    svc = services()
    # The newest event id is read BEFORE the snapshot: an event published in between is then
    # replayed to the page by the stream, never lost.
    last_event_id = svc.events.last_id()
    scan = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
    if scan.running and scan.snapshot and scan.snapshot.get("last_event_id"):
        last_event_id = scan.snapshot["last_event_id"]
    stream_url = request.script_root + "/stream"
    if last_event_id:
        stream_url += f"?lastEventId={last_event_id}"
    context = _results_context(svc, side, scan, symbol)
    return {
        **context,
        "market": market_words(svc.calendar.status(svc.now())),
        "scan": scan,
        "holder": scan.holder,
        "busy_words": describe_busy(scan.holder) if scan.holder is not None else None,
        "progress": _progress_view(scan.snapshot),
        "stream_url": stream_url,
    }


# -- web routes ----------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    """Show the market, the scan form, the progress of a running scan and the last results."""
    raw_side = request.args.get("side")
    side = _side_value(raw_side) if raw_side else None
    symbol = request.args.get("symbol", "").strip().upper()[:10]
    return render_template("scans/index.html", **_page_context(side, symbol))


@bp.get("/results")
def results_partial() -> str:
    """Return the results section alone, for the page's script to swap in."""
    side = _side_value(request.args.get("side"))
    svc = services()
    scan = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
    symbol = request.args.get("symbol", "").strip().upper()[:10]
    return render_template(
        "scans/_results.html", partial=True, **_results_context(svc, side, scan, symbol)
    )


_OUTCOME_STATUS = {"started": 202, "busy": 409, "market_closed": 409}
_ERROR_STATUS = {"redis": 503, "no_symbols": 409}


@bp.post("/scan")
def scan() -> tuple[str, int]:
    """Start a scan in the background and say at once how that went."""
    side = _side_value(request.form.get("side"))
    force = _force_value(request.form.get("force"))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    svc = services()
    client = request.remote_addr or "unknown"
    if svc.scan_triggers.exceeded(client):
        limits = svc.settings
        abort(
            429,
            description=(
                f"This address started {limits.scan_trigger_limit} scans in the last"
                f" {limits.scan_trigger_window_seconds // 60} minutes; try again in"
                f" {svc.scan_triggers.retry_after(client)} s."
            ),
        )
    outcome = start_scan(svc, rows_renderer(app), side=side, force=force)
    if outcome.kind == "started":
        svc.scan_triggers.record(client)
    status = _OUTCOME_STATUS.get(outcome.kind) or _ERROR_STATUS.get(outcome.reason or "", 500)
    view = _outcome_context(outcome)
    if _wants_partial():
        return render_template("scans/_outcome.html", **view), status
    return render_template("scans/index.html", **_page_context(side), **view), status


def _outcome_context(outcome: ScanOutcome) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "outcome_progress": _progress_view(outcome.snapshot),
        "outcome_next_open": format_et(outcome.next_open) if outcome.next_open else None,
        "outcome_side_words": SIDE_WORDS[outcome.side],
    }


def _summary(result: dict[str, Any] | None, svc: Services, now: datetime) -> dict | None:
    if result is None:
        return None
    finished = datetime.fromisoformat(result["finished_at"])
    return {
        "success": bool(result.get("success")),
        "message": result.get("message"),
        "trigger": result.get("trigger"),
        "finished_at": result["finished_at"],
        "age_s": round((now - finished).total_seconds(), 1),
        "stale": is_stale(result, now, svc.settings.stale_after_minutes),
        "counts": result.get("counts"),
    }


@bp.get("/scan/status")
def scan_status() -> Response:
    """Return the current scan state as JSON; "interrupted" is a snapshot left without a lock."""
    svc = services()
    now = svc.now()
    scan = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
    snapshot = scan.snapshot or {}
    progress = None
    if scan.snapshot is not None:
        progress = {
            key: snapshot.get(key)
            for key in (
                "scan_id", "trigger", "side", "started_at", "index", "total", "symbol",
                "matches_so_far", "elapsed_s", "eta_s", "updated_at", "last_event_id",
            )
        }  # fmt: skip
    body = {
        "state": scan.state,
        "running": scan.running,
        "holder": scan.holder,
        "progress": progress,
        "now": now.isoformat(),
        "last": {side: _summary(svc.store.last(side), svc, now) for side in SIDES},
        "last_attempt": {side: _summary(svc.store.last_attempt(side), svc, now) for side in SIDES},
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _download_name(result: dict[str, Any], side: Side, ext: str) -> str:
    finished = datetime.fromisoformat(result["finished_at"]).astimezone(NEW_YORK)
    return f"optscan-{SIDE_WORDS[side]}-{finished:%Y%m%d-%H%M}.{ext}"


def _last_or_404(side: Side) -> dict[str, Any]:
    result = services().store.last(side)
    if result is None:
        abort(404, description=f"There are no {SIDE_WORDS[side]} results yet: run a scan first.")
    return result


@bp.get("/results.json")
def results_json() -> Response:
    """Download the last completed scan of a side as JSON, exactly as stored."""
    side = _side_value(request.args.get("side"))
    result = _last_or_404(side)
    response = Response(json.dumps(result, allow_nan=False), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_download_name(result, side, "json")}"'
    )
    return response


@bp.get("/results.csv")
def results_csv() -> Response:
    """Download the matches of the last completed scan of a side as CSV."""
    side = _side_value(request.args.get("side"))
    result = _last_or_404(side)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MATCH_FIELDS)
    for match in result.get("matches", []):
        row = []
        for name in MATCH_FIELDS:
            value = match.get(name)
            if name == "flags":
                value = " ".join(value or [])
            row.append("" if value is None else value)
        writer.writerow(row)
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_download_name(result, side, "csv")}"'
    )
    return response


@bp.app_template_global("results_download_url")
def results_download_url(side: str, ext: str) -> str:
    """Return the download URL of a side's last results."""
    endpoint = "scans.results_csv" if ext == "csv" else "scans.results_json"
    return url_for(endpoint, side=side)


@bp.app_template_global("badge")
def badge(flag: str) -> Markup:
    """Return one flag as a small labelled badge."""
    text, title, style = flag_info(flag)
    return Markup('<span class="badge badge-{}" title="{}">{}</span>').format(style, title, text)


# -- command line --------------------------------------------------------------------------


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
@click.option(
    "--trigger",
    type=click.Choice(["cli", "timer"]),
    default="cli",
    show_default=True,
    help="Who started the scan, as shown on the page (the systemd timer passes timer).",
)
def scan_command(
    force: bool,
    symbols: str | None,
    calls: bool,
    min_return: float | None,
    max_delta: float | None,
    as_json: bool,
    trigger: str,
) -> None:
    """Scan the watchlist for options worth selling and print the matches."""
    wanted = _symbols_option(symbols)
    side: Side = "call" if calls else "put"
    svc = services()
    env = svc.scan_env()
    rules = env.rules.overridden(side, min_return_pct=min_return, max_delta=max_delta)
    holder = new_holder(trigger, side, svc.now())
    lock = svc.scan_lock(holder)
    progress = None if as_json else ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def make_live() -> LiveScan:
        return LiveScan(
            svc.events,
            rows_renderer(app),
            scan_id=holder["scan_id"],
            trigger=trigger,
            side=side,
            clock=svc.clock,
        )

    try:
        result = run_live_exclusive(
            lock,
            make_live,
            symbols=wanted,
            side=side,
            force=force,
            env=env,
            rules=rules,
            trigger=trigger,
            progress=progress,
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
    # Record from the configured Yahoo (or a compatible base URL); a replay setting still
    # records from live Yahoo. Either way under the shared rate limit and retry policy.
    configured = svc.new_source()
    source = (
        configured
        if isinstance(configured, YahooSource)
        else YahooSource(
            svc.instance_path / "yfinance-cache",
            timeout=svc.settings.fetch_timeout_seconds,
            policy=svc.fetch_policy(),
        )
    )
    outcome = record(
        directory,
        wanted,
        fetch_raw=source.fetch_raw,
        horizon_days=svc.settings.rules.horizon_days,
    )
    failed = 0
    for symbol, files in outcome.items():
        if isinstance(files, str):
            failed += 1
            click.echo(f"{symbol}: {files}", err=True)
        else:
            click.echo(f"{symbol}: {len(files)} expirations")
    sys.exit(EXIT_FAILED if failed == len(outcome) else EXIT_OK)
