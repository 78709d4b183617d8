"""Every use of yfinance's private internals, in one place (yfinance is pinned >= 1.0, < 2).

optscan takes one thing from yfinance: YfData, its HTTP client, which fetches Yahoo's cookie
and crumb (walking the EU consent pages when needed) and adds the crumb to each request.
Using it for one source's session, timeout and error checks takes the private names in
PRIVATE_NAMES. `check()` runs when this module is imported and fails with the missing name
when a yfinance release has moved one; tests/test_yfadapter.py runs it too. What to do then:
the README's "Upgrading yfinance".

Nothing else in optscan imports yfinance.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yfinance
import yfinance.cache
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError

__all__ = [
    "PRIVATE_NAMES",
    "RateLimitError",
    "YfClient",
    "YfinanceChanged",
    "check",
    "use_cache_dir",
]

# A 429 that yfinance raised itself (after its own retry with the other cookie strategy).
RateLimitError = YFRateLimitError

# (module, dotted name, parameters the name must take): what this module relies on.
PRIVATE_NAMES: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
    # Overridden: one request, with this source's check of the answer, before yfinance's own
    # retry of an error answer with its other cookie strategy.
    (yfinance.data, "YfData._make_request", ("url", "request_method")),
    # Overridden: remember a cookie fetched from a Yahoo-compatible server at another host.
    (yfinance.data, "YfData._get_cookie_basic", ("timeout",)),
    # The cookie, timezone and ISIN caches keep their first database open; reset on a move.
    (yfinance.cache, "_CookieCacheManager._Cookie_cache", ()),
    (yfinance.cache, "_TzCacheManager._tz_cache", ()),
    (yfinance.cache, "_ISINCacheManager._isin_cache", ()),
)
# Set by YfData.__init__ and read or written here; checked on an instance by the tests, as is
# the one thing the metaclass below relies on: that YfData's singleton lives in its metaclass's
# __call__, so that bypassing it gives each source a client of its own.
INSTANCE_ATTRIBUTES = ("_cookie",)


class YfinanceChanged(ImportError):
    """The installed yfinance lacks a private name optscan's Yahoo source relies on."""


def check() -> None:
    """Raise YfinanceChanged naming the first private name the installed yfinance lacks."""
    version = getattr(yfinance, "__version__", "?")
    for module, dotted, parameters in PRIVATE_NAMES:
        found: Any = module
        for part in dotted.split("."):
            if not hasattr(found, part):
                raise YfinanceChanged(
                    f"yfinance {version} has no {module.__name__}.{dotted}, which optscan's"
                    " Yahoo source relies on (optscan/sources/yfadapter.py); see"
                    " 'Upgrading yfinance' in the README"
                )
            found = getattr(found, part)
        missing = [p for p in parameters if p not in inspect.signature(found).parameters]
        if missing:
            raise YfinanceChanged(
                f"yfinance {version}: {module.__name__}.{dotted} no longer takes"
                f" {', '.join(missing)}; see 'Upgrading yfinance' in the README"
            )


check()


class _OnePerClient(type(YfData)):  # type: ignore[misc]
    """Give each YfClient its own instance instead of yfinance's process-wide singleton."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class YfClient(YfData, metaclass=_OnePerClient):
    """yfinance's HTTP client (cookie, crumb, consent) for one source and its session.

    check_answer, when given, sees each answer to the source's own requests before yfinance
    would retry an error answer with its other cookie strategy, and may raise to stop that.
    """

    _cookie: Any

    def __init__(self, session: Any, check_answer: Callable[[Any], None] | None = None):
        super().__init__(session=session)
        self._check_answer = check_answer

    def _get_cookie_basic(self, timeout: float = 30) -> bool:
        got = super()._get_cookie_basic(timeout)
        # yfinance remembers a fetched cookie only by reading it back from its disk cache,
        # which keeps cookies of yahoo domains alone: from a Yahoo-compatible server at
        # another host it would fetch the cookie page again before every request.
        if got and self._cookie is None:
            self._cookie = True
        return got

    def _make_request(self, url: str, request_method: Callable[..., Any], **kwargs: Any) -> Any:
        check_answer = self._check_answer
        if check_answer is None:
            return super()._make_request(url, request_method, **kwargs)

        def send(**request_args: Any) -> Any:
            response = request_method(**request_args)
            check_answer(response)
            return response

        return super()._make_request(url, send, **kwargs)


_cache_lock = threading.Lock()
_cache_location: str | None = None


def use_cache_dir(cache_dir: Path) -> None:
    """Keep yfinance's cookie, timezone and ISIN caches (process-wide) in this folder."""
    global _cache_location
    with _cache_lock:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Moving the folder closes the open databases: move only when asked for another one.
        if _cache_location == str(cache_dir):
            return
        yfinance.set_tz_cache_location(str(cache_dir))
        # yfinance's cache objects keep the database they opened first; without a reset they
        # go on using the old folder (and fail once it is deleted).
        yfinance.cache._CookieCacheManager._Cookie_cache = None
        yfinance.cache._TzCacheManager._tz_cache = None
        yfinance.cache._ISINCacheManager._isin_cache = None
        _cache_location = str(cache_dir)
