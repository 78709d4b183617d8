"""The HTTP session of the live sources: curl_cffi, cooperative under gevent, paced, and
refusing every request once the vendor is unreachable.

A connection-level failure (DNS, connect, TLS: no answer of any kind) is counted by the
source's Reachability and raised as ConnectionFailed, which is no OSError: yfinance, which
makes Yahoo's requests, lets it through instead of logging "continuing without crumb" and
trying the next cookie strategy against a network that is not there. Failures on hosts a
source names optional are the exception: they pass through unchanged and are not counted.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlECode
from curl_cffi.curl import CurlError
from curl_cffi.requests.exceptions import RequestException, SSLError

from optscan.store.ratelimit import RateLimiter

from .policy import Reachability

__all__ = ["ConnectionFailed", "PacedSession", "connection_failure", "running_under_gevent"]
_NO_ANSWER = {
    CurlECode.COULDNT_RESOLVE_HOST: "DNS lookup of {host} failed",
    CurlECode.COULDNT_RESOLVE_PROXY: "DNS lookup of the proxy failed",
    CurlECode.COULDNT_CONNECT: "could not connect to {host} port {port}",
    CurlECode.PROXY: "the proxy refused the connection to {host}",
    CurlECode.INTERFACE_FAILED: "the network interface could not be used",
    CurlECode.QUIC_CONNECT_ERROR: "could not connect to {host} port {port}",
}
# curl's messages for a timeout before the connection was made (its error 28 covers both).
_CONNECT_TIMEOUTS = ("Connection timed out", "Failed to connect", "Resolving timed out")


class ConnectionFailed(Exception):
    """A request got no answer at all; `final` once the vendor counts as unreachable."""

    def __init__(self, cause: str, *, final: bool):
        super().__init__(cause)
        self.cause = cause
        self.final = final


def running_under_gevent() -> bool:
    """Return True when gevent has monkey-patched the socket module of this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def connection_failure(exc: BaseException, url: str) -> str | None:
    """Return what failed when a request to `url` got no answer of any kind, else None."""
    if not isinstance(exc, RequestException):
        return None
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    code = getattr(exc, "code", None)
    if code in _NO_ANSWER:
        return _NO_ANSWER[code].format(host=host, port=port)
    if isinstance(exc, SSLError):
        return f"TLS handshake with {host} failed"
    if code == CurlECode.OPERATION_TIMEDOUT and any(m in str(exc) for m in _CONNECT_TIMEOUTS):
        return f"connecting to {host} port {port} timed out"
    return None


def _quiet_curl_errors_in_gevent_hub() -> None:
    # curl_cffi runs each transfer in gevent's threadpool, whose results print any exception
    # with a full traceback before handing it to the waiting greenlet, which handles it: one
    # traceback per failed request. NOT_ERROR is the hub's documented list of exceptions it
    # does not print.
    import gevent

    hub = gevent.get_hub()
    if not issubclass(CurlError, hub.NOT_ERROR):
        hub.NOT_ERROR = (*hub.NOT_ERROR, CurlError)


class PacedSession(curl_requests.Session):
    """A curl_cffi session for one vendor: cooperative under gevent, timeouts capped, every
    request paced by an optional rate limiter, refused once the vendor is unreachable, and
    optionally every request to the vendor's domain (and its subdomains) sent to a compatible
    base URL instead."""

    def __init__(
        self,
        domain: str,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        cooperative: bool | None = None,
        limiter: RateLimiter | None = None,
        reachability: Reachability | None = None,
        optional_hosts: tuple[str, ...] = (),
    ):
        # libcurl's I/O is invisible to gevent: unless perform() runs in gevent's threadpool
        # (thread="gevent"), one request freezes every greenlet of the worker.
        self.cooperative = running_under_gevent() if cooperative is None else cooperative
        super().__init__(impersonate="chrome", thread="gevent" if self.cooperative else None)
        if self.cooperative:
            _quiet_curl_errors_in_gevent_hub()
        self.domain = domain
        self.optional_hosts = optional_hosts
        self.base_url = base_url.rstrip("/") if base_url else None
        self.max_timeout = float(timeout)
        self.limiter = limiter
        self.reachability = reachability
        # Per thread (per greenlet under gevent): when this thread's last request left.
        self._sent = threading.local()

    @property
    def last_sent_at(self) -> float | None:
        """Return when the calling thread's last request left (time.monotonic), if any."""
        return getattr(self._sent, "at", None)

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request, paced, redirected to base_url and with the timeout capped."""
        reach = self.reachability
        cause = reach.check() if reach is not None else None
        if cause is not None:
            raise ConnectionFailed(cause, final=True)
        optional = urlsplit(url).hostname in self.optional_hosts
        if self.base_url is not None:
            url = self._redirect(url)
        # yfinance asks for 30 s on its cookie and crumb requests; a scan must not wait that long.
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, int | float) or timeout > self.max_timeout:
            kwargs["timeout"] = self.max_timeout
        if self.limiter is not None:
            self.limiter.acquire()
        self._sent.at = time.monotonic()
        try:
            response = super().request(method, url, *args, **kwargs)
        except RequestException as exc:
            cause = connection_failure(exc, url)
            if cause is None or reach is None or optional:
                raise
            raise ConnectionFailed(cause, final=reach.failed(cause)) from exc
        if reach is not None and not optional:
            reach.answered()
        return response

    def _redirect(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != self.domain and not host.endswith(f".{self.domain}"):
            return url
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.base_url}{parts.path or '/'}{query}"
