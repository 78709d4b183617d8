"""Scans: the page, the scan endpoint, status and downloads."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    url_for,
)

from optscan.core.formatting import plain
from optscan.core.market import NEW_YORK, format_et
from optscan.core.match import COLUMNS, SIDE_WORDS, SIDES, Side
from optscan.core.rulefields import InvalidRule
from optscan.core.rules import Rules
from optscan.extensions import Services, services
from optscan.jobs.scanjob import (
    Refusal,
    ScanRequest,
    ScanState,
    current_scan,
    describe_busy,
    prepare,
)
from optscan.notify.ledger import AlertLedger
from optscan.web import rulesform
from optscan.web.presentation import (
    alert_view,
    group_view,
    market_words,
    progress_view,
    result_view,
)

bp = Blueprint("scans", __name__)

_TRUE = frozenset({"1", "true", "on", "yes", "y"})
_FALSE = frozenset({"", "0", "false", "off", "no", "n"})

# -- request parsing -----------------------------------------------------------------------


def side_value(raw: str | None, *, default: Side = "put") -> Side:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in SIDES:
        abort(400, description=f"The side must be put or call, not {raw[:20]!r}.")
    return value


def _force_value(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    abort(400, description=f"The force option must be on or off (1 or 0), not {value[:20]!r}.")


def _wants_partial() -> bool:
    """Return whether the page's script sent the request (it shows a partial in place)."""
    return request.headers.get("X-Requested-With") == "fetch"


# -- page context --------------------------------------------------------------------------


def _expand() -> bool:
    """Return whether the page asks for every row ("show all"), not the best N per symbol."""
    return request.args.get("all", "") in ("1", "true", "on", "yes")


def _groups(
    svc: Services, side: Side, live_snapshot: dict[str, Any] | None, rules: Rules
) -> list[dict]:
    """Return the symbol sections to show: the running scan's so far, else the whole board."""
    now = svc.now()
    common: dict[str, Any] = {
        "calendar": svc.calendar,
        "now": now,
        "stale_after_minutes": svc.settings.stale_after_minutes,
        "rules_in_force": rules.describe(side),
        "top": rules.top_n,
        "expand": _expand(),
    }
    if live_snapshot is not None:
        board = svc.store.board(side, scan_id=live_snapshot.get("scan_id"))
        return [group_view(g, **common) for g in board.values()]
    # A symbol whose latest scan failed keeps its earlier rows, marked with the failure; one
    # that never scanned has no section (the failure notice lists it once, by reason).
    failures = svc.store.failures(side)
    return [
        group_view(g, failure=failures.get(s), **common) for s, g in svc.store.board(side).items()
    ]


def _results_context(svc: Services, side: Side | None, scan: ScanState, symbol: str) -> dict:
    now = svc.now()
    live_snapshot = scan.snapshot if scan.running else None
    chosen: Side = side or (live_snapshot or {}).get("side") or "put"
    live = live_snapshot is not None and live_snapshot.get("side") == chosen
    last = svc.store.last(chosen)
    attempt = svc.store.last_attempt(chosen)
    # Every scan overwrites the attempt; an unsuccessful one is newer than the last good one.
    failure = _result_view(attempt, svc, now) if attempt and not attempt.get("success") else None
    rules = svc.defaults().rules
    groups = _groups(svc, chosen, live_snapshot if live else None, rules)
    shown = [g for g in groups if g["symbol"].startswith(symbol)] if symbol else groups
    return {
        "side": chosen,
        "side_words": SIDE_WORDS[chosen],
        "live": live,
        "scan_id": (live_snapshot or {}).get("scan_id") if live else None,
        "last": _result_view(last, svc, now),
        "failure": failure,
        "groups": groups,
        "shown": shown,
        "shown_rows": sum(g["count"] for g in shown),
        "symbol_filter": symbol,
        "rules_in_force": rules.describe(chosen),
        "top_n": rules.top_n,
        "expand": _expand(),
        "alerts": _alerts(svc, now),
    }


def _alerts(svc: Services, now: datetime) -> dict[str, Any] | None:
    """Return how alerts went, or None when none are configured."""
    if not svc.settings.notify_urls:
        return None
    ledger = AlertLedger(svc.redis, svc.settings.redis_prefix)
    return alert_view(ledger.last(), ledger.last_sent(), now)


def page_context(
    side: Side | None, symbol: str = "", rules_raw: dict[str, str] | None = None
) -> dict[str, Any]:
    """Return everything the scanner page shows; `rules_raw`: the rules form as posted."""
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
    defaults = svc.defaults()
    return {
        **context,
        "rule_form": rulesform.form_view(
            defaults.rules, svc.settings.rules, rules_raw, defaults.saved_at
        ),
        "market": market_words(svc.calendar.status(svc.now())),
        "scan": scan,
        "holder": scan.holder,
        "busy_words": describe_busy(scan.holder) if scan.holder is not None else None,
        "progress": progress_view(scan.snapshot),
        "stream_url": stream_url,
    }


