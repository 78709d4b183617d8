"""Send one message to apprise URLs within a bounded time, and say why it failed when it did.

apprise is imported on first use: loading its plugins costs most of a second, which only a
configured alert or `flask notify test` should pay.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

# Several URLs may share one variable: a comma or blank starts a new URL only where a scheme
# follows, since apprise URLs themselves list targets with commas (mailto://...?to=a@x,b@y).
_URL_SEPARATOR = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_FAILURE_LINES = 3  # apprise's warnings kept in a failure's reason
_REASON_LIMIT = 300  # characters of a reason kept in Redis and shown on the page


class AlertFailed(Exception):
    """A message could not be delivered; the text says why in plain words."""


def split_urls(raw: str) -> list[str]:
    """Return the apprise URLs in a space or comma separated value."""
    return [u.strip(" ,") for u in _URL_SEPARATOR.split(raw.strip()) if u.strip(" ,")]


def _apprise() -> Any:
    import apprise

    # apprise's warnings become a failure's reason, which we log in one line: they are kept
    # out of the application's log (and from Python's last-resort stderr handler).
    chatter = logging.getLogger("apprise")
    if chatter.propagate:
        chatter.propagate = False
        chatter.addHandler(logging.NullHandler())
    return apprise


def unusable_url(url: str) -> str | None:
    """Return why apprise cannot use a URL (naming only its scheme), or None if it can."""
    if apprise_service(url) is not None:
        return None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme:
        return "has no scheme (such as ntfy://, tgram:// or mailto://)"
    return f"({scheme}://…) is not a URL apprise understands"


def apprise_service(url: str, timeout: float | None = None) -> Any:
    """Return apprise's service for a URL (its socket timeouts capped), or None."""
    service = _apprise().Apprise.instantiate(url)
    if service is not None and timeout is not None:
        # A URL's own cto/rto are kept when shorter; none may outlast the whole delivery.
        service.socket_connect_timeout = min(service.socket_connect_timeout, timeout)
        service.socket_read_timeout = min(service.socket_read_timeout, timeout)
    return service


def describe(url: str) -> str:
    """Return a URL with its secrets hidden, as apprise prints it, without its options."""
    service = apprise_service(url)
    if service is None:
        return "(unusable URL)"
    return str(service.url(privacy=True)).split("?", 1)[0]


def deliver(urls: Sequence[str], title: str, body: str, timeout: float) -> None:
    """Send one message to every URL within `timeout` seconds, or raise AlertFailed."""
    if not urls:
        raise AlertFailed("no notification URL is configured (OPTSCAN_NOTIFY_URLS)")
    apprise = _apprise()
    sender = apprise.Apprise()
    for url in urls:
        service = apprise_service(url, timeout)
        if service is None:
            raise AlertFailed(f"URL {unusable_url(url)}")
        sender.add(service)
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
                outcome["ok"] = bool(
                    sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
                )
            outcome["log"] = captured.getvalue()
        except Exception as exc:  # noqa: BLE001 - handed to the caller as the reason
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    # A daemon thread (a greenlet under gevent) bounds the whole delivery, name lookups and
    # retries included; one that outlives the bound ends with its own socket timeouts.
    worker = threading.Thread(target=send, name="optscan-alert-send", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AlertFailed(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise AlertFailed(_short(outcome["error"]))
    if not outcome.get("ok"):
        lines = [line.strip() for line in outcome.get("log", "").splitlines() if line.strip()]
        raise AlertFailed(_short("; ".join(lines[:_FAILURE_LINES]) or "apprise reported a failure"))


def _short(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"
