"""The forward price an expiration is priced on: implied by its own chain, else spot with carry.

Put-call parity for European options, C - P = D (F - K) with D = e^{-rT}, gives the forward the
market prices in at each strike quoted on both sides: F = K + (C_mid - P_mid) / D (the forward
Cboe's VIX methodology takes). It carries whatever the market expects of dividends and borrow
costs, which a flat rate and a quoted dividend yield do not. Robustness:
- only strikes whose call and put both have a two-sided quote (bid > 0, ask >= bid) count;
- only strikes near the money, |K/S - 1| <= band(T), count: deep in-the-money legs have wide
  spreads and (for American options) early-exercise value, which parity ignores;
- each strike's forward must itself lie within the band around spot, |F/S - 1| <= band(T);
- the forward is the median over the PAIRS strikes nearest to spot among those left.
When no strike qualifies, the forward is spot carried at the rate less the quote's dividend
yield, S e^{(r - q) T}, and the expiration is marked as a fallback.

Units: forward and spot USD; carry = ln(F/S) / T, a FRACTION per year, continuous (for a market
forward: rate - dividend yield - borrow cost); rate and dividend yield FRACTIONS per year.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from optscan.sources.base import Contracts

PAIRS = 3  # strikes the median is taken over
# band(T) = max(BAND_FLOOR, BAND_PER_SQRT_YEAR * sqrt(T)): how far from spot (a fraction of it)
# a strike and its forward may lie. The floor leaves room for a spot a little stale against the
# options' quotes on the last day; sqrt(T) scales it like the spread of prices by expiry.
BAND_FLOOR = 0.02
BAND_PER_SQRT_YEAR = 0.5

ForwardSource = Literal["market", "fallback"]


@dataclass(frozen=True)
class Forward:
    """The forward one expiration is priced on, and where it comes from."""

    forward: float  # USD per share
    carry: float  # ln(forward / spot) / T: FRACTION per year, continuous
    source: ForwardSource  # market: put-call parity on the chain; fallback: spot and yield
    pairs: int  # put-call pairs the median was taken over (0 for a fallback)

    def to_dict(self) -> dict[str, Any]:
        """Return the forward as JSON-ready data."""
        return {
            "forward": self.forward,
            "carry": self.carry,
            "source": self.source,
            "pairs": self.pairs,
        }


def band(t_years: float) -> float:
    """Return how far from spot, as a fraction of it, a strike or forward may lie at T."""
    return max(BAND_FLOOR, BAND_PER_SQRT_YEAR * math.sqrt(max(t_years, 0.0)))


def two_sided_mid(contracts: Contracts) -> NDArray[np.float64]:
    """Return each contract's mid price, NaN without a two-sided quote (bid > 0, ask >= bid)."""
    bid, ask = contracts.bid, contracts.ask
    with np.errstate(invalid="ignore"):
        quoted = (bid > 0) & (ask >= bid)
    return np.where(quoted, 0.5 * (bid + ask), np.nan)


def fallback_forward(spot: float, t_years: float, rate: float, dividend_yield: float) -> Forward:
    """Return spot carried at the rate less the dividend yield, S e^{(r - q) T}."""
    carry = rate - dividend_yield
    return Forward(spot * math.exp(carry * max(t_years, 0.0)), carry, "fallback", 0)


def implied_forward(
    calls: Contracts,
    puts: Contracts,
    spot: float,
    t_years: float,
    rate: float,
    dividend_yield: float,
) -> Forward:
    """Return the forward put-call parity implies near the money, else the fallback one."""
    if not (t_years > 0 and spot > 0) or calls.empty or puts.empty:
        return fallback_forward(spot, t_years, rate, dividend_yield)
    width = band(t_years)
    growth = math.exp(rate * t_years)  # 1 / D
    # Few strikes lie within the band: match them in Python, cheaper than set operations.
    put_mids = dict(_near(puts, spot, width))
    candidates = []  # (distance of the strike to spot, forward implied there)
    for strike, call_mid in _near(calls, spot, width):
        put_mid = put_mids.get(strike)
        if put_mid is not None:
            implied = strike + (call_mid - put_mid) * growth
            if abs(implied / spot - 1.0) <= width:
                candidates.append((abs(strike - spot), implied))
    if not candidates:
        return fallback_forward(spot, t_years, rate, dividend_yield)
    nearest = [implied for _, implied in sorted(candidates)[:PAIRS]]
    forward = statistics.median(nearest)
    return Forward(forward, math.log(forward / spot) / t_years, "market", len(nearest))


def _near(contracts: Contracts, spot: float, width: float) -> list[tuple[float, float]]:
    """Return (strike, mid) of the two-sided contracts with |K/S - 1| <= width."""
    mid = two_sided_mid(contracts)
    with np.errstate(invalid="ignore"):
        near = np.flatnonzero((np.abs(contracts.strike / spot - 1.0) <= width) & (mid == mid))
    return list(zip(contracts.strike[near].tolist(), mid[near].tolist(), strict=True))
