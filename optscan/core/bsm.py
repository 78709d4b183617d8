"""Option pricing: Black-76 on a forward, Black-Scholes-Merton on spot, and implied volatility.

Units used throughout:
- forward, spot, strike, prices: USD per share.
- rate, div_yield, sigma: FRACTIONS per year, continuous compounding (0.05 = 5 %/yr).
- t_years: ACT/365 years of wall-clock time up to the expiry close.
- discount: the discount factor e^{-rT} to expiry (a fraction, 1 at T = 0).

Black-76 prices an option on the forward F to expiry:
  d1 = ln(F/K) / (sigma sqrt T) + sigma sqrt T / 2,  d2 = d1 - sigma sqrt T
  call = D (F N(d1) - K N(d2)),  put = D (K N(-d2) - F N(-d1)).
Black-Scholes-Merton is the case F = S e^{(r - q) T}, D = e^{-rT}: the bsm_* functions and
implied_vol take spot, rate and dividend yield and call the Black-76 ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, ndtr, ndtri

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_IV_MAX_ITERATIONS = 60
# Newton converges quadratically, so a step this small means the error left is far below 1e-16.
_IV_STEP_TOLERANCE = 1e-10
_EPS16 = 16.0 * float(np.finfo(float).eps)


def _floats(*values: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    return np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))


def _with_side(is_call: ArrayLike, *values: ArrayLike) -> tuple[NDArray, ...]:
    """Return is_call as booleans and the values as floats, all broadcast to one shape."""
    return np.broadcast_arrays(
        np.asarray(is_call, dtype=bool), *(np.asarray(v, dtype=float) for v in values)
    )


def _well_posed(*values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Return where every value is finite and positive (forward, strike, time, sigma...)."""
    ok = np.ones(values[0].shape, dtype=bool)
    for value in values:
        ok &= np.isfinite(value) & (value > 0)
    return ok


def _posed(
    is_call: ArrayLike, *values: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.bool_], list[NDArray[np.float64]]]:
    """Return where all values are well posed, a NaN result, and the side and values there."""
    call, *floats = _with_side(is_call, *values)
    ok = _well_posed(*floats)
    return ok, np.full(ok.shape, np.nan), call[ok], [v[ok] for v in floats]


