"""Settings: one table of every OPTSCAN_* variable, its default and its check.

Each row names the variable (without the OPTSCAN_ prefix), its default, the check that turns a
raw value into a typed one (or raises ConfigError naming the variable) and a one-line meaning.
Defaults, validation, the typed Settings and the README's table all come from this table; rule
defaults come from `Rules` itself and their rows from the one table of rule fields
(optscan.core.rulefields), whose validation the command line and the page share; the value
checks are in optscan.configchecks. Importing this module loads neither pandas nor scipy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flask import Config

from optscan.configchecks import (
    Check,
    ConfigError,
    apprise_urls,
    choice,
    database_url,
    env_name,
    flag,
    folder,
    nonempty_text,
    number,
    password_hash,
    public_url,
    redis_url,
    secret_text,
    source_spec,
)
from optscan.core.rulefields import RULE_FIELDS, InvalidRule, RuleField, check_rules, parse_value
from optscan.core.rules import Rules
from optscan.store.history import DEFAULT_MATCHES_PER_SYMBOL, DEFAULT_RETENTION_DAYS

_RULES = Rules()


@dataclass(frozen=True)
class Setting:
    """One OPTSCAN_* variable: its default, its check and what it means."""

    key: str
    default: Any
    check: Check
    doc: str


def _rule_check(field: RuleField) -> Check:
    """Return the check of a rule's variable: the one rule validation, naming the variable."""

    def check(key: str, raw: Any) -> Any:
        try:
            return parse_value(field, raw)
        except InvalidRule as exc:
            raise ConfigError(exc.text(lambda f: f.variable)) from None

    return check


