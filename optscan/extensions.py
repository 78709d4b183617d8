"""The app's clients and services, kept in app.extensions["optscan"]."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect

from optscan.config import ConfigError, Settings, load_settings
from optscan.core.market import NEW_YORK, Clock, MarketCalendar, system_clock

# The services' modules are imported where each is first built, so that a command that needs
# none of them (`flask scan --help`) or only some (a replay scan: no yfinance) loads no more.
if TYPE_CHECKING:
    import redis

    from optscan.core.rules import Rules
    from optscan.core.scan import ScanEnv
    from optscan.sources import FetchPolicy, OptionSource
    from optscan.store.events import ScanEvents
    from optscan.store.history import HistoryStore
    from optscan.store.lock import ScanLock
    from optscan.store.passwords import PasswordStore
    from optscan.store.positions import Positions
    from optscan.store.ratelimit import RedisTokenBucket
    from optscan.store.results import ResultStore
    from optscan.store.savedrules import Defaults, SavedRules
    from optscan.store.throttle import Throttle
    from optscan.store.watchlist import Watchlist
    from optscan.store.yahoomemo import YahooMemo

log = logging.getLogger(__name__)

csrf = CSRFProtect()


class Services:
    """Build each client once, on first use, from validated settings."""

    def __init__(self, settings: Settings, instance_path: Path, clock: Clock = system_clock):
        self.settings = settings
        self.instance_path = instance_path
        self.clock = clock
        self._defaults: tuple[str, Defaults] | None = None  # (Redis stamp, defaults)

    @cached_property
    def redis(self) -> redis.Redis:
        """Return the shared Redis client (starting the embedded server when needed)."""
        from optscan.store.redisserver import connect

        return connect(self.settings.redis_url, self.instance_path)

    def database(self, name: str) -> Path | str:
        """Return where store `name` keeps its tables: DATABASE_URL, else a SQLite file here."""
        # One file per store in the instance folder: SQLite has one writer per file, so a
        # busy store never holds up another. One shared database when the URL is set.
        return self.settings.database_url or self.instance_path / f"{name}.sqlite3"

    @cached_property
    def watchlist(self) -> Watchlist:
        """Return the durable watchlist, opened on first use (a scan of named symbols never)."""
        from optscan.store.watchlist import Watchlist

        return Watchlist(self.database("watchlist"), lazy=True)

    @cached_property
    def history(self) -> HistoryStore:
        """Return the durable scan history, opened on first use."""
        from optscan.store.history import HistoryStore

        return HistoryStore(
            self.database("history"),
            clock=self.clock,
            retention_days=self.settings.history_retention_days,
            matches_per_symbol=self.settings.history_matches_per_symbol,
            lazy=True,
        )

    @cached_property
    def positions(self) -> Positions:
        """Return the durable books (positions and cash), opened on first use."""
        from optscan.store.positions import Positions

        return Positions(self.database("positions"), clock=self.clock)

    @cached_property
    def saved_rules(self) -> SavedRules:
        """Return the store of the rules saved as default on the page."""
        from optscan.store.savedrules import SavedRules

        return SavedRules(self.database("rules"), clock=self.clock)

    @property
    def _rules_stamp_key(self) -> str:
        return f"{self.settings.redis_prefix}rules:stamp"

    def defaults(self) -> Defaults:
        """Return the rules scans use unless told otherwise: the environment's, then the saved."""
        # Another process or host may have saved new ones: every save bumps a stamp in Redis,
        # and the database is read again only when the stamp moved (a page asks on each view).
        import redis

        try:
            stamp = self.redis.get(self._rules_stamp_key) or "0"
        except redis.RedisError:
            stamp = None
        cached = self._defaults
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        found = self.saved_rules.defaults(self.settings.rules)
        self._defaults = None if stamp is None else (stamp, found)
        return found

    def save_default_rules(self, rules: Rules | None) -> None:
        """Save `rules` as the default (None: forget the saved ones) for every process."""
        if rules is None:
            self.saved_rules.clear()
        else:
            self.saved_rules.save(rules)
        self._defaults = None
        self.redis.incr(self._rules_stamp_key)

    @cached_property
    def calendar(self) -> MarketCalendar:
        """Return the NYSE calendar, its range around the app clock's date."""
        return MarketCalendar(clock=self.clock)

    @cached_property
    def store(self) -> ResultStore:
        """Return the results store."""
        from optscan.store.results import ResultStore

        return ResultStore(self.redis, self.settings.redis_prefix)

    @cached_property
    def events(self) -> ScanEvents:
        """Return the scan-event publisher and state snapshot."""
        from optscan.store.events import ScanEvents

        return ScanEvents(self.redis, self.settings.redis_prefix)

    @cached_property
    def passwords(self) -> PasswordStore:
        """Return the admin password's hash store."""
        from optscan.store.passwords import PasswordStore

        return PasswordStore(self.instance_path / "password_hash", self.settings.password_hash)

    @cached_property
    def scan_triggers(self) -> Throttle:
        """Return the per-client limit on started scans."""
        limit, window = self.settings.scan_trigger_limit, self.settings.scan_trigger_window_seconds
        return self._throttle("scan", limit, window)

    @cached_property
    def failed_logins(self) -> Throttle:
        """Return the per-client limit on failed logins (15-minute window)."""
        return self._throttle("login", self.settings.login_attempt_limit, 900)

    def _throttle(self, what: str, limit: int, window_seconds: int) -> Throttle:
        from optscan.store.throttle import Throttle

        key = f"{self.settings.redis_prefix}throttle:{what}:"
        return Throttle(self.redis, key, limit=limit, window_seconds=window_seconds)

    @property
    def lock_key(self) -> str:
        """Return the Redis key of the one-scan-at-a-time lock."""
        return f"{self.settings.redis_prefix}scan:lock"

    @cached_property
    def yahoo_limiter(self) -> RedisTokenBucket:
        """Return the Yahoo request bucket shared through Redis by every optscan process."""
        return self._bucket("yahoo", self.settings.yahoo_rate_per_second, self.settings.yahoo_burst)

    @cached_property
    def cboe_limiter(self) -> RedisTokenBucket:
        """Return the Cboe request bucket, shared like Yahoo's but apart from it."""
        return self._bucket("cboe", self.settings.cboe_rate_per_second, self.settings.cboe_burst)

    def _bucket(self, vendor: str, rate: float, burst: int) -> RedisTokenBucket:
        from optscan.store.ratelimit import RedisTokenBucket

        key = f"{self.settings.redis_prefix}{vendor}:bucket"
        return RedisTokenBucket(self.redis, key, rate=rate, burst=burst)

    def fetch_policy(self, vendor: str = "yahoo") -> FetchPolicy:
        """Return the configured pacing, retries and circuit breaker for a vendor's requests.

        Each vendor has its own bucket, so that one's breaker pause never holds the other's
        requests back; retries, backoff and the breaker follow the same settings.
        """
        from optscan.sources import FetchPolicy

        settings = self.settings
        return FetchPolicy(
            limiter=self.cboe_limiter if vendor == "cboe" else self.yahoo_limiter,
            max_retries=settings.yahoo_max_retries,
            backoff_base=settings.yahoo_backoff_base_seconds,
            backoff_cap=settings.yahoo_backoff_cap_seconds,
            breaker_threshold=settings.yahoo_breaker_threshold,
            breaker_pause=settings.yahoo_breaker_pause_seconds,
        )

    @cached_property
    def yahoo_memo(self) -> YahooMemo:
        """Return what Yahoo said about symbols: calendar dates per New York day, unknown ones."""
        from optscan.store.yahoomemo import YahooMemo

        return YahooMemo(
            self.redis,
            self.settings.redis_prefix,
            today=lambda: self.clock().astimezone(NEW_YORK).date(),
            clock=self.clock,
        )

    def new_source(self) -> OptionSource:
        """Return a fresh source: its per-scan memo and circuit breaker must not outlive a scan."""
        from optscan.sources import make_source, split_spec

        kinds = {kind for kind, _ in split_spec(self.settings.source)}
        live = bool(kinds & {"yahoo", "cboe"})
        return make_source(
            self.settings.source,
            cache_dir=self.instance_path / "yfinance-cache",
            timeout=self.settings.fetch_timeout_seconds,
            policy=self.fetch_policy() if "yahoo" in kinds else None,
            memo=self.yahoo_memo if live else None,
            cboe_policy=self.fetch_policy("cboe") if "cboe" in kinds else None,
        )

    def scan_env(self) -> ScanEnv:
        """Return what one scan needs, with a fresh source."""
        from optscan.core.scan import ScanEnv

        return ScanEnv(
            source=self.new_source(),
            watchlist=self.watchlist,
            calendar=self.calendar,
            rules=self.defaults().rules,
            risk_free_rate=self.settings.risk_free_rate,
            wide_spread_pct=self.settings.wide_spread_pct,
            clock=self.clock,
            store=self.store,
            concurrency=self.settings.scan_concurrency,
            iv_history=self.history,
        )

    def scan_lock(self, holder: dict[str, Any]) -> ScanLock:
        """Return an untaken scan lock that will describe its holder."""
        from optscan.store.lock import ScanLock

        return ScanLock(
            self.redis, self.lock_key, ttl=self.settings.lock_ttl_seconds, holder=holder
        )

    def remove_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Remove symbols from the watchlist and their rows from the results board."""
        removed = self.watchlist.remove(symbols)
        import redis

        from optscan.store.redisserver import RedisUnavailable

        try:
            self.store.forget(removed)
        except (redis.RedisError, RedisUnavailable) as exc:
            # The watchlist is the record; rows left behind stay marked stale, nothing breaks.
            log.warning("rows of %s not removed from the results: %s", ", ".join(removed), exc)
        return removed

    def forget_call_rows(self, symbols: Iterable[str]) -> None:
        """Drop call rows priced on positions that changed or went (best effort)."""
        import redis

        from optscan.store.redisserver import RedisUnavailable

        try:
            self.store.forget_side("call", symbols)
        except (redis.RedisError, RedisUnavailable) as exc:
            # The positions are the record; the next call scan replaces the rows anyway.
            log.warning("call rows of %s not removed: %s", ", ".join(symbols), exc)

    def now(self) -> datetime:
        """Return the injected clock's time."""
        return self.clock()


def init_app(app: Flask) -> None:
    """Validate the config and attach the services to the app."""
    settings = load_settings(app.config)
    try:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"OPTSCAN_INSTANCE_PATH: cannot create the instance folder {app.instance_path}"
            f" ({exc.strerror})"
        ) from None
    app.extensions["optscan"] = Services(
        settings, Path(app.instance_path), clock=app.config.get("CLOCK") or system_clock
    )


def services(app: Flask | None = None) -> Services:
    """Return the services of the given or current app."""
    return (app or current_app).extensions["optscan"]