# -- web routes ----------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    """Show the market, the scan form, the progress of a running scan and the last results."""
    raw_side = request.args.get("side")
    side = side_value(raw_side) if raw_side else None
    symbol = request.args.get("symbol", "").strip().upper()[:10]
    return render_template("scans/index.html", **page_context(side, symbol))


@bp.get("/results")
def results_partial() -> str:
    """Return the results section alone, for the page's script to swap in."""
    side = side_value(request.args.get("side"))
    svc = services()
    scan = current_scan(svc.redis, svc.lock_key, svc.events.get_state())
    symbol = request.args.get("symbol", "").strip().upper()[:10]
    return render_template(
        "scans/_results.html", partial=True, **_results_context(svc, side, scan, symbol)
    )


_STATUS = {
    "started": 202,
    "busy": 409,
    "market_closed": 409,
    "no_symbols": 409,
    "redis": 503,
    "internal": 500,
    "invalid": 400,
}


@bp.post("/scan")
def scan() -> tuple[str, int]:
    """Start a scan in the background and say at once how that went."""
    side = side_value(request.form.get("side"))
    force = _force_value(request.form.get("force"))
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
    raw = rulesform.submitted(request.form)
    rules_inputs = rulesform.hidden_inputs(raw)
    try:
        rules = rulesform.rules_from_form(request.form, svc.defaults().rules)
    except InvalidRule as exc:
        words = rulesform.refusal_words(exc, "The scan did not start.")
        outcome = {"kind": "invalid", "message": words, "side": side}
        view = _outcome_context(outcome, None, None)
    else:
        job = prepare(svc, ScanRequest(side, force=force, trigger="web", rules=rules))
        if isinstance(job, Refusal):
            outcome = {"kind": job.kind, "message": job.message, "side": side}
            view = _outcome_context(outcome, job.snapshot, job.next_open)
        else:
            job.start()
            svc.scan_triggers.record(client)
            outcome = {"kind": "started", "message": job.message, "side": side}
            view = _outcome_context(outcome, job.live.snapshot, None)
    view["outcome_rules_inputs"] = rules_inputs
    status = _STATUS[outcome["kind"]]
    if _wants_partial():
        return render_template("scans/_outcome.html", **view), status
    page = page_context(side, rules_raw=raw)
    return render_template("scans/index.html", **page, **view), status


def _outcome_context(
    outcome: dict[str, Any], snapshot: dict[str, Any] | None, next_open: datetime | None
) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "outcome_progress": progress_view(snapshot),
        "outcome_next_open": format_et(next_open) if next_open else None,
        "outcome_side_words": SIDE_WORDS[outcome["side"]],
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
        "as_of": result.get("as_of"),
        "stale": (_result_view(result, svc, now) or {}).get("stale", False),
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


def _download_name(document: dict[str, Any], side: Side, ext: str) -> str:
    last = document.get("last_scan") or {}
    stamp = last.get("finished_at") or services().now().isoformat()
    finished = datetime.fromisoformat(stamp).astimezone(NEW_YORK)
    return f"optscan-{SIDE_WORDS[side]}-{finished:%Y%m%d-%H%M}.{ext}"


def _results_or_404(side: Side) -> dict[str, Any]:
    document = services().store.results(side)
    if document is None:
        abort(404, description=f"There are no {SIDE_WORDS[side]} results yet: run a scan first.")
    return document


@bp.get("/results.json")
def results_json() -> Response:
    """Download a side's board as JSON: the last scan, each symbol's group, every row."""
    side = side_value(request.args.get("side"))
    document = _results_or_404(side)
    response = Response(json.dumps(document, allow_nan=False), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_download_name(document, side, "json")}"'
    )
    return response


@bp.get("/results.csv")
def results_csv() -> Response:
    """Download every row on a side's board as CSV, one column per Match field."""
    side = side_value(request.args.get("side"))
    document = _results_or_404(side)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(c.name for c in COLUMNS)
    for match in document["matches"]:
        writer.writerow(plain(match.get(c.name), c.kind) for c in COLUMNS)
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_download_name(document, side, "csv")}"'
    )
    return response


@bp.app_template_global("results_download_url")
def results_download_url(side: str, ext: str) -> str:
    """Return the download URL of a side's last results."""
    endpoint = "scans.results_csv" if ext == "csv" else "scans.results_json"
    return url_for(endpoint, side=side)


def _result_view(result: dict[str, Any] | None, svc: Services, now: datetime) -> dict | None:
    as_of = (result or {}).get("as_of")
    stale = bool(as_of) and svc.calendar.quotes_stale(
        datetime.fromisoformat(str(as_of)), now, svc.settings.stale_after_minutes
    )
    return result_view(result, now, stale)