# The rules' variables, from the one table of rule fields (optscan.core.rulefields).
_RULE_SETTINGS = tuple(
    Setting(f.variable.removeprefix("OPTSCAN_"), getattr(_RULES, f.name), _rule_check(f), f.doc)
    for f in RULE_FIELDS
)


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", "development", choice("development", "production"),
            "`production` refuses to start without a strong `OPTSCAN_SECRET_KEY` and marks"
            " cookies Secure"),
    Setting("SECRET_KEY", None, secret_text,
            "Flask's secret key; in development generated once into `secret_key` in the instance"
            " folder; in production required, at least 32 characters"),
    Setting("PASSWORD_HASH", None, password_hash,
            "a hash from `flask set-password --print`; wins over the stored one"),
    Setting("SESSION_LIFETIME_DAYS", 7.0, number(0.0, 366.0, positive=True),
            "a login lasts this many days (setting or clearing the password ends every login)"),
    Setting("PUBLIC_READ", True, flag,
            "with a password set, `false` makes reading the pages need a login too"),
    Setting("SCAN_TRIGGER_LIMIT", 10, number(0, integer=True),
            "scans one client address may start per window (0: no limit)"),
    Setting("SCAN_TRIGGER_WINDOW_SECONDS", 600, number(1, 86400, integer=True), "that window"),
    Setting("LOGIN_ATTEMPT_LIMIT", 10, number(1, integer=True),
            "failed logins per client address per 15 minutes"),
    Setting("TRUSTED_PROXIES", 0, number(0, 5, integer=True),
            "reverse proxies in front whose `X-Forwarded-*` headers to trust (1 behind nginx)"),
    Setting("MAX_CONTENT_LENGTH", 65536, number(1024, 10_000_000, integer=True),
            "largest request body, bytes (larger: 413)"),
    Setting("INSTANCE_PATH", None, folder,
            "folder for the watchlist, the embedded Redis and yfinance's cache"),
    Setting("REDIS_URL", None, redis_url,
            "`redis://`, `rediss://` or `unix://` URL; unset: embedded server in the instance"
            " folder"),
    Setting("DATABASE_URL", None, database_url,
            "`postgresql://user:password@host/database`: the durable stores (the watchlist) in"
            " PostgreSQL, shared by several hosts; `sqlite:////absolute/path` also works;"
            " unset: SQLite files in the instance folder"),
    Setting("REDIS_PREFIX", "optscan:", nonempty_text,
            "prefix of every Redis key, so instances can share a server"),
    Setting("SOURCE", "yahoo", source_spec,
            "`yahoo`, `cboe`, `yahoo:<base URL>` or `cboe:<base URL>` (a compatible server),"
            " `replay:<dir>`; several separated by commas are tried in that order per symbol"
            " (`yahoo,cboe`: Cboe when Yahoo cannot serve)"),
    Setting("RISK_FREE_RATE_PCT", 4.5, number(-5.0, 50.0),
            "risk-free rate, percent per year (continuous)"),
    *_RULE_SETTINGS,
    Setting("WIDE_SPREAD_PCT", 50.0, number(0.0),
            "spread above which a contract is flagged `wide_spread`, percent of mid"),
    Setting("STALE_AFTER_MINUTES", 60, number(0.0),
            "results older than this are shown as stale"),
    Setting("LOCK_TTL_SECONDS", 10, number(5, 3600, integer=True),
            "scan lock TTL; renewed every third of it while a scan runs, so a killed scan"
            " blocks the next one at most this long"),
    Setting("SSE_HEARTBEAT_SECONDS", 15.0, number(0.05, 300),
            "comment sent on idle event streams; keep it below any proxy's read timeout"),
    Setting("SSE_RETRY_MS", 3000, number(100, 600_000, integer=True),
            "how long browsers wait before reconnecting a dropped stream"),
    Setting("FETCH_TIMEOUT_SECONDS", 10.0, number(0.1, 300.0),
            "per-request timeout towards Yahoo or Cboe, seconds (a timed-out request is retried)"),
    Setting("SCAN_CONCURRENCY", 16, number(1, 64, integer=True),
            "Yahoo requests in flight at once during a scan (1: one after another)"),
    Setting("YAHOO_RATE_PER_SECOND", 3.0, number(0.0, 1000.0, positive=True),
            "steady Yahoo requests per second, shared by every optscan process on the Redis"
            " server"),
    Setting("YAHOO_BURST", 150, number(1, 1000, integer=True),
            "requests that may leave at once after a quiet spell (the token bucket's size)"),
    Setting("YAHOO_MAX_RETRIES", 3, number(0, 10, integer=True),
            "further attempts after a 429, 5xx, timeout or dropped connection (0: none)"),
    Setting("YAHOO_BACKOFF_BASE_SECONDS", 0.5, number(0.0, 60.0),
            "retry *n* waits a random ½–1 × min(cap, base × 2^(n−1)) seconds"),
    Setting("YAHOO_BACKOFF_CAP_SECONDS", 8.0, number(0.0, 300.0), "longest backoff step"),
    Setting("YAHOO_BREAKER_THRESHOLD", 3, number(0, 1000, integer=True),
            "429s without a success in between that pause all Yahoo requests (0: never pause)"),
    Setting("YAHOO_BREAKER_PAUSE_SECONDS", 30.0, number(0.0, 3600.0),
            "length of that pause; if Yahoo still answers 429 after it, the scan stops asking"),
    Setting("CBOE_RATE_PER_SECOND", 4.0, number(0.0, 1000.0, positive=True),
            "steady Cboe requests per second (one per symbol), shared like Yahoo's; Cboe's"
            " requests follow the YAHOO_ retry, backoff and breaker settings too"),
    Setting("CBOE_BURST", 40, number(1, 1000, integer=True),
            "Cboe requests that may leave at once after a quiet spell"),
    Setting("NOTIFY_URLS", None, apprise_urls,
            "apprise URLs (space or comma separated) that get an alert on new matches after"
            " each completed scan; unset: no alerts"),
    Setting("NOTIFY_REPEAT_HOURS", 24.0, number(0.0, 8760.0),
            "a contract is alerted again only after this many hours"),
    Setting("NOTIFY_TIMEOUT_SECONDS", 10.0, number(0.1, 300.0),
            "longest time one alert may take, all its URLs together"),
    Setting("PUBLIC_URL", None, public_url,
            "the page's address as people reach it, for the link in alerts"),
    Setting("HISTORY_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, number(1, 36500, integer=True),
            "scan history older than this many days is pruned after each scan"),
    Setting("HISTORY_MATCHES_PER_SYMBOL", DEFAULT_MATCHES_PER_SYMBOL,
            number(0, 10000, integer=True),
            "matches kept in the history per symbol and scan, best annualized return first"
            " (0: none)"),
)  # fmt: skip

