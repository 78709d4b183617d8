"""Value checks of the settings: each turns a raw value into a typed one or raises ConfigError.

A check takes the setting's key (without the OPTSCAN_ prefix) and the raw value Flask read, so
its message can name the variable. Importing this module loads neither pandas nor scipy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class ConfigError(click.ClickException):
    """A configuration value is missing or out of range."""

    # Click prints "Error: <message>" and exits 2 when the app factory raises this for a CLI.
    exit_code = 2


Check = Callable[[str, Any], Any]


def env_name(key: str) -> str:
    """Return the environment variable a setting's key is read from."""
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
            raise ConfigError(f"{env_name(key)} must be a number, got {raw!r}")
        if integer:
            if value != int(value):
                raise ConfigError(f"{env_name(key)} must be a whole number, got {value!r}")
            value = int(value)
        if minimum is not None and value < minimum:
            raise ConfigError(f"{env_name(key)} must be at least {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{env_name(key)} must be at most {maximum}, got {value!r}")
        if positive and value <= 0:
            raise ConfigError(f"{env_name(key)} must be greater than 0, got {value!r}")
        return value if integer else float(value)

    return check


def choice(*choices: str) -> Check:
    """Return a check for one of a few words."""

    def check(key: str, raw: Any) -> str:
        if raw not in choices:
            raise ConfigError(f"{env_name(key)} must be one of {', '.join(choices)}, got {raw!r}")
        return str(raw)

    return check


def flag(key: str, raw: Any) -> bool:
    """Check a true/false value."""
    if isinstance(raw, bool):
        return raw
    raise ConfigError(f"{env_name(key)} must be true or false, got {raw!r}")


def nonempty_text(key: str, raw: Any) -> str:
    """Check a non-empty string."""
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{env_name(key)} must be a non-empty string, got {raw!r}")
    return raw


def secret_text(key: str, raw: Any) -> str | None:
    """Check an optional secret: text, since a number read from JSON has lost its digits."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(
            f"{env_name(key)} must be text; a value that reads as JSON (a number, true, null)"
            f" must be quoted: {env_name(key)}='\"...\"'"
        )
    return raw


def folder(key: str, raw: Any) -> str | None:
    """Check an optional folder: an existing, writable one or one that can be created."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{env_name(key)} must be a folder path, got {raw!r}")
    path = Path(raw)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{env_name(key)}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created in {existing}"
        raise ConfigError(f"{env_name(key)}: {path} {what}")
    return raw


def source_spec(key: str, raw: Any) -> str:
    """Check a source spec: yahoo, cboe (either with :<base URL>), replay:<an existing folder>,
    or several of them separated by commas (a fallback, tried in that order per symbol)."""
    from optscan.sources import split_spec

    try:
        parts = split_spec(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{env_name(key)} must be 'yahoo', 'yahoo:<base URL>', 'cboe', 'cboe:<base URL>' or"
            f" 'replay:<dir>', or several of them separated by commas, got {raw!r} ({exc})"
        ) from None
    for kind, argument in parts:
        if kind == "replay" and not Path(argument).is_dir():
            problem = "is not a folder" if Path(argument).exists() else "does not exist"
            raise ConfigError(f"{env_name(key)}: the replay folder {argument} {problem}")
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
        f"{env_name(key)} must be a postgresql://user:password@host/database or"
        f" sqlite:////absolute/path URL, got {got}"
    )


def password_hash(key: str, raw: Any) -> str | None:
    """Check an optional werkzeug password hash ("scrypt:32768:8:1$salt$hash")."""
    if not raw:
        return None
    plain = f"{env_name(key)} must be a hash made by `flask set-password --print`"
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
        raise ConfigError(f"{env_name(key)} must be apprise URLs, got {raw!r}")
    from optscan.notify.send import split_urls, unusable_url

    urls = split_urls(raw)
    for number, url in enumerate(urls, 1):
        # Only the scheme is repeated: the rest of an apprise URL may hold a token or password.
        if (why := unusable_url(url)) is not None:
            raise ConfigError(f"{env_name(key)}: URL {number} of {len(urls)} {why}")
    return tuple(urls)


def public_url(key: str, raw: Any) -> str | None:
    """Check an optional http:// or https:// address."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")) or " " in raw:
        raise ConfigError(f"{env_name(key)} must be an http:// or https:// address, got {raw!r}")
    return raw
