"""(2) Analytics throughput: implied volatility and delta for many contracts at once.

optscan's vectorised solver (optscan.core.bsm.implied_vol, then bsm_delta at that IV) against
a reference on the same inputs. The reference is py_vollib_vectorized when it imports and runs
here; otherwise (as with py_vollib_vectorized 0.1.1, whose numba code no longer compiles
against py_lets_be_rational 1.0.1 or 1.1.2) vollib's scalar LetsBeRational solver and
analytical delta, vectorised with np.vectorize. Prices come from vollib's BSM pricer at a known
volatility, so neither implementation prices its own inputs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from bench.report import Table, count, median, ratio
from optscan.core.bsm import bsm_delta, implied_vol

RATE = 0.045  # risk-free rate, fraction per year
Arrays = dict[str, NDArray[Any]]
Solver = Callable[[Arrays], tuple[NDArray[np.float64], NDArray[np.float64]]]


def make_inputs(n: int, seed: int = 7) -> Arrays:
    """Return n contracts: spot, strike, years, dividend yield, true volatility, call flag."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(20.0, 500.0, n)
    return {
        "spot": spot,
        "strike": spot * rng.uniform(0.7, 1.3, n),
        "t": rng.uniform(2 / 365, 1.0, n),
        "q": rng.uniform(0.0, 0.03, n),
        "sigma": rng.uniform(0.08, 1.2, n),
        "call": rng.random(n) < 0.5,
    }


def vollib_prices(data: Arrays) -> NDArray[np.float64]:
    """Return vollib's BSM prices (USD per share) at the true volatilities."""
    from vollib.black_scholes_merton import black_scholes_merton

    flags = np.where(data["call"], "c", "p")
    price = np.vectorize(black_scholes_merton, otypes=[float])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return price(flags, data["spot"], data["strike"], data["t"], RATE, data["sigma"], data["q"])


