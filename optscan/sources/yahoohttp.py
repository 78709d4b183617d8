"""The HTTP session of the live Yahoo source: a PacedSession that knows Yahoo's hosts.

Failures on Yahoo's cookie pages are not counted towards "unreachable": yfinance treats those
pages as optional (some block lists name fc.yahoo.com), so their errors pass through unchanged.
"""

from __future__ import annotations

from optscan.store.ratelimit import RateLimiter

from .policy import Reachability
from .session import ConnectionFailed, PacedSession, connection_failure, running_under_gevent

__all__ = ["ConnectionFailed", "YahooSession", "connection_failure", "running_under_gevent"]

# Hosts of the cookie and consent pages, which yfinance may do without.
_OPTIONAL_HOSTS = ("fc.yahoo.com", "guce.yahoo.com", "consent.yahoo.com")


class YahooSession(PacedSession):
    """A PacedSession for yfinance: every *.yahoo.com request optionally sent to a
    Yahoo-compatible base URL instead, the cookie pages' failures never counted."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        cooperative: bool | None = None,
        limiter: RateLimiter | None = None,
        reachability: Reachability | None = None,
    ):
        super().__init__(
            "yahoo.com",
            base_url,
            timeout=timeout,
            cooperative=cooperative,
            limiter=limiter,
            reachability=reachability,
            optional_hosts=_OPTIONAL_HOSTS,
        )
