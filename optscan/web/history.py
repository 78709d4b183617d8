"""History pages: a symbol's spot and 30-day IV over time, its recent scans, and the JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from optscan.core.ivrank import rank_words
from optscan.core.market import format_et
from optscan.core.symbols import InvalidSymbol, normalize_symbol
from optscan.extensions import Services, services

bp = Blueprint("history", __name__)

PAGE_DAYS = (30, 90, 365)  # the page's windows, besides everything kept
DEFAULT_PAGE_DAYS = 90
RECENT_SCANS = 30  # scans listed in the page's table, newest first
RECENT_WITH_MATCHES = 10  # of which these list their kept matches


def _symbol(required: bool) -> str | None:
    """Return the request's symbol, normalised; abort 400 when it is bad (or missing)."""
    raw = request.args.get("symbol", "")
    if not raw.strip():
        if required:
            abort(400, description="Name a symbol: /history.json?symbol=AAPL.")
        return None
    try:
        return normalize_symbol(raw)
    except InvalidSymbol as exc:
        abort(400, description=f"{exc}. Nothing was looked up.")


def _days(default: int | None) -> int | None:
    """Return the request's window in days (`all`: everything kept); abort 400 when it is bad."""
    raw = request.args.get("days", "").strip().lower()
    if not raw:
        return default
    if raw == "all":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 36500:
        abort(
            400,
            description=f"days must be a whole number from 1 to 36500, or all; got {raw[:20]!r}.",
        )
    return int(raw)


def _since(svc: Services, days: int | None) -> datetime | None:
    return None if days is None else svc.now() - timedelta(days=days)


@bp.get("/history.json")
def history_json() -> Response:
    """Return a symbol's recorded scans, oldest first: {symbol, points: [...]}."""
    symbol = _symbol(required=True)
    assert symbol is not None
    days = _days(None)
    svc = services()
    points = svc.history.points(symbol, since=_since(svc, days))
    body = {"symbol": symbol, "days": days, "points": points}
    response = Response(json.dumps(body, allow_nan=False), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def chart_data(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the chart's figures per point: time (epoch ms), spot, IVs in PERCENT, matches."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100.0, 4)

    return [
        {
            "t": int(datetime.fromisoformat(p["scanned_at"]).timestamp() * 1000),
            "spot": p["spot"],
            "iv30": pct(p["iv30"]),
            "vendor_iv30": pct(p["vendor_iv30"]),
            "matches": p["matches"],
        }
        for p in points
    ]


def _scan_rows(svc: Services, symbol: str) -> list[dict[str, Any]]:
    """Return the symbol's recent scans, newest first, the latest with their kept matches."""
    recent = svc.history.points(symbol, limit=RECENT_SCANS, newest_first=True)
    kept = svc.history.matches_of([p["id"] for p in recent[:RECENT_WITH_MATCHES]])
    return [
        {
            **p,
            "at": format_et(datetime.fromisoformat(p["scanned_at"])),
            "nearest_atm": next(iter(p["atm_iv"].items()), None),
            "kept": kept.get(p["id"]),
        }
        for p in recent
    ]


@bp.get("/history")
def page() -> str:
    """Show a symbol's history (chart and recent scans), or the symbols to choose from."""
    svc = services()
    symbol = _symbol(required=False)
    days = _days(DEFAULT_PAGE_DAYS)
    known = svc.history.symbols()
    context: dict[str, Any] = {
        "symbol": symbol,
        "days": days,
        "page_days": PAGE_DAYS,
        "known": [(s, n, format_et(latest)) for s, n, latest in known],
        # Counting rows reads whole tables: only on the page that lists the symbols.
        "stats": svc.history.stats() if symbol is None else None,
    }
    if symbol is not None:
        points = svc.history.points(symbol, since=_since(svc, days))
        latest = svc.history.latest_rank(symbol)
        context.update(
            chart=chart_data(points),
            count=len(points),
            scans=_scan_rows(svc, symbol),
            rank=None
            if latest is None
            else {
                "day": latest[0].isoformat(),
                "iv30": latest[1],
                "words": rank_words(latest[2].rank, latest[2].percentile, latest[2].days),
            },
        )
    return render_template("history/index.html", **context)
