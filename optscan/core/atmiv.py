"""At-the-money IV per expiration, and a 30-day IV interpolated from them.

Units: IVs are FRACTIONS per year (0.25 = 25 %); times are ACT/365 years to the 16:00 New York
close on expiry (core/expiry.py); 30 days are CALENDAR days, 30/365 of a year.

- ATM IV of an expiration: the IV at its forward (the one its rows were priced on), linear in
  log-strike between the two listed strikes nearest the forward on either side. Only IVs solved
  from a two-sided mid count (not the vendor's, not those of rows the screen found unusable); an
  expiration without such a strike on both sides of its forward (or at it) has none.
- 30-day IV: total variance w(T) = IV^2 T, linear in T between the two expirations that bracket
  30 days, then IV30 = sqrt(w(T30) / T30). Outside them it is flat: the ATM IV of the nearest
  expiration to 30 days (with the default 28-day horizon, the last one scanned).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from optscan.core.chain import ChainRows
    from optscan.core.models import SymbolReport

log = logging.getLogger(__name__)

IV30_YEARS = 30 / 365


def atm_iv(strikes: np.ndarray, ivs: np.ndarray, forward: float) -> float | None:
    """Return the IV at `forward`, linear in log-strike between the strikes around it."""
    usable = np.isfinite(strikes) & np.isfinite(ivs) & (strikes > 0)
    k, v = strikes[usable], ivs[usable]
    if not k.size or not forward > 0:
        return None
    order = np.argsort(k)
    k, v = k[order], v[order]
    at = np.flatnonzero(k == forward)
    if at.size:
        return float(v[at[0]])
    above = int(np.searchsorted(k, forward))
    if above == 0 or above == k.size:
        return None  # every strike on one side: no bracket, and no guessing beyond it
    k1, k2, v1, v2 = k[above - 1], k[above], v[above - 1], v[above]
    weight = math.log(forward / k1) / math.log(k2 / k1)
    return float(v1 + weight * (v2 - v1))


def atm_ivs(rows: ChainRows) -> dict[date, tuple[float, float]]:
    """Return {expiration: (years to expiry, ATM IV)} of the expirations that have one."""
    found: dict[date, tuple[float, float]] = {}
    solved = rows.iv_from_mid & np.isfinite(rows.iv)
    for expiration, forward in rows.forwards.items():
        mine = rows.expiration == expiration
        if not mine.any():
            continue
        t_years = float(rows.t_years[np.flatnonzero(mine)[0]])
        keep = mine & solved
        iv = atm_iv(rows.strike[keep], rows.iv[keep], forward.forward)
        if iv is not None and t_years > 0:
            found[expiration] = (t_years, iv)
    return found


def iv30(points: Mapping[date, tuple[float, float]]) -> float | None:
    """Return the 30-day IV from {expiration: (years, ATM IV)}, None without any point."""
    curve = sorted(points.values())
    if not curve:
        return None
    if curve[0][0] >= IV30_YEARS:
        return curve[0][1]
    if curve[-1][0] <= IV30_YEARS:
        return curve[-1][1]
    above = next(i for i, (t, _) in enumerate(curve) if t >= IV30_YEARS)
    (t1, v1), (t2, v2) = curve[above - 1], curve[above]
    w1, w2 = v1 * v1 * t1, v2 * v2 * t2
    w = w1 + (w2 - w1) * (IV30_YEARS - t1) / (t2 - t1)
    return math.sqrt(w / IV30_YEARS) if w > 0 else None


def measure_iv(report: SymbolReport, rows: ChainRows) -> None:
    """Set a symbol report's ATM IV per expiration and its 30-day IV (none when they fail)."""
    try:
        points = atm_ivs(rows)
    except Exception:  # a figure to show, not worth the symbol's rows
        log.exception("ATM IV of %s failed", rows.symbol)
        return
    report.atm_iv = {day.isoformat(): iv for day, (_, iv) in sorted(points.items())}
    report.iv30 = iv30(points)
