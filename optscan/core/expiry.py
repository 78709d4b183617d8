"""Time to expiry: the 16:00 New York close, calendar days and ACT/365 years.

Nothing here reads a clock: the capture time comes from the chain's quote.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from optscan.core.market import NEW_YORK

EXPIRY_CLOSE = time(16, 0)
SECONDS_PER_YEAR = 365 * 86400


def expiry_close(expiration: date) -> datetime:
    """Return the 16:00 America/New_York close on the expiration date (tz-aware)."""
    return datetime.combine(expiration, EXPIRY_CLOSE, tzinfo=NEW_YORK)


def _require_aware(as_of: datetime) -> None:
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware, got naive {as_of!r}")


def calendar_dte(as_of: datetime, expiration: date) -> int:
    """Return calendar days from as_of's New York date to expiration (0 or negative allowed)."""
    _require_aware(as_of)
    return (expiration - as_of.astimezone(NEW_YORK).date()).days


def years_to_expiry(as_of: datetime, expiration: date) -> float:
    """Return elapsed years (ACT/365) from as_of to the expiry close; <= 0 once expired."""
    _require_aware(as_of)
    # Subtract in UTC: two datetimes sharing one ZoneInfo subtract as wall clocks and
    # would ignore a DST switch in between.
    close_utc = expiry_close(expiration).astimezone(UTC)
    return (close_utc - as_of.astimezone(UTC)).total_seconds() / SECONDS_PER_YEAR
