"""Configuration defaults and their validation into typed settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from optscan.rules import Rules

# Every key here can be set from the environment as OPTSCAN_<KEY> (Flask's from_prefixed_env
# parses the value as JSON first, so OPTSCAN_HORIZON_DAYS=21 arrives as an int).
DEFAULTS: dict[str, Any] = {
    "ENV": "development",  # "production": refuses a missing or weak SECRET_KEY, secure cookies
    "SECRET_KEY": None,  # development: generated once into the instance folder when unset
    "PASSWORD_HASH": None,  # werkzeug hash; `flask set-password` writes one to the instance folder
    "PUBLIC_READ": True,  # with a password set: False makes reading need a login too
    "SCAN_TRIGGER_LIMIT": 10,  # scans one client may start per window; 0: no limit
    "SCAN_TRIGGER_WINDOW_SECONDS": 600,
    "LOGIN_ATTEMPT_LIMIT": 10,  # failed logins per client per 15 minutes
    "TRUSTED_PROXIES": 0,  # reverse proxies in front (nginx: 1) whose X-Forwarded-* to trust
    "MAX_CONTENT_LENGTH": 65536,  # bytes; forms here are tiny
    "INSTANCE_PATH": None,  # None: Flask's instance folder beside the package
    "REDIS_URL": None,  # None: the embedded Redis server in the instance folder
    "REDIS_PREFIX": "optscan:",
    "SOURCE": "yahoo",  # "yahoo" or "replay:<dir>"
    "RISK_FREE_RATE_PCT": 4.5,  # percent per year, continuous compounding
    "PUT_MIN_RETURN_PCT": 30.0,
    "PUT_MAX_DELTA": 0.20,  # bound on |delta|: puts need delta >= -0.20
    "CALL_MIN_RETURN_PCT": 20.0,
    "CALL_DELTA_BASE": 0.20,  # call delta target up to 7 days to expiry
    "CALL_DELTA_STEP": 0.04,  # added per further (started) week
    "CALL_DELTA_CAP": 0.36,
    "HORIZON_DAYS": 28,  # calendar days ahead: expirations within the next 4 weeks
    "MIN_OPEN_INTEREST": 0,
    "MIN_VOLUME": 0,
    "MAX_SPREAD_PCT": None,  # percent of mid; None: no spread filter
    "WIDE_SPREAD_PCT": 50.0,  # percent of mid above which a contract is flagged wide_spread
    "STALE_AFTER_MINUTES": 60,
    "LOCK_TTL_SECONDS": 60,
    "SSE_HEARTBEAT_SECONDS": 15,  # comment sent on idle streams; keep below proxies' read timeout
    "SSE_RETRY_MS": 3000,  # browsers' reconnect delay after a dropped stream
    "FETCH_TIMEOUT_SECONDS": 10.0,
    # Scans and Yahoo pacing (README, Configuration, says why these values). Yahoo publishes
    # no limits: a 26-symbol scan (~130 requests) fits in one burst; repeats are paced at 3/s.
    "SCAN_CONCURRENCY": 16,  # source calls in flight at once
    "YAHOO_RATE_PER_SECOND": 3.0,  # steady requests per second, all processes together
    "YAHOO_BURST": 150,  # requests that may leave at once after a quiet spell
    "YAHOO_MAX_RETRIES": 3,  # further attempts after a 429, 5xx, timeout or dropped connection
    "YAHOO_BACKOFF_BASE_SECONDS": 0.5,  # first retry after 0.25-0.5 s, then doubling...
    "YAHOO_BACKOFF_CAP_SECONDS": 8.0,  # ...up to 4-8 s
    "YAHOO_BREAKER_THRESHOLD": 3,  # 429s in a row that pause all requests; 0: never pause
    "YAHOO_BREAKER_PAUSE_SECONDS": 30.0,
}


class ConfigError(click.ClickException):
    """A configuration value is missing or out of range."""

    # Click prints "Error: <message>" and exits 2 when the app factory raises this for a CLI.
    exit_code = 2


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings the domain code takes as explicit arguments."""

    redis_url: str | None
    redis_prefix: str
    source: str
    risk_free_rate: float  # FRACTION per year (config is in percent)
    rules: Rules
    wide_spread_pct: float
    stale_after_minutes: float
    lock_ttl_seconds: int
    fetch_timeout_seconds: float
    scan_concurrency: int = 16
    yahoo_rate_per_second: float = 3.0
    yahoo_burst: int = 150
    yahoo_max_retries: int = 3
    yahoo_backoff_base_seconds: float = 0.5
    yahoo_backoff_cap_seconds: float = 8.0
    yahoo_breaker_threshold: int = 3
    yahoo_breaker_pause_seconds: float = 30.0
    env: str = "development"
    password_hash: str | None = None
    public_read: bool = True
    scan_trigger_limit: int = 10
    scan_trigger_window_seconds: int = 600
    login_attempt_limit: int = 10
    trusted_proxies: int = 0