DEFAULTS: dict[str, Any] = {s.key: s.default for s in SETTINGS}
_RULE_KEYS = {s.key: f.name for s, f in zip(_RULE_SETTINGS, RULE_FIELDS, strict=True)}


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings the domain code takes as explicit arguments."""

    env: str
    secret_key: str | None
    password_hash: str | None
    session_lifetime_days: float
    public_read: bool
    scan_trigger_limit: int
    scan_trigger_window_seconds: int
    login_attempt_limit: int
    trusted_proxies: int
    max_content_length: int
    instance_path: str | None
    redis_url: str | None
    database_url: str | None  # a SQLAlchemy URL; None: SQLite in the instance folder
    redis_prefix: str
    source: str
    risk_free_rate: float  # FRACTION per year (the variable is in percent)
    rules: Rules
    wide_spread_pct: float
    stale_after_minutes: float
    lock_ttl_seconds: int
    sse_heartbeat_seconds: float
    sse_retry_ms: int
    fetch_timeout_seconds: float
    scan_concurrency: int
    yahoo_rate_per_second: float
    yahoo_burst: int
    yahoo_max_retries: int
    yahoo_backoff_base_seconds: float
    yahoo_backoff_cap_seconds: float
    yahoo_breaker_threshold: int
    yahoo_breaker_pause_seconds: float
    cboe_rate_per_second: float
    cboe_burst: int
    notify_urls: tuple[str, ...]
    notify_repeat_hours: float
    notify_timeout_seconds: float
    public_url: str | None
    history_retention_days: int
    history_matches_per_symbol: int


def default_config() -> dict[str, Any]:
    """Return a fresh copy of the defaults."""
    return dict(DEFAULTS)


def environment_config() -> dict[str, Any]:
    """Return the defaults overridden by REDIS_URL and every OPTSCAN_* environment variable."""
    config = Config(os.getcwd(), default_config())
    # The conventional unprefixed names; OPTSCAN_REDIS_URL and OPTSCAN_DATABASE_URL win.
    for name in ("REDIS_URL", "DATABASE_URL"):
        if os.environ.get(name):
            config[name] = os.environ[name]
    # Flask's own parser, so that the app and a start-up check read the same values.
    config.from_prefixed_env("OPTSCAN")
    return dict(config)


MIN_SECRET_LENGTH = 32
_KNOWN_WEAK = {"dev", "development", "secret", "changeme", "change-me", "default", "optscan"}


def _strong_secret_in_production(values: dict[str, Any]) -> None:
    key = values["SECRET_KEY"]
    if values["ENV"] == "production" and (
        key is None or len(key) < MIN_SECRET_LENGTH or key.lower() in _KNOWN_WEAK
    ):
        raise ConfigError(
            "OPTSCAN_SECRET_KEY must be set to a random string of at least"
            f" {MIN_SECRET_LENGTH} characters in production"
            ' (python3 -c "import secrets; print(secrets.token_hex(32))")'
        )


def _ordered(values: dict[str, Any], low: str, high: str) -> None:
    if values[high] < values[low]:
        raise ConfigError(
            f"{env_name(high)} ({values[high]}) must be >= {env_name(low)} ({values[low]})"
        )


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate a Flask config mapping and return typed settings, or raise ConfigError."""
    values = {s.key: s.check(s.key, config.get(s.key, s.default)) for s in SETTINGS}
    _ordered(values, "YAHOO_BACKOFF_BASE_SECONDS", "YAHOO_BACKOFF_CAP_SECONDS")
    _strong_secret_in_production(values)
    try:
        rules = check_rules(Rules(**{attr: values.pop(key) for key, attr in _RULE_KEYS.items()}))
    except InvalidRule as exc:
        raise ConfigError(exc.text(lambda f: f.variable)) from None
    values["RISK_FREE_RATE"] = values.pop("RISK_FREE_RATE_PCT") / 100.0
    typed = {key.lower(): value for key, value in values.items()}
    names = {f.name for f in fields(Settings)}
    return Settings(rules=rules, **{k: v for k, v in typed.items() if k in names})


def main() -> None:
    """Check the environment's settings: exit 2 with one line naming a bad value."""
    try:
        load_settings(environment_config())
    except ConfigError as exc:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