def well_posed(data: Arrays, price: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Return where IV is well posed: at least a cent of time value, and vega >= 1 cent/vol pt."""
    s, k, t, q, sigma = data["spot"], data["strike"], data["t"], data["q"], data["sigma"]
    forward_intrinsic = np.where(
        data["call"], s * np.exp(-q * t) - k * np.exp(-RATE * t), k * np.exp(-RATE * t) - s
    )
    time_value = price - np.maximum(forward_intrinsic, 0.0)
    d1 = (np.log(s / k) + (RATE - q + sigma**2 / 2) * t) / (sigma * np.sqrt(t))
    vega_per_point = s * np.exp(-q * t) * np.exp(-(d1**2) / 2) / np.sqrt(2 * np.pi) * np.sqrt(t)
    return (time_value >= 0.01) & (vega_per_point / 100 >= 0.01) & np.isfinite(ndtr(d1))


def optscan_solver(data: Arrays) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return optscan's IV and delta."""
    iv = implied_vol(data["price"], data["call"], data["spot"], data["strike"], data["t"],
                     RATE, data["q"])  # fmt: skip
    delta = bsm_delta(data["call"], data["spot"], data["strike"], data["t"], RATE, data["q"], iv)
    return iv, delta


def reference_solver() -> tuple[str, Solver]:
    """Return the reference's name and IV+delta function (py_vollib_vectorized if it works)."""
    try:
        import py_vollib_vectorized as pvv

        def vectorized(data: Arrays) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            flags = np.where(data["call"], "c", "p")
            iv = pvv.vectorized_implied_volatility(
                data["price"], data["spot"], data["strike"], data["t"], RATE, flags,
                q=data["q"], model="black_scholes_merton", return_as="numpy",
            )  # fmt: skip
            delta = pvv.vectorized_delta(
                flags, data["spot"], data["strike"], data["t"], RATE, iv, q=data["q"],
                model="black_scholes_merton", return_as="numpy",
            )  # fmt: skip
            return np.asarray(iv, float), np.asarray(delta, float)

        probe = make_inputs(4)
        probe["price"] = vollib_prices(probe)
        vectorized(probe)
        return "py_vollib_vectorized", vectorized
    except Exception:  # noqa: BLE001 - not installed, or its numba code does not compile here
        pass
    from vollib.black_scholes_merton.greeks.analytical import delta as vollib_delta
    from vollib.black_scholes_merton.implied_volatility import implied_volatility

    def scalar_iv(price: float, s: float, k: float, t: float, q: float, flag: str) -> float:
        try:
            return implied_volatility(price, s, k, t, RATE, q, flag)
        except Exception:  # noqa: BLE001 - below intrinsic or above the bound: no volatility
            return float("nan")

    iv_each = np.vectorize(scalar_iv, otypes=[float])
    delta_each = np.vectorize(vollib_delta, otypes=[float])

    def scalar(data: Arrays) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        flags = np.where(data["call"], "c", "p")
        iv = iv_each(data["price"], data["spot"], data["strike"], data["t"], data["q"], flags)
        safe = np.where(np.isfinite(iv), iv, 0.2)  # vollib raises on NaN; masked below
        delta = delta_each(flags, data["spot"], data["strike"], data["t"], RATE, safe, data["q"])
        return iv, np.where(np.isfinite(iv), delta, np.nan)

    return "vollib 1.0 (scalar LetsBeRational, np.vectorize)", scalar


def timed(solver: Solver, data: Arrays, runs: int) -> tuple[list[float], tuple]:
    """Return the seconds of each run and the last run's output."""
    times, output = [], None
    for _ in range(runs):
        started = time.perf_counter()
        # vollib divides by zero on its way to an answer for some far-out contracts.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            output = solver(data)
        times.append(time.perf_counter() - started)
    assert output is not None
    return times, output


def run(smoke: bool = False) -> list[Table]:
    """Time both implementations on the same contracts and compare their answers."""
    n = 2_000 if smoke else 100_000
    runs = 1 if smoke else 5
    data = make_inputs(n)
    data["price"] = vollib_prices(data)
    posed = well_posed(data, data["price"])
    reference_name, reference = reference_solver()
    ours_times, (ours_iv, ours_delta) = timed(optscan_solver, data, runs)
    ref_times, (ref_iv, ref_delta) = timed(reference, data, max(1, runs // 2 + 1))
    ours_rate, ref_rate = n / median(ours_times), n / median(ref_times)

    def worst(values: NDArray[np.float64]) -> str:
        finite = values[posed]
        return f"{np.nanmax(np.abs(finite)):.1e}" if np.isfinite(finite).any() else "nan"

    table = Table(
        f"(2) Analytics: IV + delta for {count(n)} contracts, median of runs",
        [
            "implementation",
            "runs",
            "contracts/s",
            "vs reference",
            "max abs(IV - reference IV)",
            "max abs(delta - reference delta)",
            "max abs(IV - true vol)",
            "unsolved",
        ],
    )
    for name, rate, times, iv, delta in (
        ("optscan (vectorised numpy/scipy)", ours_rate, ours_times, ours_iv, ours_delta),
        (f"reference: {reference_name}", ref_rate, ref_times, ref_iv, ref_delta),
    ):
        table.add(
            name,
            len(times),
            count(rate),
            ratio(rate / ref_rate),
            worst(iv - ref_iv),
            worst(delta - ref_delta),
            worst(iv - data["sigma"]),
            int(np.count_nonzero(~np.isfinite(iv[posed]))),
        )
    table.notes += [
        f"Differences and unsolved counts are over the {count(posed.sum())} well-posed"
        f" contracts ({posed.mean():.1%} of them); the timings are over all {count(n)}.",
        "Inputs: spot 20-500 USD, strike 0.7-1.3 x spot, 2-365 days, dividend yield 0-3 %,"
        f" rate {RATE:.1%}, true volatility 8-120 %, calls and puts; prices from vollib's BSM"
        " at the true volatility.",
        "Well posed: at least 1 cent of time value and a vega of at least 1 cent per vol point.",
    ]
    return [table]
