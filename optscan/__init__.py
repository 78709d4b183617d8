"""optscan: scan a watchlist for options worth selling."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from optscan import extensions
from optscan.redisserver import RedisUnavailable
from optscan.settings import default_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)

csrf = CSRFProtect()

# Plain words for the errors a person can meet; anything else gets a generic sentence.
_ERROR_WORDS = {
    400: "The request was not understood.",
    403: "This action is not allowed.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    413: "The request is too large.",
    429: "Too many requests; wait a moment and try again.",
}
_CSRF_WORDS = (
    "This form has expired or did not come from an optscan page, so nothing was done."
    " Reload the page and try again."
)
_REDIS_WORDS = "Redis is unavailable, so this page cannot be shown; check that it is running."
_INTERNAL_WORDS = "Something went wrong on the server; the details are in the server log."


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and wire the optscan application."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(default_config())
    # A page may stay open all day: its token is tied to the session, not to the hour.
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    app.config.from_prefixed_env("OPTSCAN")
    if test_config is not None:
        app.config.from_mapping(test_config)

    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])
    extensions.init_app(app)
    csrf.init_app(app)
    app.register_error_handler(Exception, _handle_error)

    from optscan.blueprints import scans, stream, watchlist

    app.register_blueprint(scans.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(watchlist.bp)
    return app


def _handle_error(exc: Exception) -> Any:
    """Answer an error in plain words: a page, a partial for the page's script, or JSON."""
    if isinstance(exc, CSRFError):
        code, words = 400, _CSRF_WORDS
    elif isinstance(exc, HTTPException):
        if exc.code is not None and exc.code < 400:  # a redirect, not an error
            return exc
        code = exc.code or 500
        default = exc.__class__.description
        # Our own abort() calls carry a plain sentence; werkzeug's stock ones get ours.
        own = exc.description if exc.description and exc.description != default else None
        words = own or _ERROR_WORDS.get(code) or _INTERNAL_WORDS
        if code >= 500:
            log.error("HTTP %s on %s %s: %s", code, request.method, request.path, exc)
    elif isinstance(exc, redis.RedisError | RedisUnavailable):
        log.error("Redis unavailable on %s %s: %s", request.method, request.path, exc)
        code, words = 503, _REDIS_WORDS
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        code, words = 500, _INTERNAL_WORDS
    if request.path.endswith(".json") or request.path == "/scan/status":
        return jsonify({"error": words, "status": code}), code
    if request.headers.get("X-Requested-With") == "fetch":
        return render_template("errors/_message.html", code=code, words=words), code
    try:
        return render_template("errors/page.html", code=code, words=words), code
    except Exception:  # noqa: BLE001 - the error page itself failed: fall back to text
        log.exception("error page could not be rendered")
        return words, code, {"Content-Type": "text/plain; charset=utf-8"}
