"""Web hardening: the secret key, session cookies, proxies and security headers."""

from __future__ import annotations

import io
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import Flask, Response, abort, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from optscan.config import MIN_SECRET_LENGTH, ConfigError, Settings

# No inline script or style anywhere: the page's script and styles are files under /static.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def resolve_secret_key(settings: Settings, instance_path: Path) -> str:
    """Return the secret key: configured (required in production), else kept in the instance."""
    if settings.secret_key:
        return settings.secret_key  # load_settings refused a weak one in production
    # One key for every worker and restart, so sessions and CSRF tokens stay valid.
    path = instance_path / "secret_key"
    if not path.exists():
        # Workers start together: write a complete file aside, then link it into place, so
        # a reader never sees a half-written key and only the first link wins.
        fd, temporary = tempfile.mkstemp(prefix=".secret_key.", dir=instance_path)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    stored = path.read_text().strip()
    if len(stored) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{path} holds no usable secret key; delete it to make a new one")
    return stored


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bound_streamed_body() -> None:
    """Refuse a chunked body past MAX_CONTENT_LENGTH; werkzeug would cut it and go on."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (
        limit is None
        or request.method not in _BODY_METHODS
        or request.content_length is not None
        or "wsgi.input_terminated" not in request.environ
    ):
        return
    body = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        abort(413)
    request.environ["wsgi.input"] = io.BytesIO(body)


def add_security_headers(response: Response) -> Response:
    """Set the security headers a response does not set itself."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask, settings: Settings) -> None:
    """Apply the secret key, cookie flags, proxy trust and security headers to the app."""
    app.secret_key = resolve_secret_key(settings, Path(app.instance_path))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env == "production",
        # Flask also refuses, server-side, a signed cookie older than this.
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.session_lifetime_days),
    )
    if settings.trusted_proxies:
        proxies = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    app.before_request(bound_streamed_body)
    app.after_request(add_security_headers)
