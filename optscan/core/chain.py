"""From chains to rows: per-contract screening figures, flags and validity, as arrays.

analyze_chains() prices one side of one or more expirations of a symbol in one vectorised pass:
each expiration on its own forward (core/forward.py), with Black-76 for the IV from the mid,
the spot delta consistent with that forward and the probability of expiring out of the money.
ChainRows.records() turns the rows a scan keeps into Match dicts; frame() is for inspection.
The source's own IV and delta ride along (vendor_iv, vendor_delta) but price nothing, except
the vendor's IV where a contract has no two-sided quote to solve (flag yahoo_iv or cboe_iv); a
row whose delta is more than VENDOR_DELTA_TOLERANCE from the vendor's is flagged
vendor_disagrees.

Units used throughout:
- rate, dividend yield, sigma (iv): FRACTIONS per year, continuous compounding.
- t_years: ACT/365 years of wall-clock time up to the 16:00 America/New_York close on expiry.
- dte: whole CALENDAR days, counted from the New York date of the capture time.
- names ending in _pct and annualized_return are PERCENT (52.1 = 52.1 %); pop_otm a FRACTION;
  prices, forward and breakeven USD per share; the wheel's figures as core/wheel.py says.

Nothing here reads a clock: the capture time comes from the chain's quote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from optscan.core import wheel
from optscan.core.bsm import black_d1, black_implied_vol
from optscan.core.expiry import calendar_dte, expiry_close, years_to_expiry
from optscan.core.forward import Forward, implied_forwards, two_sided_mid
from optscan.core.match import INTEGER_FIELDS, MATCH_FIELDS, Match, Side
from optscan.sources.base import Chain

if TYPE_CHECKING:
    import pandas as pd

# Plausible IV band (fractions per year): outside it the number is a data error, not a market.
IV_MIN = 0.01
IV_MAX = 5.0

# Every flag a row can carry, in the order rows list them; a row holds them as bits of an int.
FLAGS = (
    "no_bid", "no_ask", "crossed", "expired", "iv_out_of_range", "yahoo_iv", "cboe_iv",
    "wide_spread", "earnings", "ex_dividend", "forward_fallback", "vendor_disagrees", "over_cash",
    "unowned", "below_basis",
)  # fmt: skip
_BIT = {name: np.uint16(1 << i) for i, name in enumerate(FLAGS)}
# The flag of a row priced on the vendor's IV (no two-sided quote), by Quote.source.
_VENDOR_IV_FLAG = {"cboe": "cboe_iv"}
DEFAULT_VENDOR_IV_FLAG = "yahoo_iv"
# |delta - vendor_delta| above which a row is flagged vendor_disagrees.
VENDOR_DELTA_TOLERANCE = 0.05
# Flags that make a row unusable for screening; the others are informational.
INVALIDATING_FLAGS = frozenset({"no_bid", "crossed", "iv_out_of_range", "expired"})

# The columns of frame(), in order.
OUTPUT_COLUMNS = (
    "symbol", "side", "expiration", "contract", "strike", "bid", "ask", "mid", "spread_pct", "dte",
    "t_years", "annualized_return", "otm_pct", "breakeven", "iv", "iv_source", "delta", "pop_otm",
    "vendor_iv", "vendor_delta", "open_interest", "volume", "forward", "spot", "premium",
    "collateral", "contracts", "cost_basis", "return_if_assigned", "return_if_assigned_annualized",
    "downside_protection", "expected_move", "sigma_distance", "earnings_date", "ex_dividend_date",
    "flags", "valid",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class ChainRows:
    """One side of a symbol's analysed contracts as parallel arrays, one entry per contract."""

    symbol: str
    side: Side
    expiration: NDArray[np.object_]  # date per row
    contract: NDArray[np.object_]  # OCC symbol (str) per row
    strike: NDArray[np.float64]
    bid: NDArray[np.float64]
    ask: NDArray[np.float64]
    mid: NDArray[np.float64]  # NaN without a two-sided quote
    spread_pct: NDArray[np.float64]
    dte: NDArray[np.int64]
    t_years: NDArray[np.float64]
    annualized_return: NDArray[np.float64]
    otm_pct: NDArray[np.float64]
    breakeven: NDArray[np.float64]
    iv: NDArray[np.float64]
    iv_from_mid: NDArray[np.bool_]  # where iv is set: solved from the mid, else the vendor's
    delta: NDArray[np.float64]
    pop_otm: NDArray[np.float64]
    vendor_iv: NDArray[np.float64]  # the source's IV, FRACTION (NaN where it gave none)
    vendor_delta: NDArray[np.float64]  # the source's delta (NaN where it gave none)
    open_interest: NDArray[np.float64]
    volume: NDArray[np.float64]
    forward: NDArray[np.float64]
    spot: NDArray[np.float64]  # USD per share, of the chain's quote
    premium: NDArray[np.float64]  # USD per contract
    collateral: NDArray[np.float64]  # puts: USD per contract; calls: NaN
    downside_protection: NDArray[np.float64]  # calls: PERCENT; puts: NaN
    expected_move: NDArray[np.float64]  # USD per share
    sigma_distance: NDArray[np.float64]
    flag_bits: NDArray[np.uint16]  # bit i set: the row carries FLAGS[i]
    valid: NDArray[np.bool_]
    forwards: dict[date, Forward]  # per expiration
    # Set by core/sizing.py from the positions (NaN until then: no positions given).
    contracts: NDArray[np.float64] | None = None
    cost_basis: NDArray[np.float64] | None = None  # calls: USD per share
    return_if_assigned: NDArray[np.float64] | None = None  # calls: PERCENT
    return_if_assigned_annualized: NDArray[np.float64] | None = None  # calls: PERCENT per year
    # The symbol's calendar, the same on every row (New York ISO dates).
    earnings_date: str | None = None
    ex_dividend_date: str | None = None

    def __len__(self) -> int:
        return len(self.strike)

    def has_flag(self, name: str) -> NDArray[np.bool_]:
        """Return where the rows carry a flag."""
        return (self.flag_bits & _BIT[name]) != 0

    def with_flag(self, name: str, where: ArrayLike) -> NDArray[np.uint16]:
        """Return the rows' flag bits with a flag added where `where` is True."""
        bits = self.flag_bits.copy()
        bits[np.asarray(where, dtype=bool)] |= _BIT[name]
        return bits

    def column(self, name: str) -> NDArray:
        """Return a numeric column; a sizing column not yet set is all NaN."""
        values = getattr(self, name)
        return np.full(len(self), np.nan) if values is None else values

    def near_iv(self) -> float | None:
        """Return the IV (FRACTION) at the strike nearest the forward on the nearest expiry."""
        usable = np.flatnonzero(np.isfinite(self.iv))
        if usable.size == 0:
            return None
        nearest = min(self.expiration[usable].tolist())
        on_day = usable[self.expiration[usable] == nearest]
        best = on_day[np.argmin(np.abs(self.strike[on_day] - self.forward[on_day]))]
        return float(self.iv[best])

    def records(self, keep: ArrayLike | None = None) -> list[Match]:
        """Return the rows (those where keep is True) as JSON-ready Match dicts, NaN as None."""
        index = np.arange(len(self)) if keep is None else np.flatnonzero(keep)
        n = index.size
        iso = {day: day.isoformat() for day in set(self.expiration[index].tolist())}
        columns: dict[str, list[Any]] = {
            "symbol": [self.symbol] * n,
            "side": [self.side] * n,
            "contract": self.contract[index].tolist(),
            "expiration": [iso[day] for day in self.expiration[index].tolist()],
            "flags": _flag_lists(self.flag_bits[index]),
            "earnings_date": [self.earnings_date] * n,
            "ex_dividend_date": [self.ex_dividend_date] * n,
        }
        for name in MATCH_FIELDS:
            if name not in columns:
                columns[name] = _json_numbers(self.column(name)[index], name in INTEGER_FIELDS)
        rows = zip(*(columns[name] for name in MATCH_FIELDS), strict=True)
        return [dict(zip(MATCH_FIELDS, values, strict=True)) for values in rows]  # type: ignore[misc]

    def frame(self) -> pd.DataFrame:
        """Return every row as a DataFrame of OUTPUT_COLUMNS (flags as tuples), to inspect."""
        import pandas as pd

        n = len(self)
        vendor = np.where(self.has_flag("cboe_iv"), "cboe", "yahoo").tolist()
        iv_source = [
            None if iv != iv else ("mid" if from_mid else name)
            for iv, from_mid, name in zip(
                self.iv.tolist(), self.iv_from_mid.tolist(), vendor, strict=True
            )
        ]
        data: dict[str, Any] = {
            "symbol": pd.Series([self.symbol] * n, dtype=object),
            "side": pd.Series([self.side] * n, dtype=object),
            "expiration": pd.Series(list(self.expiration), dtype=object),
            "contract": pd.Series(list(self.contract), dtype=object),
            "iv_source": pd.Series(iv_source, dtype=object),
            "flags": pd.Series([tuple(f) for f in _flag_lists(self.flag_bits)], dtype=object),
            "earnings_date": pd.Series([self.earnings_date] * n, dtype=object),
            "ex_dividend_date": pd.Series([self.ex_dividend_date] * n, dtype=object),
        }
        for name in OUTPUT_COLUMNS:
            if name not in data:
                data[name] = self.column(name)
        return pd.DataFrame(data, columns=list(OUTPUT_COLUMNS))


