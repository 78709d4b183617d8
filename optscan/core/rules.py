"""Selection rules: which analysed contracts are worth selling, and how many to show.

Each field of `Rules` is described once, in `optscan.core.rulefields.RULE_FIELDS`: its label,
unit, bounds, environment variable, command-line flag and place on the page's form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from optscan.core.match import Side

if TYPE_CHECKING:
    from optscan.core.chain import ChainRows


@dataclass(frozen=True)
class Rules:
    """Thresholds for a scan; returns are PERCENT per year, deltas are signed BSM deltas."""

    put_min_return_pct: float = 30.0
    put_max_delta: float = 0.20  # bound on |delta|: keep puts with delta >= -put_max_delta
    call_min_return_pct: float = 20.0
    call_delta_base: float = 0.20
    call_delta_step: float = 0.04
    call_delta_cap: float = 0.36
    call_max_delta: float | None = None  # fixed bound replacing the DTE-growing target
    min_dte: int = 1  # calendar days; 1 leaves out same-day expiries
    horizon_days: int = 28  # the maximum DTE: expirations within this many calendar days
    min_open_interest: int = 0
    min_volume: int = 0
    max_spread_pct: float | None = None
    exclude_earnings: bool = False  # drop contracts with an earnings report before expiry
    exclude_ex_dividend: bool = (
        False  # calls: drop contracts with an ex-dividend date before expiry
    )
    calls_below_basis: bool = False  # calls: also strikes below the cost basis
    calls_unowned: bool = False  # calls: also watchlist symbols not held, priced at spot
    top_n: int = 3  # rows shown per symbol, best annualized return first; 0: all (kept: all)
    # Minimum IV rank, PERCENT 0-100 (IV rank itself is a FRACTION; see core/ivrank.py): a
    # symbol ranked below it keeps no rows; one with too little history is not filtered.
    min_iv_rank: float | None = None

    def min_return_pct(self, side: Side) -> float:
        """Return the minimum annualized return, in percent, for a side."""
        return self.put_min_return_pct if side == "put" else self.call_min_return_pct

    def overridden(
        self, side: Side, *, min_return_pct: float | None = None, max_delta: float | None = None
    ) -> Rules:
        """Return these rules with one run's overrides for a side applied."""
        rules = self
        if min_return_pct is not None and side == "put":
            rules = replace(rules, put_min_return_pct=float(min_return_pct))
        elif min_return_pct is not None:
            rules = replace(rules, call_min_return_pct=float(min_return_pct))
        if max_delta is not None and side == "put":
            rules = replace(rules, put_max_delta=abs(float(max_delta)))
        elif max_delta is not None:
            rules = replace(rules, call_max_delta=abs(float(max_delta)))
        return rules

    def describe(self, side: Side) -> str:
        """Return the side's selection rule in a trader's words (top_n shows, never selects)."""
        parts = [f"annualized >= {self.min_return_pct(side):g}%"]
        if side == "put":
            parts.append(f"delta >= {-self.put_max_delta:g}")
        elif self.call_max_delta is not None:
            parts.append(f"delta <= {self.call_max_delta:g}")
        else:
            parts.append(
                f"delta <= {self.call_delta_base:g} (+{self.call_delta_step:g}/week past 7 days,"
                f" at most {self.call_delta_cap:g})"
            )
        parts.append(f"DTE {self.min_dte}-{self.horizon_days}")
        if self.min_open_interest:
            parts.append(f"OI >= {self.min_open_interest}")
        if self.min_volume:
            parts.append(f"volume >= {self.min_volume}")
        if self.max_spread_pct is not None:
            parts.append(f"spread <= {self.max_spread_pct:g}%")
        if self.exclude_earnings:
            parts.append("no earnings before expiry")
        if side == "call":
            if self.exclude_ex_dividend:
                parts.append("no ex-dividend before expiry")
            parts.append("any strike" if self.calls_below_basis else "strike >= cost basis")
            if self.calls_unowned:
                parts.append("symbols not held priced at spot")
        if self.min_iv_rank is not None:
            parts.append(f"IV rank >= {self.min_iv_rank:g}%")
        return ", ".join(parts)


def call_delta_target(
    dte_days: ArrayLike, base: float = 0.20, step: float = 0.04, cap: float = 0.36
) -> NDArray:
    """Return the covered-call delta target: base up to 7 DTE, +step per started week, <= cap."""
    d = np.asarray(dte_days, dtype=float)
    extra_weeks = np.maximum(np.ceil((d - 7.0) / 7.0), 0.0)
    return np.minimum(base + step * extra_weeks, cap)


def delta_bound(rows: ChainRows, side: Side, rules: Rules) -> NDArray[np.float64]:
    """Return each row's delta bound: a floor for puts, a ceiling for calls."""
    if side == "put":
        return np.full(len(rows), -rules.put_max_delta)
    if rules.call_max_delta is not None:
        return np.full(len(rows), rules.call_max_delta)
    return call_delta_target(
        rows.dte, base=rules.call_delta_base, step=rules.call_delta_step, cap=rules.call_delta_cap
    )


def select(rows: ChainRows, side: Side, rules: Rules) -> NDArray[np.bool_]:
    """Return where the rows pass the side's rules; NaN never passes a bound."""
    bound = delta_bound(rows, side, rules)
    delta = rows.delta
    # Comparisons with NaN are False, so a contract missing delta or return can never pass.
    with np.errstate(invalid="ignore"):
        keep = rows.valid & (rows.annualized_return >= rules.min_return_pct(side))
        keep &= (rows.dte >= rules.min_dte) & (rows.dte <= rules.horizon_days)
        if side == "put":
            keep &= (delta >= bound) & (delta < 0)
        else:
            keep &= (delta <= bound) & (delta > 0)
        if rules.min_open_interest:
            keep &= rows.open_interest >= rules.min_open_interest
        if rules.min_volume:
            keep &= rows.volume >= rules.min_volume
        if rules.max_spread_pct is not None:
            keep &= rows.spread_pct <= rules.max_spread_pct
        if rules.exclude_earnings:
            keep &= ~rows.has_flag("earnings")
        if side == "call":
            if rules.exclude_ex_dividend:
                keep &= ~rows.has_flag("ex_dividend")
            if not rules.calls_below_basis:
                # Without a cost basis (NaN: no positions given) every strike passes.
                keep &= ~(rows.strike < rows.column("cost_basis"))
    return keep
