"""Option analytics: Black-Scholes-Merton prices, greeks, implied volatility and chain screening.

Units used throughout:
- rate, div_yield, sigma: FRACTIONS per year, continuous compounding (0.05 = 5 %/yr).
- t_years: ACT/365 years of wall-clock time up to the 16:00 America/New_York close on expiry.
- dte / dte_days: whole CALENDAR days, counted from the New York date of the capture time.
- names ending in _pct are PERCENT (52.1 = 52.1 %); everything else is a fraction or USD.

Nothing here reads a clock: the capture time comes from the chain's quote.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, ndtr, ndtri

from optscan.core.market import NEW_YORK
from optscan.sources.base import Chain

EXPIRY_CLOSE = time(16, 0)


SECONDS_PER_YEAR = 365 * 86400

# Plausible IV band (fractions per year): outside it the number is a data error, not a market.
IV_MIN = 0.01
IV_MAX = 5.0

OUTPUT_COLUMNS = (
    "symbol",
    "side",
    "expiration",
    "contract",
    "strike",
    "bid",
    "ask",
    "mid",
    "spread_pct",
    "dte",
    "t_years",
    "annualized_return",
    "otm_pct",
    "breakeven",
    "iv",
    "iv_source",
    "delta",
    "pop_otm",
    "open_interest",
    "volume",
    "flags",
    "valid",
)

# Flags that make a row unusable for screening; the others are informational.
INVALIDATING_FLAGS = frozenset({"no_bid", "crossed", "iv_out_of_range", "expired"})

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_IV_MAX_ITERATIONS = 60
# Newton converges quadratically, so a step this small means the error left is far below 1e-16.
_IV_STEP_TOLERANCE = 1e-10


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


def _d1_d2(
    spot: NDArray, strike: NDArray, t_years: NDArray, rate: NDArray, div_yield: NDArray, sigma
) -> tuple[NDArray, NDArray]:
    vol_sqrt_t = sigma * np.sqrt(t_years)
    d1 = (np.log(spot / strike) + (rate - div_yield) * t_years) / vol_sqrt_t + 0.5 * vol_sqrt_t
    return d1, d1 - vol_sqrt_t


def _bsm_inputs(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    sigma: ArrayLike,
) -> tuple[NDArray, ...]:
    """Broadcast the BSM inputs to float arrays and return them with a well-posedness mask."""
    call, s, k, t, r, q, v = np.broadcast_arrays(
        np.asarray(is_call, dtype=bool),
        np.asarray(spot, dtype=float),
        np.asarray(strike, dtype=float),
        np.asarray(t_years, dtype=float),
        np.asarray(rate, dtype=float),
        np.asarray(div_yield, dtype=float),
        np.asarray(sigma, dtype=float),
    )
    ok = (s > 0) & (k > 0) & (t > 0) & (v > 0) & np.isfinite(r) & np.isfinite(q)
    ok &= np.isfinite(s) & np.isfinite(k) & np.isfinite(t) & np.isfinite(v)
    return call, s, k, t, r, q, v, ok


def bsm_price(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the Black-Scholes-Merton price (USD per share); NaN where t_years or sigma <= 0."""
    call, s, k, t, r, q, v, ok = _bsm_inputs(is_call, spot, strike, t_years, rate, div_yield, sigma)
    out = np.full(s.shape, np.nan)
    call, s, k, t, r, q, v = (a[ok] for a in (call, s, k, t, r, q, v))
    d1, d2 = _d1_d2(s, k, t, r, q, v)
    theta = np.where(call, 1.0, -1.0)
    out[ok] = theta * (
        s * np.exp(-q * t) * ndtr(theta * d1) - k * np.exp(-r * t) * ndtr(theta * d2)
    )
    return out