def black_d1(
    forward: NDArray[np.float64],
    strike: NDArray[np.float64],
    vol_sqrt_t: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Return Black-76's d1 = ln(F/K) / (sigma sqrt T) + sigma sqrt T / 2 (arrays, no checks)."""
    return np.log(forward / strike) / vol_sqrt_t + 0.5 * vol_sqrt_t


def black_price(
    is_call: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    discount: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the Black-76 price (USD per share); NaN where t_years or sigma <= 0."""
    ok, out, call, (f, k, t, d, v) = _posed(is_call, forward, strike, t_years, discount, sigma)
    vol_sqrt_t = v * np.sqrt(t)
    d1 = black_d1(f, k, vol_sqrt_t)
    theta = np.where(call, 1.0, -1.0)
    out[ok] = theta * d * (f * ndtr(theta * d1) - k * ndtr(theta * (d1 - vol_sqrt_t)))
    return out


def black_spot_delta(
    is_call: ArrayLike,
    spot: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    discount: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return dV/dS with the carry ln(F/S)/T held fixed: D (F/S) N(d1), minus D (F/S) N(-d1).

    That is the BSM delta with the dividend yield the forward implies; per share, a call's in
    (0, 1) and a put's in (-1, 0) whenever the carry is below the rate. NaN where ill-posed.
    """
    ok, out, call, (s, f, k, t, d, v) = _posed(
        is_call, spot, forward, strike, t_years, discount, sigma
    )
    theta = np.where(call, 1.0, -1.0)
    out[ok] = theta * d * (f / s) * ndtr(theta * black_d1(f, k, v * np.sqrt(t)))
    return out


def black_prob_otm(
    is_call: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the risk-neutral probability of expiring out of the money: put N(d2), call N(-d2)."""
    ok, out, call, (f, k, t, v) = _posed(is_call, forward, strike, t_years, sigma)
    vol_sqrt_t = v * np.sqrt(t)
    d2 = black_d1(f, k, vol_sqrt_t) - vol_sqrt_t
    out[ok] = ndtr(np.where(call, -d2, d2))
    return out


def black_implied_vol(
    price: ArrayLike,
    is_call: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    discount: ArrayLike,
) -> NDArray[np.float64]:
    """Return the Black-76 implied volatility (fraction per year); NaN where none exists.

    None exists when t_years <= 0, price <= 0, or the price is at or below the discounted
    intrinsic value D max(theta (F - K), 0), or at or above the upper bound (call D F, put D K).
    """
    ok, out, call, (p, f, k, t, d) = _posed(is_call, price, forward, strike, t_years, discount)
    if not ok.any():
        return out

    undiscounted = p / d
    intrinsic = np.maximum(np.where(call, f - k, k - f), 0.0)
    time_value = undiscounted - intrinsic  # = the undiscounted price of the out-of-the-money twin
    upper_gap_price = np.minimum(f, k) - time_value
    # Closer to a bound than the rounding noise of these sums is "at the bound": no volatility
    # explains it. An out-of-the-money price has no intrinsic part to lose digits to.
    noise_low = _EPS16 * (undiscounted + np.where(intrinsic > 0, np.maximum(f, k), 0.0))
    solvable = (time_value > noise_low) & (upper_gap_price > _EPS16 * (f + k))

    sol = np.full(p.shape, np.nan)
    if solvable.any():
        f, k = f[solvable], k[solvable]
        root_fk = np.sqrt(f * k)
        sol[solvable] = _solve_normalised(
            -np.abs(np.log(f / k)),
            time_value[solvable] / root_fk,
            upper_gap_price[solvable] / root_fk,
        )
    out[ok] = sol / np.sqrt(t)
    return out


# --- Black-Scholes-Merton on spot -------------------------------------------------------------


def bsm_forward(
    spot: ArrayLike, t_years: ArrayLike, rate: ArrayLike, div_yield: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (forward S e^{(r-q)T}, discount e^{-rT}) of the BSM model."""
    s, t, r, q = _floats(spot, t_years, rate, div_yield)
    return s * np.exp((r - q) * t), np.exp(-r * t)


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
    forward, discount = bsm_forward(spot, t_years, rate, div_yield)
    return black_price(is_call, forward, strike, t_years, discount, sigma)


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
    forward, discount = bsm_forward(spot, t_years, rate, div_yield)
    return black_spot_delta(is_call, spot, forward, strike, t_years, discount, sigma)


def prob_otm(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    sigma: ArrayLike,
) -> NDArray[np.float64]:
    """Return the BSM probability of expiring out of the money (put N(d2), call N(-d2))."""
    forward, _ = bsm_forward(spot, t_years, rate, div_yield)
    return black_prob_otm(is_call, forward, strike, t_years, sigma)


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
    forward, discount = bsm_forward(spot, t_years, rate, div_yield)
    return black_implied_vol(price, is_call, forward, strike, t_years, discount)


# --- the normalised solver ----------------------------------------------------------------------
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
    gap = erfcx(-d1 / _SQRT_2) - erfcx((s - d1) / _SQRT_2)
    minus_2_log_b = (y / s) ** 2 + 0.25 * s * s - 2.0 * np.log(0.5 * gap)
    g = -y / np.sqrt(minus_2_log_b)
    return g, g / minus_2_log_b * (_SQRT_2_OVER_PI / gap)


def _high_log_gap(y: NDArray, s: NDArray) -> tuple[NDArray, NDArray]:
    """Return ln(e^{y/2} - b(y, s)) and its derivative in s."""
    d1 = y / s + 0.5 * s
    half_y = 0.5 * y
    gap = np.exp(half_y) * ndtr(-d1) + np.exp(-half_y) * ndtr(d1 - s)
    vega = np.exp(half_y - 0.5 * d1 * d1) * _INV_SQRT_2PI
    return np.log(gap), -vega / gap


def _solve_normalised(y: NDArray, beta: NDArray, upper_gap: NDArray) -> NDArray:
    """Return s with b(y, s) = beta, where upper_gap = e^{y/2} - beta > 0; NaN if unconverged."""
    s_c = np.sqrt(-2.0 * y)
    # At s = s_c: d1 = y/s_c + s_c/2 = 0 and d2 = -s_c, so b_c = e^{y/2}/2 - e^{-y/2} N(-s_c).
    b_c = 0.5 * np.exp(0.5 * y) - np.exp(-0.5 * y) * ndtr(-s_c)
    low = beta < b_c

    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(low, -y / np.sqrt(-2.0 * np.log(beta)), np.log(upper_gap))
        # Starting points: g(s) ~ s in the low region, so its target is the guess; in the high
        # region the gap to the bound is about (e^{y/2} + e^{-y/2}) N(-s/2), exact at y = 0.
        s_high = -2.0 * ndtri(upper_gap / (np.exp(0.5 * y) + np.exp(-0.5 * y)))
    lo = np.where(low, 0.0, s_c)
    hi = np.where(low, s_c, np.inf)
    s = np.where(low, target, s_high)
    bad_start = ~((s > lo) & (s < hi))
    if bad_start.any():
        s = np.where(bad_start, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo + 1.0), s)

    result = np.full(y.shape, np.nan)
    # The two regions are solved apart, each with its own objective: g increases with s,
    # ln(bound - b) decreases with s.
    for region, objective, rising in ((low, _low_objective, True), (~low, _high_log_gap, False)):
        active = np.flatnonzero(region)
        if active.size:
            bracket = (lo[active], hi[active])
            roots = _newton(objective, rising, y[active], s[active], target[active], bracket)
            result[active] = roots
    return result


def _newton(
    objective: Callable[[NDArray, NDArray], tuple[NDArray, NDArray]],
    rising: bool,
    ya: NDArray,
    sa: NDArray,
    ta: NDArray,
    bracket: tuple[NDArray, NDArray],
) -> NDArray:
    """Return the roots of objective(y, s) = target by safeguarded Newton; NaN if unconverged."""
    lo_a, hi_a = bracket
    result = np.full(ya.shape, np.nan)
    active = np.arange(ya.size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for _ in range(_IV_MAX_ITERATIONS):
            value, slope = objective(ya, sa)
            f = value - ta
            # The sign says which side of the root s is on.
            below = (f < 0) if rising else (f > 0)
            lo_a = np.where(below, sa, lo_a)
            hi_a = np.where(below, hi_a, sa)
            step = f / slope
            s_new = sa - step
            done = np.abs(step) <= _IV_STEP_TOLERANCE * s_new
            inside = (s_new > lo_a) & (s_new < hi_a)  # False for NaN
            if not inside.all():
                # Bisect where Newton would leave the bracket; an exact root (f = 0, even
                # with a zero slope) or a collapsed bracket ends there. Inside the bracket a
                # collapsed one makes the step small anyway.
                bisect = np.where(np.isfinite(hi_a), 0.5 * (lo_a + hi_a), 2.0 * lo_a + 1.0)
                exact = f == 0
                s_new = np.where(exact, sa, np.where(inside, s_new, bisect))
                done &= inside
                done |= exact | ((hi_a - lo_a) <= _IV_STEP_TOLERANCE * lo_a)
            if done.any():
                result[active[done]] = s_new[done]
                keep = ~done
                if not keep.any():
                    return result
                active, ya, ta = active[keep], ya[keep], ta[keep]
                sa, lo_a, hi_a = s_new[keep], lo_a[keep], hi_a[keep]
            else:
                sa = s_new
    return result
