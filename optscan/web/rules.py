"""Save the rules form as the default rules, or go back to the environment's."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from optscan.core.match import SIDES
from optscan.core.rulefields import InvalidRule
from optscan.extensions import services
from optscan.web import rulesform
from optscan.web.scans import page_context, side_value

bp = Blueprint("rules", __name__)


def _back() -> Response:
    # Post/redirect/get: a reload does not repeat the change.
    side = side_value(request.form.get("side"))
    return redirect(url_for("scans.index", side=side), code=303)


@bp.post("/rules/default")
def save_default() -> Response | tuple[str, int]:
    """Save the form's rules as what every scan uses unless told otherwise (timer included)."""
    svc = services()
    raw = rulesform.submitted(request.form)
    if raw is None:
        return _refused("The rules form was not sent. Nothing was changed.", None)
    try:
        rules = rulesform.rules_from_form(request.form, svc.defaults().rules)
    except InvalidRule as exc:
        return _refused(rulesform.refusal_words(exc, "Nothing was changed."), raw)
    svc.save_default_rules(rules)
    words = "; ".join(f"{side}s: {rules.describe(side)}" for side in SIDES)
    flash(f"Saved as the default rules ({words}; best {rules.top_n} per symbol shown).")
    return _back()


@bp.post("/rules/reset")
def reset() -> Response:
    """Forget the saved rules: the environment's (OPTSCAN_*) apply again."""
    services().save_default_rules(None)
    flash("The saved rules were cleared: the environment's defaults apply again.")
    return _back()


def _refused(words: str, raw: dict[str, str] | None) -> tuple[str, int]:
    side = side_value(request.form.get("side"))
    page = page_context(side, rules_raw=raw)
    return render_template("scans/index.html", **page, rules_error=words), 400
