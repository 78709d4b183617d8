"""The wheel's money figures: dollars per contract, sizing from cash and shares, call returns.

Units, decided here once:
- prices (strike, bid, spot, forward, cost basis) are USD PER SHARE;
- `premium` and `collateral` are USD PER CONTRACT (CONTRACT_SIZE shares);
- `contracts` is a whole number of contracts;
- names ending in `_pct` are PERCENT; `iv` is a FRACTION per year; `t_years` is ACT/365 years;
- `dte` is whole calendar days (floored at 1 when annualizing, as the annualized return is).
Nothing here reads a clock or knows where the numbers came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

CONTRACT_SIZE = 100  # shares per standard US equity option contract
DAYS_PER_YEAR = 365.0

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Holding:
    """Shares of one symbol and what was paid for them."""

    shares: int  # whole shares, >= 0
    cost_basis: float  # USD per share, > 0

    @property
    def coverable_contracts(self) -> int:
        """Return how many calls the shares cover (one contract per CONTRACT_SIZE shares)."""
        return self.shares // CONTRACT_SIZE


def _floats(values: ArrayLike) -> Floats:
    return np.asarray(values, dtype=float)


def premium(bid: ArrayLike) -> Floats:
    """Return the premium received for one contract at the bid (USD per contract, to the cent)."""
    return np.round(_floats(bid) * CONTRACT_SIZE, 2)


def put_collateral(strike: ArrayLike) -> Floats:
    """Return the cash a cash-secured put ties up (USD per contract, to the cent)."""
    return np.round(_floats(strike) * CONTRACT_SIZE, 2)


def put_contracts(strike: ArrayLike, cash: float | None) -> Floats:
    """Return how many puts the cash secures: floor(cash / collateral); NaN without cash."""
    collateral = put_collateral(strike)
    if cash is None:
        return np.full(collateral.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(collateral > 0, np.floor(cash / collateral), np.nan)


def return_if_assigned_pct(strike: ArrayLike, cost_basis: ArrayLike, bid: ArrayLike) -> Floats:
    """Return a call's total return if assigned: (strike - basis + bid) / basis x 100 (PERCENT)."""
    basis = _floats(cost_basis)
    return (_floats(strike) - basis + _floats(bid)) / basis * 100.0


def annualize_pct(return_pct: ArrayLike, dte: ArrayLike) -> Floats:
    """Return a PERCENT return over `dte` calendar days as PERCENT per year (simple, DTE >= 1)."""
    return _floats(return_pct) * DAYS_PER_YEAR / np.maximum(_floats(dte), 1.0)


def downside_protection_pct(bid: ArrayLike, spot: ArrayLike) -> Floats:
    """Return how far the premium cushions the shares: bid / spot x 100 (PERCENT)."""
    return _floats(bid) / _floats(spot) * 100.0


def expected_move(spot: ArrayLike, iv: ArrayLike, t_years: ArrayLike) -> Floats:
    """Return the one-standard-deviation move to expiry, spot x IV x sqrt(t) (USD per share)."""
    return _floats(spot) * _floats(iv) * np.sqrt(np.maximum(_floats(t_years), 0.0))


def sigma_distance(
    strike: ArrayLike, forward: ArrayLike, iv: ArrayLike, t_years: ArrayLike
) -> Floats:
    """Return how many expected moves the strike lies from the forward: |K - F| / (F IV sqrt t)."""
    f = _floats(forward)
    move = f * _floats(iv) * np.sqrt(np.maximum(_floats(t_years), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(move > 0, np.abs(_floats(strike) - f) / move, np.nan)
