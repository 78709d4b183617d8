"""Configuration defaults and their validation into typed settings."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from optscan.rules import Rules

# Every key here can be set from the environment as OPTSCAN_<KEY> (Flask's from_prefixed_env
# parses the value as JSON first, so OPTSCAN_HORIZON_DAYS=21 arrives as an int).
DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": None,  # generated per process when unset; set it for multi-worker sessions
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
    "FETCH_TIMEOUT_SECONDS": 10.0,
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


def default_config() -> dict[str, Any]:
    """Return a fresh copy of the defaults with a per-process secret key."""
    config = dict(DEFAULTS)
    config["SECRET_KEY"] = secrets.token_hex(32)
    return config


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


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate a Flask config mapping and return typed settings, or raise ConfigError."""
    source = config.get("SOURCE")
    if not isinstance(source, str) or not (
        source == "yahoo" or (source.startswith("replay:") and len(source) > len("replay:"))
    ):
        raise ConfigError(f"OPTSCAN_SOURCE must be 'yahoo' or 'replay:<dir>', got {source!r}")
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
    )