def _json_numbers(values: NDArray, integers: bool) -> list[Any]:
    """Return the values as Python numbers (ints when asked), NaN as None."""
    missing = np.isnan(values) if values.dtype.kind == "f" else None
    if missing is None or not missing.any():
        return (values.astype(np.int64) if integers else values).tolist()
    numbers = values.tolist()
    for i in np.flatnonzero(missing).tolist():
        numbers[i] = None
    if integers:
        return [None if v is None else int(v) for v in numbers]
    return numbers


_FLAG_LISTS: dict[int, tuple[str, ...]] = {}


def _flag_lists(bits: NDArray[np.uint16]) -> list[list[str]]:
    """Return each row's flag names (a new list per row), in FLAGS order."""
    lists = []
    for value in bits.tolist():
        names = _FLAG_LISTS.get(value)
        if names is None:
            names = tuple(name for i, name in enumerate(FLAGS) if value >> i & 1)
            _FLAG_LISTS[value] = names
        lists.append(list(names))
    return lists


def annualized_return_pct(bid: ArrayLike, strike: ArrayLike, dte_days: ArrayLike) -> NDArray:
    """Return bid / strike * 365 / max(dte, 1) * 100 (PERCENT per year); NaN without a bid."""
    b, k, d = np.broadcast_arrays(
        np.asarray(bid, dtype=float), np.asarray(strike, dtype=float), np.asarray(dte_days, float)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (b > 0) & (k > 0) & np.isfinite(b) & np.isfinite(k) & np.isfinite(d)
        # A 0-DTE (or same-day) contract still ties up collateral for a day: floor at 1 day.
        return np.where(ok, b / k * 365.0 / np.maximum(d, 1.0) * 100.0, np.nan)


def _between(event: datetime | None, start: datetime, end: datetime) -> bool:
    return event is not None and start < event < end


def analyze_chain(
    chain: Chain, side: Side, *, risk_free_rate: float, wide_spread_pct: float | None = 50.0
) -> ChainRows:
    """Compute per-contract screening figures, flags and validity for one side of a chain."""
    return analyze_chains(
        [chain], side, risk_free_rate=risk_free_rate, wide_spread_pct=wide_spread_pct
    )


def analyze_chains(
    chains: Sequence[Chain],
    side: Side,
    *,
    risk_free_rate: float,
    wide_spread_pct: float | None = 50.0,
) -> ChainRows:
    """Compute per-contract figures for one side of a symbol's chains in one vectorised pass.

    risk_free_rate: FRACTION per year, continuous. wide_spread_pct: PERCENT of mid (None: no
    wide_spread flag). Each expiration is priced on its own forward (see core/forward.py).
    """
    if side not in ("put", "call"):
        raise ValueError(f"side must be 'put' or 'call', got {side!r}")
    if not chains:
        raise ValueError("analyze_chains needs at least one chain")
    symbol = chains[0].symbol
    is_call = side == "call"
    sides = [chain.calls if is_call else chain.puts for chain in chains]
    sizes = [len(contracts) for contracts in sides]

    # Per expiration: time, forward, and the flags that hold for every contract of it.
    priced = implied_forwards(chains, risk_free_rate)
    forwards: dict[date, Forward] = {}
    per_chain = []
    for chain, priced_on in zip(chains, priced, strict=True):
        quote = chain.quote
        t = years_to_expiry(quote.as_of, chain.expiration)
        forwards[chain.expiration] = priced_on
        close = expiry_close(chain.expiration)
        bits = _BIT["expired"] if t <= 0 else 0
        if _between(quote.earnings_at, quote.as_of, close):
            bits |= _BIT["earnings"]
        if _between(quote.ex_dividend_at, quote.as_of, close):
            bits |= _BIT["ex_dividend"]
        if priced_on.source == "fallback":
            bits |= _BIT["forward_fallback"]
        vendor_bit = _BIT[_VENDOR_IV_FLAG.get(quote.source or "", DEFAULT_VENDOR_IV_FLAG)]
        per_chain.append(
            (
                chain.expiration,
                calendar_dte(quote.as_of, chain.expiration),
                t,
                priced_on.forward,
                math.exp(-risk_free_rate * t) if t > 0 else 1.0,
                quote.price,
                bits,
                vendor_bit,
            )
        )
    (expiration, dte, t_years, forward, discount, spot, chain_bits, vendor_bits) = (
        np.repeat(np.array(column, dtype=dtype), sizes)
        for column, dtype in zip(
            zip(*per_chain, strict=True),
            (object, np.int64, float, float, float, float, np.uint16, np.uint16),
            strict=True,
        )
    )

    def joined(name: str) -> NDArray[np.float64]:
        return np.concatenate([getattr(contracts, name) for contracts in sides])

    strike, bid, ask, vendor_iv, vendor_delta = (
        joined(n) for n in ("strike", "bid", "ask", "vendor_iv", "vendor_delta")
    )
    contract = np.array([c for contracts in sides for c in contracts.contract], dtype=object)
    mid = two_sided_mid(bid, ask)

    with np.errstate(invalid="ignore", divide="ignore"):
        has_bid = bid > 0  # NaN compares False: a missing bid is no bid
        two_sided = np.isfinite(mid)
        no_ask = has_bid & ~(ask > 0)
        crossed = has_bid & (ask > 0) & (ask < bid)
        expired = t_years <= 0
        spread_pct = (ask - bid) / mid * 100.0  # NaN where mid is

        # IV from the mid; the vendor's figure only where there is no two-sided quote to solve.
        iv = black_implied_vol(mid, is_call, forward, strike, t_years, discount)
        use_vendor = ~two_sided & np.isfinite(vendor_iv)
        iv = np.where(use_vendor, vendor_iv, iv)
        iv_bad = ~((iv >= IV_MIN) & (iv <= IV_MAX))
        valid = ~(~has_bid | crossed | iv_bad | expired)
        # An invalid row must carry no number a filter could accept.
        iv[~valid] = np.nan

        # Spot delta with the carry ln(F/S)/T held fixed, and P(out of the money), from d1.
        vol_sqrt_t = iv * np.sqrt(t_years)
        d1 = black_d1(forward, strike, vol_sqrt_t)
        theta = 1.0 if is_call else -1.0
        delta = theta * discount * (forward / spot) * ndtr(theta * d1)
        pop = ndtr(-theta * (d1 - vol_sqrt_t))
        annualized = annualized_return_pct(bid, strike, dte)
        annualized[~valid] = np.nan
        otm_pct = theta * (strike - spot) / spot * 100.0
        breakeven = np.where(has_bid, strike + theta * bid, np.nan)
        none = np.full(len(strike), np.nan)
        collateral = none if is_call else wheel.put_collateral(strike)
        protection = wheel.downside_protection_pct(bid, spot) if is_call else none
        disagrees = np.abs(delta - vendor_delta) > VENDOR_DELTA_TOLERANCE  # False where NaN

    wide = (
        np.zeros(len(strike), dtype=bool)
        if wide_spread_pct is None
        else spread_pct > wide_spread_pct
    )
    flag_bits = chain_bits.copy()
    for name, column in (
        ("no_bid", ~has_bid),
        ("no_ask", no_ask),
        ("crossed", crossed),
        ("iv_out_of_range", iv_bad),
        ("wide_spread", wide),
        ("vendor_disagrees", disagrees),
    ):
        flag_bits[column] |= _BIT[name]
    flag_bits[use_vendor] |= vendor_bits[use_vendor]  # yahoo_iv or cboe_iv, by source

    return ChainRows(
        symbol=symbol,
        side=side,
        expiration=expiration,
        contract=contract,
        strike=strike,
        bid=bid,
        ask=ask,
        mid=mid,
        spread_pct=spread_pct,
        dte=dte,
        t_years=t_years,
        annualized_return=annualized,
        otm_pct=otm_pct,
        breakeven=breakeven,
        iv=iv,
        iv_from_mid=two_sided,
        delta=delta,
        pop_otm=pop,
        vendor_iv=vendor_iv,
        vendor_delta=vendor_delta,
        open_interest=joined("open_interest"),
        volume=joined("volume"),
        forward=forward,
        spot=spot,
        premium=wheel.premium(bid),
        collateral=collateral,
        downside_protection=protection,
        expected_move=wheel.expected_move(spot, iv, t_years),
        sigma_distance=wheel.sigma_distance(strike, forward, iv, t_years),
        flag_bits=flag_bits,
        valid=valid,
        forwards=forwards,
    )
