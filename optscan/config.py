"""Settings: one table of every OPTSCAN_* variable, its default and its check.

Each row names the variable (without the OPTSCAN_ prefix), its default, the check that turns a
raw value into a typed one (or raises ConfigError naming the variable) and a one-line meaning.
Defaults, validation, the typed Settings and the README's table all come from this table; rule
defaults come from `Rules` itself and their rows from the one table of rule fields
(optscan.core.rulefields), whose validation the command line and the page share. Importing this
module loads neither pandas nor scipy.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click
from flask import Config

from optscan.core.rulefields import RULE_FIELDS, InvalidRule, RuleField, check_rules, parse_value
from optscan.core.rules import Rules
from optscan.store.history import DEFAULT_MATCHES_PER_SYMBOL, DEFAULT_RETENTION_DAYS

_RULES = Rules()


class ConfigError(click.ClickException):
    """A configuration value is missing or out of range."""

    # Click prints "Error: <message>" and exits 2 when the app factory raises this for a CLI.
    exit_code = 2


Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Setting:
    """One OPTSCAN_* variable: its default, its check and what it means."""

    key: str
    default: Any
    check: Check
    doc: str


def _name(key: str) -> str:
    return key if key in ("REDIS_URL", "DATABASE_URL") else f"OPTSCAN_{key}"


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    integer: bool = False,
    optional: bool = False,
    positive: bool = False,
) -> Check:
    """Return a check for a number within [minimum, maximum] (None allowed when optional)."""

    def check(key: str, raw: Any) -> Any:
        if raw is None and optional:
            return None
        value = raw
        if isinstance(value, str):
            # from_prefixed_env leaves values that are not JSON as strings: "30%" or "abc".
            try:
                value = float(value)
            except ValueError:
                value = None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{_name(key)} must be a number, got {raw!r}")
        if integer:
            if value != int(value):
                raise ConfigError(f"{_name(key)} must be a whole number, got {value!r}")
            value = int(value)
        if minimum is not None and value < minimum:
            raise ConfigError(f"{_name(key)} must be at least {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{_name(key)} must be at most {maximum}, got {value!r}")
        if positive and value <= 0:
            raise ConfigError(f"{_name(key)} must be greater than 0, got {value!r}")
        return value if integer else float(value)

    return check


def choice(*choices: str) -> Check:
    """Return a check for one of a few words."""

    def check(key: str, raw: Any) -> str:
        if raw not in choices:
            raise ConfigError(f"{_name(key)} must be one of {', '.join(choices)}, got {raw!r}")
        return str(raw)

    return check


def flag(key: str, raw: Any) -> bool:
    """Check a true/false value."""
    if isinstance(raw, bool):
        return raw
    raise ConfigError(f"{_name(key)} must be true or false, got {raw!r}")


def nonempty_text(key: str, raw: Any) -> str:
    """Check a non-empty string."""
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{_name(key)} must be a non-empty string, got {raw!r}")
    return raw


def secret_text(key: str, raw: Any) -> str | None:
    """Check an optional secret: text, since a number read from JSON has lost its digits."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(
            f"{_name(key)} must be text; a value that reads as JSON (a number, true, null)"
            f" must be quoted: {_name(key)}='\"...\"'"
        )
    return raw


def folder(key: str, raw: Any) -> str | None:
    """Check an optional folder: an existing, writable one or one that can be created."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{_name(key)} must be a folder path, got {raw!r}")
    path = Path(raw)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{_name(key)}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created in {existing}"
        raise ConfigError(f"{_name(key)}: {path} {what}")
    return raw


def source_spec(key: str, raw: Any) -> str:
    """Check a source spec: yahoo, cboe (either with :<base URL>), replay:<an existing folder>,
    or several of them separated by commas (a fallback, tried in that order per symbol)."""
    from optscan.sources import split_spec

    try:
        parts = split_spec(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{_name(key)} must be 'yahoo', 'yahoo:<base URL>', 'cboe', 'cboe:<base URL>' or"
            f" 'replay:<dir>', or several of them separated by commas, got {raw!r} ({exc})"
        ) from None
    for kind, argument in parts:
        if kind == "replay" and not Path(argument).is_dir():
            problem = "is not a folder" if Path(argument).exists() else "does not exist"
            raise ConfigError(f"{_name(key)}: the replay folder {argument} {problem}")
    return str(raw)


def redis_url(key: str, raw: Any) -> str | None:
    """Check an optional redis://, rediss:// or unix:// URL, parsed as redis-py will."""
    if not raw:
        return None
    if not isinstance(raw, str) or not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {raw!r}")
    from redis.connection import parse_url

    try:
        parse_url(raw)
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from None
    return raw


def database_url(key: str, raw: Any) -> str | None:
    """Check an optional sqlite:// or postgresql:// URL; PostgreSQL goes through psycopg 3."""
    if not raw:
        return None
    scheme, sep, rest = raw.partition("://") if isinstance(raw, str) else ("", "", "")
    if sep and scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if sep and scheme == "sqlite" and rest.startswith("//") and rest != "//":
        return str(raw)
    # The value is not echoed: it may hold a password.
    got = f"a {scheme}:// URL" if sep else "something that is not a URL"
    raise ConfigError(
        f"{_name(key)} must be a postgresql://user:password@host/database or"
        f" sqlite:////absolute/path URL, got {got}"
    )


def password_hash(key: str, raw: Any) -> str | None:
    """Check an optional werkzeug password hash ("scrypt:32768:8:1$salt$hash")."""
    if not raw:
        return None
    plain = f"{_name(key)} must be a hash made by `flask set-password --print`"
    if not isinstance(raw, str) or raw.count("$") != 2:
        raise ConfigError(f"{plain}, not a plain password")
    from werkzeug.security import check_password_hash

    # Hashing once proves werkzeug knows the method and its parameters: a hash it cannot
    # use would otherwise surface as a 500 at the first login.
    try:
        check_password_hash(raw, "")
    except ValueError as exc:
        raise ConfigError(f"{plain}; werkzeug cannot use this one ({exc})") from None
    return raw


def apprise_urls(key: str, raw: Any) -> tuple[str, ...]:
    """Check space or comma separated apprise URLs (empty: no alerts)."""
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, str):
        raise ConfigError(f"{_name(key)} must be apprise URLs, got {raw!r}")
    from optscan.notify.send import split_urls, unusable_url

    urls = split_urls(raw)
    for number, url in enumerate(urls, 1):
        # Only the scheme is repeated: the rest of an apprise URL may hold a token or password.
        if (why := unusable_url(url)) is not None:
            raise ConfigError(f"{_name(key)}: URL {number} of {len(urls)} {why}")
    return tuple(urls)


def public_url(key: str, raw: Any) -> str | None:
    """Check an optional http:// or https:// address."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")) or " " in raw:
        raise ConfigError(f"{_name(key)} must be an http:// or https:// address, got {raw!r}")
    return raw


def _any(key: str, raw: Any) -> Any:
    return raw


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
        raise ConfigError(f"{_name(high)} ({values[high]}) must be >= {_name(low)} ({values[low]})")


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
