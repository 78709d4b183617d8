"""Positions page: the shares, cost basis and cash the wheel scans follow.

Private: with a password set, even reading it needs a login (see auth.require_login).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from optscan.core.book import CSV_COLUMNS
from optscan.core.wheel import CONTRACT_SIZE
from optscan.extensions import services
from optscan.store.positions import REFUSED, refusal

bp = Blueprint("positions", __name__)


def _page(error: str | None = None, status: int = 200, form: dict | None = None):
    svc = services()
    book = svc.positions.book()
    return (
        render_template(
            "positions/index.html",
            entries=svc.positions.entries(),
            cash=book.cash,
            cash_text="" if book.cash is None else f"{book.cash:.2f}",
            covered=book.covered_symbols(),
            contract_size=CONTRACT_SIZE,
            csv_columns=",".join(CSV_COLUMNS),
            error=error,
            form=form or {},
        ),
        status,
    )


@bp.get("/positions")
def page():
    """List the positions and the cash with forms to change them."""
    return _page()


def _change(change: Callable[[], str], form: dict | None = None):
    try:
        words = change()
    except REFUSED as exc:
        return _page(refusal(exc), 400, form)
    flash(words)
    # Post/redirect/get: a reload does not repeat the change.
    return redirect(url_for("positions.page"), code=303)


@bp.post("/positions/set")
def set_position() -> Response | tuple[str, int]:
    """Set one symbol's shares and cost basis."""
    form = {k: request.form.get(k, "") for k in ("symbol", "shares", "cost_basis")}

    def change() -> str:
        svc = services()
        position = svc.positions.set(form["symbol"], form["shares"], form["cost_basis"])
        svc.forget_call_rows([position.symbol])
        return (
            f"Set: {position.symbol} {position.shares:,d} shares at"
            f" {position.cost_basis:,.2f} USD per share"
        )

    return _change(change, form)


@bp.post("/positions/remove")
def remove() -> Response | tuple[str, int]:
    """Remove one symbol's position."""

    def change() -> str:
        svc = services()
        removed = svc.positions.remove([request.form.get("symbol", "")])
        svc.forget_call_rows(removed)
        return f"Removed: {' '.join(removed)}"

    return _change(change)


@bp.post("/positions/cash")
def cash() -> Response | tuple[str, int]:
    """Set the cash for puts; empty clears it."""
    form = {"cash": request.form.get("cash", "")}

    def change() -> str:
        amount = services().positions.set_cash(form["cash"])
        return "Cash cleared" if amount is None else f"Cash: {amount:,.2f} USD"

    return _change(change, form)


@bp.post("/positions/import")
def import_file() -> Response | tuple[str, int]:
    """Set every position of an uploaded CSV; a bad line refuses the whole file."""
    upload = request.files.get("file")
    replace = request.form.get("replace") == "1"
    if upload is None or not upload.filename:
        return _page("Choose a CSV file to import. Nothing was changed.", 400)
    try:
        text = upload.read().decode("utf-8")
    except UnicodeDecodeError:
        return _page("The file is not UTF-8 text. Nothing was changed.", 400)

    def change() -> str:
        svc = services()
        outcome = svc.positions.import_csv(text, replace=replace)
        svc.forget_call_rows([p.symbol for p in outcome.positions] + outcome.removed)
        count = len(outcome.positions)
        removed = f"; removed: {' '.join(outcome.removed)}" if outcome.removed else ""
        return f"Imported {count} position{'s' if count != 1 else ''}{removed}"

    return _change(change)
