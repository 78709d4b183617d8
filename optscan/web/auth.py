"""Auth: the login page and the access rule for every request."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from optscan.extensions import services

bp = Blueprint("auth", __name__, cli_group=None)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPEN_ENDPOINTS = frozenset({"auth.login", "static"})


def logged_in() -> bool:
    """Return whether this browser session has logged in."""
    return session.get("user") == "admin"


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//evil.example" and "https://..." would be open redirects.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("scans.index")


@bp.app_context_processor
def auth_context() -> dict[str, object]:
    """Tell templates whether a login exists and whether this session has it."""
    return {"auth_enabled": services().passwords.is_set(), "logged_in": logged_in()}


@bp.before_app_request
def require_login() -> Response | None:
    """Refuse changes (and reading, when private) to a session that has not logged in."""
    if request.endpoint in _OPEN_ENDPOINTS or request.endpoint is None:
        return None
    svc = services()
    if logged_in() or not svc.passwords.is_set():
        return None
    reading = request.method in _READ_METHODS
    if reading and svc.settings.public_read:
        return None
    if reading and request.accept_mimetypes.accept_html and request.path != "/stream":
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(401, description="Log in to start scans or change the watchlist.")
    return None  # unreachable: abort raises


def _client() -> str:
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Show the login form, or log in with the admin password."""
    svc = services()
    target = _safe_next(request.values.get("next"))
    if not svc.passwords.is_set():
        return redirect(target)
    if request.method == "GET":
        return render_template("auth/login.html", next=target, error=None)
    if svc.failed_logins.exceeded(_client()):
        wait = svc.failed_logins.retry_after(_client())
        error = f"Too many failed logins from this address; try again in {wait} s."
        return render_template("auth/login.html", next=target, error=error), 429
    if not svc.passwords.check(request.form.get("password", "")):
        svc.failed_logins.record(_client())
        return render_template("auth/login.html", next=target, error="Wrong password."), 401
    svc.failed_logins.reset(_client())
    # A fresh session on login: a session fixed before logging in is worthless after.
    session.clear()
    session["user"] = "admin"
    session.permanent = True
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> Response:
    """Log out of this browser session."""
    session.clear()
    return redirect(url_for("scans.index"), code=303)
