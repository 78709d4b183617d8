"""Errors answered in plain words: a page, a partial for the page's script, or JSON."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from optscan.store.redisserver import RedisUnavailable

log = logging.getLogger(__name__)

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
_REDIS_CHANGE_WORDS = (
    "Redis is unavailable, so no scan can start and nothing was changed; check that it is running."
)
_INTERNAL_WORDS = "Something went wrong on the server; the details are in the server log."
_ERROR_WORDS[401] = "Log in to do that."


def init_app(app: Flask) -> None:
    """Answer every error through the plain-words handler."""
    app.register_error_handler(Exception, handle_error)


def handle_error(exc: Exception) -> Any:
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
        code = 503
        words = _REDIS_WORDS if request.method in ("GET", "HEAD") else _REDIS_CHANGE_WORDS
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        code, words = 500, _INTERNAL_WORDS
    # Allow (405), WWW-Authenticate (401), Retry-After: what the error itself says to send.
    headers = [
        (name, value)
        for name, value in (exc.get_headers() if isinstance(exc, HTTPException) else [])
        if name.lower() != "content-type"
    ]
    if request.path.endswith(".json") or request.path == "/scan/status":
        return jsonify({"error": words, "status": code}), code, headers
    if request.path.endswith(".csv"):  # a download: plain words, not a page in a .csv file
        return words, code, [*headers, ("Content-Type", "text/plain; charset=utf-8")]
    if request.headers.get("X-Requested-With") == "fetch":
        return render_template("errors/_message.html", code=code, words=words), code, headers
    try:
        return render_template("errors/page.html", code=code, words=words), code, headers
    except Exception:
        log.exception("error page could not be rendered")
        return words, code, [*headers, ("Content-Type", "text/plain; charset=utf-8")]
