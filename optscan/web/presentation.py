"""What the pages show and how: template filters, the column table, flags, and view models."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, get_template_attribute
from markupsafe import Markup

from optscan.core.formatting import display, is_blank
from optscan.core.ivrank import report_words
from optscan.core.market import MarketCalendar, MarketStatus, format_et
from optscan.core.match import by_symbol_return, side_columns
from optscan.core.models import failed_symbols
from optscan.core.wheel import CONTRACT_SIZE

FLAG_INFO: dict[str, tuple[str, str, str]] = {
    # flag: (badge text, explanation, style)
    "new": ("New", "Not among this symbol's rows in its previous scan", "ok"),
    "earnings": ("Earnings", "An earnings date falls before expiration", "warn"),
    "ex_dividend": ("Ex-div", "An ex-dividend date falls before expiration", "warn"),
    "yahoo_iv": (
        "Yahoo IV",
        "No two-sided quote: Yahoo's own implied volatility was used",
        "info",
    ),
    "cboe_iv": (
        "Cboe IV",
        "No two-sided quote: Cboe's own implied volatility was used",
        "info",
    ),
    "vendor_disagrees": (
        "Δ≠vendor",
        "Our delta differs from the source's own by more than 0.05",
        "warn",
    ),
    "wide_spread": ("Wide", "The bid-ask spread is wide compared with the mid price", "info"),
    "no_ask": ("No ask", "No ask is quoted", "info"),
    "no_bid": ("No bid", "No bid is quoted", "bad"),
    "crossed": ("Crossed", "The bid is above the ask", "bad"),
    "expired": ("Expired", "The contract has expired", "bad"),
    "iv_out_of_range": ("IV?", "The implied volatility is outside 1%-500%", "bad"),
    "over_cash": (
        "Cash short",
        "One contract needs more collateral than the cash set on the Positions page",
        "warn",
    ),
    "unowned": ("Not held", "Not held: priced as if 100 shares were bought at spot", "info"),
    "below_basis": (
        "Below basis",
        "The strike is below the cost basis: assignment would lock in a loss",
        "warn",
    ),
}


SOURCE_NAMES = {"yahoo": "Yahoo", "cboe": "Cboe"}


def source_name(source: str) -> str:
    """Return the vendors of a symbol's data as the page names them ("yahoo, cboe" -> ...)."""
    return ", ".join(SOURCE_NAMES.get(s, s) for s in source.split(", "))


def sort_value(value: Any) -> str:
    """Return the raw value a column sorts by (empty when there is none)."""
    return "" if is_blank(value) else str(value)


def flag_info(flag: str) -> tuple[str, str, str]:
    """Return a flag's badge text, explanation and style."""
    return FLAG_INFO.get(flag, (flag.replace("_", " "), flag.replace("_", " "), "info"))


def badge(flag: str) -> Markup:
    """Return one flag as a small labelled badge."""
    text, title, style = flag_info(flag)
    return Markup('<span class="badge badge-{}" title="{}">{}</span>').format(style, title, text)


def age_words(age: timedelta) -> str:
    """Return an age as "just now", "5 minutes ago", "3 hours 10 min ago" or "4 days ago"."""
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


