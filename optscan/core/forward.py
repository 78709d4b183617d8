"""The forward price an expiration is priced on: implied by its own chain, else spot with carry.

Put-call parity for European options, C - P = D (F - K) with D = e^{-rT}, gives the forward the
market prices in at each strike quoted on both sides: F = K + (C_mid - P_mid) / D (the forward
Cboe's VIX methodology takes). It carries whatever the market expects of dividends and borrow
costs, which a flat rate and a quoted dividend yield do not. Robustness:
- only strikes whose call and put both have a two-sided quote (bid > 0, ask >= bid) count;
- only strikes near the money count: |K/S - 1| <= band(T), or the listed strike next to spot on
  either side; deep in-the-money legs have wide spreads and (for American options)
  early-exercise value, which parity ignores;
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from optscan.core.expiry import years_to_expiry
from optscan.sources.base import Chain, Contracts

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


def two_sided_mid(bid: NDArray[np.float64], ask: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return each contract's mid price, NaN without a two-sided quote (bid > 0, ask >= bid)."""
    return np.where((bid > 0) & (ask >= bid), 0.5 * (bid + ask), np.nan)  # NaN compares False


def fallback_forward(spot: float, t_years: float, rate: float, dividend_yield: float) -> Forward:
    """Return spot carried at the rate less the dividend yield, S e^{(r - q) T}."""
    carry = rate - dividend_yield
    return Forward(spot * math.exp(carry * max(t_years, 0.0)), carry, "fallback", 0)


def implied_forward(chain: Chain, rate: float) -> Forward:
    """Return the forward of one expiration: implied near the money, else the fallback one."""
    return implied_forwards([chain], rate)[0]


def implied_forwards(chains: Sequence[Chain], rate: float) -> list[Forward]:
    """Return each chain's forward: implied near the money, else the fallback one.

    One vectorised pass over all the chains finds the near-the-money two-sided quotes; the
    few it finds are paired up per chain in Python.
    """
    times = [years_to_expiry(chain.quote.as_of, chain.expiration) for chain in chains]
    spots = [chain.quote.price for chain in chains]
    widths = [band(t) for t in times]
    call_quotes = _near_quotes([c.calls for c in chains], spots, widths)
    put_quotes = dict(_near_quotes([c.puts for c in chains], spots, widths))
    candidates: list[list[tuple[float, float]]] = [[] for _ in chains]
    for key, call_mid in call_quotes:
        put_mid = put_quotes.get(key)
        if put_mid is None:
            continue
        n, strike = key
        spot, t = spots[n], times[n]
        implied = strike + (call_mid - put_mid) * math.exp(rate * t)
        if abs(implied / spot - 1.0) <= widths[n]:
            candidates[n].append((abs(strike - spot), implied))
    forwards = []
    for chain, t, spot, found in zip(chains, times, spots, candidates, strict=True):
        if found and t > 0 and spot > 0:
            nearest = [implied for _, implied in sorted(found)[:PAIRS]]
            forward = statistics.median(nearest)
            forwards.append(Forward(forward, math.log(forward / spot) / t, "market", len(nearest)))
        else:
            forwards.append(fallback_forward(spot, t, rate, chain.quote.dividend_yield))
    return forwards


def _near_quotes(
    sides: Sequence[Contracts], spots: Sequence[float], widths: Sequence[float]
) -> list[tuple[tuple[int, float], float]]:
    """Return ((chain number, strike), mid) of the two-sided quotes near the money.

    Near the money: |K/S - 1| <= width, or the listed strike next to spot on either side (a
    stock of a few dollars may list no strike within a percent or two of its price).
    """
    sizes = np.array([len(side) for side in sides])
    strike = np.concatenate([side.strike for side in sides])
    bid = np.concatenate([side.bid for side in sides])
    ask = np.concatenate([side.ask for side in sides])
    distance = strike / np.repeat(spots, sizes) - 1.0
    near = np.abs(distance) <= np.repeat(widths, sizes)
    filled = np.flatnonzero(sizes)
    if filled.size:
        starts = (np.cumsum(sizes) - sizes)[filled]
        for gap in (
            np.where(distance >= 0, distance, np.inf),
            np.where(distance <= 0, -distance, np.inf),
        ):
            closest = np.full(len(sides), np.inf)
            closest[filled] = np.minimum.reduceat(gap, starts)
            near |= (gap == np.repeat(closest, sizes)) & np.isfinite(gap)
    # NaN compares False: a missing bid or ask is no two-sided quote.
    index = np.flatnonzero(near & (bid > 0) & (ask >= bid))
    chain_of = np.repeat(np.arange(len(sides)), sizes)[index].tolist()
    mids = (0.5 * (bid[index] + ask[index])).tolist()
    return list(zip(zip(chain_of, strike[index].tolist(), strict=True), mids, strict=True))