def bsm_delta(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the BSM delta per share (call in (0, 1), put in (-1, 0)); NaN where ill-posed."""
    call, s, k, t, r, q, v, ok = _bsm_inputs(is_call, spot, strike, t_years, rate, div_yield, sigma)
    out = np.full(s.shape, np.nan)
    call, s, k, t, r, q, v = (a[ok] for a in (call, s, k, t, r, q, v))
    d1, _ = _d1_d2(s, k, t, r, q, v)
    theta = np.where(call, 1.0, -1.0)
    out[ok] = theta * np.exp(-q * t) * ndtr(theta * d1)
    return out


def prob_otm(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the risk-neutral probability of expiring out of the money (put N(d2), call N(-d2))."""
    call, s, k, t, r, q, v, ok = _bsm_inputs(is_call, spot, strike, t_years, rate, div_yield, sigma)
    out = np.full(s.shape, np.nan)
    call, s, k, t, r, q, v = (a[ok] for a in (call, s, k, t, r, q, v))
    _, d2 = _d1_d2(s, k, t, r, q, v)
    out[ok] = ndtr(np.where(call, -d2, d2))
    return out


# --- implied volatility -------------------------------------------------------------------
#
# The solver works on the normalised Black function of an OUT-of-the-money option:
#   y = -|ln(F/K)| <= 0,  s = sigma * sqrt(T),  beta = time value / sqrt(F K)
#   b(y, s) = e^{y/2} N(y/s + s/2) - e^{-y/2} N(y/s - s/2),  0 < b < e^{y/2}
# (an in-the-money option's time value is the price of the out-of-the-money one by parity, and
# a put with F > K is the call with y -> -y). b is convex in s below s_c = sqrt(2|y|) and concave
# above, so each side gets its own objective on which Newton behaves:
#   low  (beta < b(y, s_c)): |y| / sqrt(-2 ln b(s)) - |y| / sqrt(-2 ln beta), nearly linear in s;
#   high (beta >= b(y, s_c)): ln(e^{y/2} - b(s)) - ln(e^{y/2} - beta), the log distance to
#        the upper bound, which stays well scaled as volatility grows.
# Every element keeps a bracket [lo, hi] around the root and falls back to bisection whenever a
# Newton step would leave it.


def _low_objective(y: NDArray, s: NDArray) -> tuple[NDArray, NDArray]:
    """Return g(s) = |y| / sqrt(-2 ln b(y, s)) and dg/ds, for the low region (d1 <= 0).

    ln b ~ -y^2 / (2 s^2) as s -> 0, so g(s) ~ s: nearly linear, which Newton solves in a few
    steps even for prices far below a cent. b comes through erfcx so it never underflows.
    """
    d1 = y / s + 0.5 * s
    d2 = d1 - s
    gap = erfcx(-d1 / _SQRT_2) - erfcx(-d2 / _SQRT_2)
    minus_2_log_b = (y / s) ** 2 + 0.25 * s * s - 2.0 * np.log(0.5 * gap)
    dlog_b = _SQRT_2_OVER_PI / gap
    g = -y / np.sqrt(minus_2_log_b)
    return g, -y * minus_2_log_b**-1.5 * dlog_b


def _high_log_gap(y: NDArray, s: NDArray) -> tuple[NDArray, NDArray]:
    """Return ln(e^{y/2} - b(y, s)) and its derivative in s."""
    d1 = y / s + 0.5 * s
    d2 = d1 - s
    gap = np.exp(0.5 * y) * ndtr(-d1) + np.exp(-0.5 * y) * ndtr(d2)
    vega = np.exp(0.5 * y - 0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return np.log(gap), -vega / gap


def _solve_normalised(y: NDArray, beta: NDArray, upper_gap: NDArray) -> NDArray:
    """Return s with b(y, s) = beta, where upper_gap = e^{y/2} - beta > 0; NaN if unconverged."""
    s_c = np.sqrt(-2.0 * y)
    # At s = s_c: d1 = y/s_c + s_c/2 = 0 and d2 = -s_c, so b_c = e^{y/2}/2 - e^{-y/2} N(-s_c).
    b_c = 0.5 * np.exp(0.5 * y) - np.exp(-0.5 * y) * ndtr(-s_c)
    low = beta < b_c

    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(low, -y / np.sqrt(-2.0 * np.log(beta)), np.log(upper_gap))
    lo = np.where(low, 0.0, s_c)
    hi = np.where(low, s_c, np.inf)

    # Starting points: g(s) ~ s in the low region, so its target is the guess; in the high region
    # the gap to the bound is about (e^{y/2} + e^{-y/2}) N(-s/2), exact at y = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        s_high = -2.0 * ndtri(upper_gap / (np.exp(0.5 * y) + np.exp(-0.5 * y)))
    s = np.where(low, target, s_high)
    bad_start = ~((s > lo) & (s < hi))
    s = np.where(bad_start, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo + 1.0), s)

    result = np.full(y.shape, np.nan)
    active = np.arange(y.size)
    for _ in range(_IV_MAX_ITERATIONS):
        if active.size == 0:
            break
        ya, sa, la, lo_a, hi_a, low_a = (
            y[active],
            s[active],
            target[active],
            lo[active],
            hi[active],
            low[active],
        )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            f = np.empty_like(sa)
            fprime = np.empty_like(sa)
            if low_a.any():
                f_low, fp_low = _low_objective(ya[low_a], sa[low_a])
                f[low_a], fprime[low_a] = f_low - la[low_a], fp_low
            high_a = ~low_a
            if high_a.any():
                f_high, fp_high = _high_log_gap(ya[high_a], sa[high_a])
                f[high_a], fprime[high_a] = f_high - la[high_a], fp_high
            # The sign says which side of the root s is on: g increases with s,
            # ln(bound - b) decreases with s.
            below = np.where(low_a, f < 0, f > 0)
            lo_a = np.where(below, sa, lo_a)
            hi_a = np.where(below, hi_a, sa)
            step = -f / fprime
            s_new = sa + step
        inside = np.isfinite(s_new) & (s_new > lo_a) & (s_new < hi_a)
        bisect = np.where(np.isfinite(hi_a), 0.5 * (lo_a + hi_a), 2.0 * lo_a + 1.0)
        s_new = np.where(inside, s_new, bisect)
        done = (inside & (np.abs(step) <= _IV_STEP_TOLERANCE * s_new)) | (f == 0)
        done |= (hi_a - lo_a) <= _IV_STEP_TOLERANCE * lo_a
        result[active[done]] = np.where(f[done] == 0, sa[done], s_new[done])
        s[active], lo[active], hi[active] = s_new, lo_a, hi_a
        active = active[~done]
    return result


def implied_vol(
    price: ArrayLike,
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
) -> NDArray[np.float64]:
    """Return the BSM implied volatility (fraction per year); NaN where no solution exists."""
    # No solution: t_years <= 0, price <= 0, price at/below the discounted intrinsic value, or
    # at/above the no-arbitrage upper bound (call S e^{-qT}, put K e^{-rT}).
    p, call, s, k, t, r, q = np.broadcast_arrays(
        np.asarray(price, dtype=float),
        np.asarray(is_call, dtype=bool),
        np.asarray(spot, dtype=float),
        np.asarray(strike, dtype=float),
        np.asarray(t_years, dtype=float),
        np.asarray(rate, dtype=float),
        np.asarray(div_yield, dtype=float),
    )
    out = np.full(p.shape, np.nan)
    ok = (p > 0) & (s > 0) & (k > 0) & (t > 0)
    ok &= np.isfinite(p) & np.isfinite(s) & np.isfinite(k) & np.isfinite(t)
    ok &= np.isfinite(r) & np.isfinite(q)
    if not ok.any():
        return out
    p, call, s, k, t, r, q = (a[ok] for a in (p, call, s, k, t, r, q))

    # Undiscounted (forward) terms: the price becomes a Black price on the forward F.
    forward = s * np.exp((r - q) * t)
    undiscounted = p * np.exp(r * t)
    intrinsic = np.maximum(np.where(call, forward - k, k - forward), 0.0)
    time_value = undiscounted - intrinsic  # = price of the out-of-the-money twin
    upper_gap_price = np.minimum(forward, k) - time_value
    # Closer to a bound than the rounding noise of these sums is "at the bound": no volatility
    # explains it. An out-of-the-money price has no intrinsic part to lose digits to.
    eps16 = 16.0 * np.finfo(float).eps
    noise_low = eps16 * (undiscounted + np.where(intrinsic > 0, np.maximum(forward, k), 0.0))
    solvable = (time_value > noise_low) & (upper_gap_price > eps16 * (forward + k))

    root_fk = np.sqrt(forward * k)
    y = -np.abs(np.log(forward / k))
    sol = np.full(p.shape, np.nan)
    if solvable.any():
        sol[solvable] = _solve_normalised(
            y[solvable],
            time_value[solvable] / root_fk[solvable],
            upper_gap_price[solvable] / root_fk[solvable],
        )
    out[ok] = sol / np.sqrt(t)
    return out


# --- screening helpers --------------------------------------------------------------------


def annualized_return_pct(bid: ArrayLike, strike: ArrayLike, dte_days: ArrayLike) -> NDArray:
    """Return bid / strike * 365 / max(dte, 1) * 100 (PERCENT per year); NaN without a bid."""
    b, k, d = np.broadcast_arrays(
        np.asarray(bid, dtype=float), np.asarray(strike, dtype=float), np.asarray(dte_days, float)
    )
    ok = (b > 0) & (k > 0) & np.isfinite(b) & np.isfinite(k) & np.isfinite(d)
    out = np.full(b.shape, np.nan)
    # A 0-DTE (or same-day) contract still ties up collateral for a day: floor at 1 day.
    out[ok] = b[ok] / k[ok] * 365.0 / np.maximum(d[ok], 1.0) * 100.0
    return out


# --- chain analysis -----------------------------------------------------------------------


def _between(event: datetime | None, start: datetime, end: datetime) -> bool:
    return event is not None and start < event < end


def _column(frame: pd.DataFrame, name: str) -> NDArray[np.float64]:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def analyze_chain(
    chain: Chain,
    side: str,
    *,
    risk_free_rate: float,
    wide_spread_pct: float | None = 50.0,
) -> pd.DataFrame:
    """Compute per-contract screening figures, flags and validity for one side of a chain."""
    # risk_free_rate: FRACTION per year, continuous. wide_spread_pct: PERCENT of mid.
    # Output units are listed in the module docstring and OUTPUT_COLUMNS.
    if side not in ("put", "call"):
        raise ValueError(f"side must be 'put' or 'call', got {side!r}")
    frame = chain.puts if side == "put" else chain.calls
    quote = chain.quote
    is_call = side == "call"
    n = len(frame)

    as_of = quote.as_of
    dte = calendar_dte(as_of, chain.expiration)
    t_years = years_to_expiry(as_of, chain.expiration)
    close = expiry_close(chain.expiration)
    spot = float(quote.price)
    div_yield = float(quote.dividend_yield)

    strike = _column(frame, "strike")
    bid = _column(frame, "bid")
    ask = _column(frame, "ask")
    yahoo_iv = _column(frame, "impliedVolatility")
    contracts = (
        frame["contractSymbol"].astype(object).tolist()
        if "contractSymbol" in frame.columns
        else [None] * n
    )

    has_bid = bid > 0  # NaN compares False: a missing bid is no bid
    has_ask = ask > 0
    no_bid = ~has_bid
    no_ask = has_bid & ~has_ask
    crossed = has_bid & has_ask & (ask < bid)
    two_sided = has_bid & has_ask & (ask >= bid)
    expired = np.full(n, t_years <= 0)

    mid = np.where(two_sided, 0.5 * (bid + ask), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread_pct = np.where(two_sided, (ask - bid) / mid * 100.0, np.nan)

    # IV from the mid; Yahoo's figure only where there is no two-sided quote to solve from.
    iv_mid = implied_vol(mid, is_call, spot, strike, t_years, risk_free_rate, div_yield)
    use_yahoo = ~two_sided & np.isfinite(yahoo_iv)
    iv = np.where(two_sided, iv_mid, np.where(use_yahoo, yahoo_iv, np.nan))
    iv_bad = ~((iv >= IV_MIN) & (iv <= IV_MAX))
    wide = np.zeros(n, dtype=bool) if wide_spread_pct is None else spread_pct > wide_spread_pct
    valid = ~(no_bid | crossed | iv_bad | expired)

    delta = bsm_delta(is_call, spot, strike, t_years, risk_free_rate, div_yield, iv)
    pop = prob_otm(is_call, spot, strike, t_years, risk_free_rate, div_yield, iv)
    annualized = annualized_return_pct(bid, strike, dte)
    # An invalid row must carry no number a filter could accept.
    for values in (iv, delta, pop, annualized):
        values[~valid] = np.nan
    # iv_source names where the reported iv came from, so it is None wherever iv is NaN.
    iv_source = [
        None if np.isnan(value) else ("mid" if quoted else "yahoo")
        for value, quoted in zip(iv, two_sided, strict=True)
    ]

    with np.errstate(divide="ignore", invalid="ignore"):
        if is_call:
            otm_pct = (strike - spot) / spot * 100.0
            breakeven = np.where(has_bid, strike + bid, np.nan)
        else:
            otm_pct = (spot - strike) / spot * 100.0
            breakeven = np.where(has_bid, strike - bid, np.nan)

    earnings = _between(quote.earnings_at, as_of, close)
    ex_dividend = _between(quote.ex_dividend_at, as_of, close)
    flag_columns = (
        ("no_bid", no_bid),
        ("no_ask", no_ask),
        ("crossed", crossed),
        ("expired", expired),
        ("iv_out_of_range", iv_bad),
        ("yahoo_iv", use_yahoo),
        ("wide_spread", wide),
        ("earnings", np.full(n, earnings)),
        ("ex_dividend", np.full(n, ex_dividend)),
    )
    flags = [tuple(name for name, column in flag_columns if column[i]) for i in range(n)]

    result = pd.DataFrame(
        {
            "symbol": pd.Series([chain.symbol] * n, dtype=object),
            "side": pd.Series([side] * n, dtype=object),
            "expiration": pd.Series([chain.expiration] * n, dtype=object),
            "contract": pd.Series(contracts, dtype=object),
            "strike": strike,
            "bid": bid,
            "ask": ask,
            "mid": mid,
            "spread_pct": spread_pct,
            "dte": np.full(n, dte, dtype=np.int64),
            "t_years": np.full(n, t_years),
            "annualized_return": annualized,
            "otm_pct": otm_pct,
            "breakeven": breakeven,
            "iv": iv,
            "iv_source": pd.Series(iv_source, dtype=object),
            "delta": delta,
            "pop_otm": pop,
            "open_interest": _column(frame, "openInterest"),
            "volume": _column(frame, "volume"),
            "flags": pd.Series(flags, dtype=object),
            "valid": valid.astype(bool),
        },
        columns=list(OUTPUT_COLUMNS),
    )
    return result