def default_config() -> dict[str, Any]:
    """Return a fresh copy of the defaults."""
    return dict(DEFAULTS)


def _number(
    config: Mapping[str, Any],
    key: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    value = config.get(key)
    if value is None and optional:
        return None
    if isinstance(value, str):
        # from_prefixed_env leaves values that are not JSON as strings: "30%" or "abc".
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"OPTSCAN_{key} must be a number, got {config.get(key)!r}")
    if integer:
        if value != int(value):
            raise ConfigError(f"OPTSCAN_{key} must be a whole number, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"OPTSCAN_{key} must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"OPTSCAN_{key} must be at most {maximum}, got {value!r}")
    return value


def _positive(config: Mapping[str, Any], key: str, *, maximum: float) -> float:
    value = _number(config, key, minimum=0.0, maximum=maximum)
    if value <= 0:
        raise ConfigError(f"OPTSCAN_{key} must be greater than 0, got {value!r}")
    return float(value)


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate a Flask config mapping and return typed settings, or raise ConfigError."""
    source = config.get("SOURCE")
    kind, _, argument = source.partition(":") if isinstance(source, str) else ("", "", "")
    if not (
        source == "yahoo"
        or (kind == "replay" and argument)
        or (kind == "yahoo" and argument.startswith(("http://", "https://")))
    ):
        raise ConfigError(
            f"OPTSCAN_SOURCE must be 'yahoo', 'yahoo:<base URL>' or 'replay:<dir>', got {source!r}"
        )
    prefix = config.get("REDIS_PREFIX")
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"OPTSCAN_REDIS_PREFIX must be a non-empty string, got {prefix!r}")
    redis_url = config.get("REDIS_URL") or None
    if redis_url is not None and (
        not isinstance(redis_url, str)
        or not redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ConfigError(
            f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}"
        )
    base = _number(config, "CALL_DELTA_BASE", minimum=0.0, maximum=1.0)
    cap = _number(config, "CALL_DELTA_CAP", minimum=0.0, maximum=1.0)
    if cap < base:
        raise ConfigError(
            f"OPTSCAN_CALL_DELTA_CAP ({cap}) must be >= OPTSCAN_CALL_DELTA_BASE ({base})"
        )
    rules = Rules(
        put_min_return_pct=_number(config, "PUT_MIN_RETURN_PCT", minimum=0.0),
        put_max_delta=_number(config, "PUT_MAX_DELTA", minimum=0.0, maximum=1.0),
        call_min_return_pct=_number(config, "CALL_MIN_RETURN_PCT", minimum=0.0),
        call_delta_base=base,
        call_delta_step=_number(config, "CALL_DELTA_STEP", minimum=0.0, maximum=1.0),
        call_delta_cap=cap,
        horizon_days=_number(config, "HORIZON_DAYS", minimum=0, maximum=730, integer=True),
        min_open_interest=_number(config, "MIN_OPEN_INTEREST", minimum=0, integer=True),
        min_volume=_number(config, "MIN_VOLUME", minimum=0, integer=True),
        max_spread_pct=_number(config, "MAX_SPREAD_PCT", minimum=0.0, optional=True),
    )
    backoff_base = _number(config, "YAHOO_BACKOFF_BASE_SECONDS", minimum=0.0, maximum=60.0)
    backoff_cap = _number(config, "YAHOO_BACKOFF_CAP_SECONDS", minimum=0.0, maximum=300.0)
    if backoff_cap < backoff_base:
        raise ConfigError(
            f"OPTSCAN_YAHOO_BACKOFF_CAP_SECONDS ({backoff_cap}) must be >="
            f" OPTSCAN_YAHOO_BACKOFF_BASE_SECONDS ({backoff_base})"
        )
    return Settings(
        redis_url=redis_url,
        redis_prefix=prefix,
        source=source,
        risk_free_rate=_number(config, "RISK_FREE_RATE_PCT", minimum=-5.0, maximum=50.0) / 100.0,
        rules=rules,
        wide_spread_pct=_number(config, "WIDE_SPREAD_PCT", minimum=0.0),
        stale_after_minutes=_number(config, "STALE_AFTER_MINUTES", minimum=0.0),
        lock_ttl_seconds=_number(config, "LOCK_TTL_SECONDS", minimum=5, maximum=3600, integer=True),
        fetch_timeout_seconds=_number(config, "FETCH_TIMEOUT_SECONDS", minimum=0.1, maximum=300.0),
        scan_concurrency=_number(config, "SCAN_CONCURRENCY", minimum=1, maximum=64, integer=True),
        yahoo_rate_per_second=_positive(config, "YAHOO_RATE_PER_SECOND", maximum=1000.0),
        yahoo_burst=_number(config, "YAHOO_BURST", minimum=1, maximum=1000, integer=True),
        yahoo_max_retries=_number(config, "YAHOO_MAX_RETRIES", minimum=0, maximum=10, integer=True),
        yahoo_backoff_base_seconds=backoff_base,
        yahoo_backoff_cap_seconds=backoff_cap,
        yahoo_breaker_threshold=_number(
            config, "YAHOO_BREAKER_THRESHOLD", minimum=0, maximum=1000, integer=True
        ),
        yahoo_breaker_pause_seconds=_number(
            config, "YAHOO_BREAKER_PAUSE_SECONDS", minimum=0.0, maximum=3600.0
        ),
        env=_choice(config, "ENV", ("development", "production")),
        public_read=_flag(config, "PUBLIC_READ"),
        password_hash=_password_hash(config),
        scan_trigger_limit=_number(config, "SCAN_TRIGGER_LIMIT", minimum=0, integer=True),
        scan_trigger_window_seconds=_number(
            config, "SCAN_TRIGGER_WINDOW_SECONDS", minimum=1, maximum=86400, integer=True
        ),
        login_attempt_limit=_number(config, "LOGIN_ATTEMPT_LIMIT", minimum=1, integer=True),
        trusted_proxies=_number(config, "TRUSTED_PROXIES", minimum=0, maximum=5, integer=True),
    )


def _choice(config: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = config.get(key)
    if value not in choices:
        raise ConfigError(f"OPTSCAN_{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _password_hash(config: Mapping[str, Any]) -> str | None:
    value = config.get("PASSWORD_HASH") or None
    # werkzeug hashes look like "scrypt:32768:8:1$salt$hash" or "pbkdf2:sha256:...$...$...".
    if value is not None and (not isinstance(value, str) or value.count("$") != 2):
        raise ConfigError(
            "OPTSCAN_PASSWORD_HASH must be a hash made by `flask set-password --print`,"
            " not a plain password"
        )
    return value


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key)
    if isinstance(value, bool):
        return value
    raise ConfigError(f"OPTSCAN_{key} must be true or false, got {value!r}")
