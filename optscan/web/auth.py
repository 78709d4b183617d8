"""Auth: the login page and the access rule for every request."""

from __future__ import annotations

import hmac
import unicodedata
from urllib.parse import urljoin, urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
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
# Pages that hold the trader's own books: reading them needs a login too, whatever PUBLIC_READ.
_PRIVATE_BLUEPRINTS = frozenset({"positions"})
MAX_NEXT_LENGTH = 2000
# Any origin will do: a target is safe when resolving it against this one stays on it.
_PROBE_ORIGIN = "http://optscan.invalid"


def _password_fingerprint() -> str | None:
    return services().passwords.fingerprint(current_app.secret_key or "")


def logged_in() -> bool:
    """Return whether this browser session logged in with the password in force now."""
    seen = session.get("password")
    current = _password_fingerprint()
    # A session remembers which password it logged in with: a new or cleared one ends it.
    return (
        session.get("user") == "admin"
        and isinstance(seen, str)
        and current is not None
        and hmac.compare_digest(seen, current)
    )


def is_same_site_path(target: str) -> bool:
    """Return whether a redirect target stays on this site however a browser reads it."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return False
    # Browsers drop tabs and newlines anywhere and read "\" as "/", so "/\t/evil" and "/\evil"
    # become "//evil", another host; control characters also break the Location header.
    if "\\" in target or any(unicodedata.category(c) == "Cc" for c in target):
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return False
    resolved = urlsplit(urljoin(f"{_PROBE_ORIGIN}/", target))
    return f"{resolved.scheme}://{resolved.netloc}" == _PROBE_ORIGIN


def _safe_next(target: str | None) -> str:
    return target if target is not None and is_same_site_path(target) else url_for("scans.index")


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
    if not svc.passwords.is_set() or logged_in():
        return None
    reading = request.method in _READ_METHODS
    if reading and svc.settings.public_read and request.blueprint not in _PRIVATE_BLUEPRINTS:
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
    # Count the attempt as failed before checking it, in one atomic step: concurrent guesses
    # on any worker cannot all pass the check before one of them is recorded.
    admission = svc.failed_logins.take(_client())
    if not admission.allowed:
        error = f"Too many failed logins from this address; try again in {admission.retry_after} s."
        return render_template("auth/login.html", next=target, error=error), 429
    if not svc.passwords.check(request.form.get("password", "")):
        return render_template("auth/login.html", next=target, error="Wrong password."), 401
    svc.failed_logins.reset(_client())
    fingerprint = _password_fingerprint()
    # A fresh session on login: a session fixed before logging in is worthless after.
    session.clear()
    session["user"] = "admin"
    session["password"] = fingerprint
    session.permanent = True
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> Response:
    """Log out of this browser session."""
    session.clear()
    return redirect(url_for("scans.index"), code=303)