def progress_view(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return a running scan's snapshot as the figures the progress panel shows."""
    if not snapshot:
        return None
    started = snapshot.get("started_at")
    return {
        "index": snapshot.get("index") or 0,
        "total": snapshot.get("total") or 0,
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


def result_view(result: dict[str, Any] | None, now: datetime, stale: bool) -> dict[str, Any] | None:
    """Return a stored scan result as the figures the page shows."""
    if result is None:
        return None
    finished = datetime.fromisoformat(result["finished_at"])
    as_of = result.get("as_of")
    failed = failed_symbols(result.get("symbols") or {})
    return {
        "finished_at": format_et(finished),
        "finished_iso": finished.isoformat(),
        "age": age_words(now - finished),
        "stale": stale,
        "message": result.get("message", ""),
        "success": bool(result.get("success")),
        "trigger": result.get("trigger"),
        "counts": result.get("counts") or {},
        "as_of": format_et(datetime.fromisoformat(as_of)) if as_of else None,
        "rules": result.get("rules"),
        "one_off": bool(result.get("one_off")),
        "failed": failed,
        "failed_by_reason": by_reason(failed),
    }


def by_reason(failed: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Return failed symbols grouped by their reason, the most common reason first."""
    reasons: dict[str, list[str]] = {}
    for symbol, reason in sorted(failed.items()):
        reasons.setdefault(reason, []).append(symbol)
    return sorted(reasons.items(), key=lambda item: (-len(item[1]), item[0]))


def forward_words(forwards: dict[str, dict[str, Any]] | None) -> dict[str, str] | None:
    """Return the nearest expiration's forward and a line naming every expiration's, or None."""
    if not forwards:
        return None
    days = sorted(forwards)
    parts = []
    for day in days:
        entry = forwards[day]
        carry = entry.get("carry")
        # carry is a fraction per year (continuous); shown as percent per year.
        words = f"carry {carry * 100:+.1f} %/yr" if carry is not None else "carry n/a"
        if entry.get("source") != "market":
            words += ", spot fallback"
        parts.append(f"{day}: {entry['forward']:.2f} ({words})")
    return {"nearest": f"{forwards[days[0]]['forward']:.2f}", "all": "; ".join(parts)}


def group_view(
    group: dict[str, Any],
    *,
    calendar: MarketCalendar,
    now: datetime,
    stale_after_minutes: float,
    rules_in_force: str | None = None,
    failure: dict[str, Any] | None = None,
    top: int = 0,
    expand: bool = False,
) -> dict[str, Any]:
    """Return one symbol's group (from the board or a live event) as its table section shows it.

    Its rows are best annualized return first; those past the scan's top N (`top` when the
    group does not say) are hidden unless `expand`.
    """
    as_of = group.get("as_of")
    quoted = datetime.fromisoformat(as_of) if as_of else None
    rules = group.get("rules")
    matches = group.get("matches") or group.get("rows") or []
    side = group.get("side") or (matches[0]["side"] if matches else "put")
    shown = group.get("top")
    shown = top if shown is None else int(shown)
    report = group.get("report") or {}

    def fact(name: str) -> Any:
        # Boards written before a fact was kept have it in the report, or not at all.
        return group[name] if name in group else report.get(name)

    shares = fact("shares")
    # IV figures: a live event carries them as "iv", a stored group in its report.
    iv = group.get("iv") or report
    return {
        "symbol": group["symbol"],
        "side": side,
        "columns": side_columns(side),
        "near_iv": fact("near_iv"),
        "earnings_date": fact("earnings_date"),
        "shares": shares,
        "cost_basis": fact("cost_basis"),
        "calls_covered": shares // CONTRACT_SIZE if shares else None,
        "top": shown,
        "expanded": expand,
        "hidden": 0 if expand or not shown else max(len(matches) - shown, 0),
        "one_off": bool(group.get("one_off")),
        "status": group.get("status"),
        "error": group.get("error"),
        "spot": group.get("spot"),
        "as_of": format_et(quoted) if quoted else None,
        "as_of_iso": quoted.isoformat() if quoted else "",
        "stale": quoted is not None and calendar.quotes_stale(quoted, now, stale_after_minutes),
        "count": len(matches),
        "iv30": iv.get("iv30"),
        "iv_words": report_words(iv),
        "forwards": forward_words(report.get("forwards")),
        "iv_note": iv.get("iv_rank_note"),
        "rules": rules,
        "rules_differ": bool(rules and rules_in_force and rules != rules_in_force),
        "failure": failure,
        "source": group.get("source") or report.get("source"),
        "fallback": group.get("fallback") or report.get("fallback"),
        "matches": by_symbol_return(list(matches)),
    }


def alert_view(
    last: dict[str, Any] | None, last_sent: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """Return how alerts went: the latest failure (if the latest try failed), the latest sent."""

    def when(outcome: dict[str, Any]) -> dict[str, Any]:
        at = datetime.fromisoformat(outcome["at"])
        return {
            **outcome,
            "at": format_et(at),
            "at_iso": at.isoformat(),
            "age": age_words(now - at),
        }

    failed = last is not None and not last.get("ok")
    return {
        "failed": when(last) if failed and last is not None else None,
        "sent": when(last_sent) if last_sent else None,
    }


def group_renderer(app: Flask) -> Callable[[dict[str, Any]], str]:
    """Return a function that renders one group view with the page's macro, from any thread."""

    def render(view: dict[str, Any]) -> str:
        with app.app_context():
            return str(get_template_attribute("scans/_rows.html", "group")(view))

    return render


def init_app(app: Flask) -> None:
    """Register the filters and globals the templates use."""
    app.add_template_filter(display, "cell")
    app.add_template_filter(sort_value, "sort_value")
    app.add_template_filter(by_symbol_return, "by_symbol_return")
    app.add_template_filter(source_name, "source_name")
    app.add_template_global(flag_info, "flag_info")
    app.add_template_global(badge, "badge")
    app.add_template_global(progress_words, "progress_words")
    app.add_template_global(side_columns, "side_columns")
