"""Tests for the analytics core (core/bsm, core/expiry, core/chain) against independent references.

References: vollib (the maintained name of py_vollib: the `py_vollib` import path only re-exports
it and emits a DeprecationWarning, which this project's pytest settings turn into an error),
textbook values from Hull, hand-derived formulas, and UTC offsets of New York time.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from py_lets_be_rational.exceptions import AboveMaximumException, BelowIntrinsicException
from vollib.black_scholes_merton import black_scholes_merton as vollib_price
from vollib.black_scholes_merton.greeks.analytical import delta as vollib_delta
from vollib.black_scholes_merton.greeks.analytical import vega as vollib_vega_per_pct
from vollib.black_scholes_merton.implied_volatility import (
    implied_volatility as vollib_implied_vol,
)
from vollib.helpers.exceptions import PriceIsAboveMaximum, PriceIsBelowIntrinsic

from optscan.core.bsm import bsm_delta, bsm_price, implied_vol, prob_otm
from optscan.core.chain import analyze_chain, annualized_return_pct
from optscan.core.expiry import EXPIRY_CLOSE, calendar_dte, expiry_close, years_to_expiry
from optscan.core.market import NEW_YORK
from optscan.core.match import INTEGER_FIELDS, MATCH_FIELDS
from optscan.core.rules import call_delta_target
from optscan.sources.base import Chain, Contracts, Quote

DATA = Path(__file__).resolve().parent / "fixtures" / "yahoo-v7"
REGULAR_FILE = DATA / "gramistella__yfinance-rs/options_v7_AAPL_1756425600.json"
PRE_MARKET_AAPL = DATA / "gadicc__node-yahoo-finance2/options-AAPL.json"
TWO_SIDED_FILES = [
    *sorted((DATA / "gramistella__yfinance-rs").glob("*.json")),
    DATA / "pydata__pandas-datareader/yahoo_options1.json",
]
# Pre-market recordings in which every contract shows bid = ask = 0.
ALL_ZERO_FILES = [
    DATA / "gadicc__node-yahoo-finance2/options-GOOG.json",
    DATA / "gadicc__node-yahoo-finance2/options-QQQ.json",
]
# vollib reports an out-of-bounds price with its own exceptions or lets_be_rational's.
ABOVE_MAXIMUM = (PriceIsAboveMaximum, AboveMaximumException)
BELOW_INTRINSIC = (PriceIsBelowIntrinsic, BelowIntrinsicException)
RATE = 0.043  # risk-free rate used on the recorded chains, FRACTION per year
YEAR_SECONDS = 365 * 86400

EXPECTED_COLUMNS = [
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
    "vendor_iv",
    "vendor_delta",
    "open_interest",
    "volume",
    "forward",
    "spot",
    "premium",
    "collateral",
    "contracts",
    "cost_basis",
    "return_if_assigned",
    "return_if_assigned_annualized",
    "downside_protection",
    "expected_move",
    "sigma_distance",
    "earnings_date",
    "ex_dividend_date",
    "flags",
    "valid",
]


# --- a tiny local loader for the recorded v7 responses ----------------------------------------


def _utc(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


# Yahoo's name of each numeric Contracts field.
YAHOO_NAMES = {
    "strike": "strike",
    "bid": "bid",
    "ask": "ask",
    "last": "lastPrice",
    "volume": "volume",
    "open_interest": "openInterest",
    "vendor_iv": "impliedVolatility",
}


def _contracts(rows: list[dict]) -> Contracts:
    return Contracts.of(
        [row["contractSymbol"] for row in rows],
        **{
            field: [np.nan if row.get(name) is None else row[name] for row in rows]
            for field, name in YAHOO_NAMES.items()
        },
    )


def load_chain(path: Path) -> Chain:
    """Build a Chain straight from a recorded /v7/finance/options response."""
    result = json.loads(path.read_text())["optionChain"]["result"][0]
    q = result["quote"]
    quote = Quote(
        symbol=result["underlyingSymbol"],
        price=float(q["regularMarketPrice"]),
        as_of=_utc(q["regularMarketTime"]),
        # Yahoo's dividendYield is in PERCENT (0.45 means 0.45 %).
        dividend_yield=(q.get("dividendYield") or 0.0) / 100.0,
        earnings_at=_utc(q.get("earningsTimestamp")),
        ex_dividend_at=_utc(q.get("exDividendDate") or q.get("dividendDate")),
        market_state=q.get("marketState"),
        currency=q.get("currency"),
    )
    option = result["options"][0]
    return Chain(
        symbol=quote.symbol,
        expiration=_utc(option["expirationDate"]).date(),
        quote=quote,
        calls=_contracts(option["calls"]),
        puts=_contracts(option["puts"]),
    )


def analyse(chain: Chain, side: str, **kwargs) -> pd.DataFrame:
    """Return analyze_chain's rows as a DataFrame, with the recordings' rate."""
    return analyze_chain(chain, side, risk_free_rate=RATE, **kwargs).frame()


def one_row_chain(chain: Chain, side: str, strike: float, **changes: float) -> Chain:
    """Return the chain with `side` cut to its one contract at `strike`, fields changed.

    The other side stays whole, so that the expiration keeps its market-implied forward.
    """
    contracts = chain.puts if side == "put" else chain.calls
    (index,) = np.flatnonzero(contracts.strike == strike)
    row = contracts.take([index])
    row = dataclasses.replace(row, **{f: np.array([v], dtype=float) for f, v in changes.items()})
    return dataclasses.replace(chain, **{"puts" if side == "put" else "calls": row})


def bsm_yield(spot: float, forward: float, t_years: float) -> float:
    """Return the yield q with S e^{(RATE - q) T} = forward.

    BSM on spot with that q is Black-76 on the forward, so vollib's BSM functions check the
    rows priced on a market-implied forward too.
    """
    return RATE - math.log(forward / spot) / t_years


def flag(side: str) -> str:
    return "c" if side == "call" else "p"


# --- BSM against vollib ----------------------------------------------------------------------

GRID = pd.DataFrame(
    list(
        itertools.product(
            [True, False],
            [100.0],
            [30.0, 50.0, 80.0, 95.0, 100.0, 105.0, 120.0, 150.0, 250.0],  # deep ITM .. deep OTM
            [1 / (365 * 24), 1 / 365, 7 / 365, 30 / 365, 0.5, 2.0],  # an hour .. two years
            [0.0, 0.05],
            [0.0, 0.02],
            [0.01, 0.05, 0.2, 0.6, 1.5, 4.0],
        )
    ),
    columns=["is_call", "S", "K", "T", "r", "q", "sigma"],
)


def grid_args(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(frame[c].to_numpy() for c in ["is_call", "S", "K", "T", "r", "q", "sigma"])


def vollib_over(fn, frame: pd.DataFrame) -> np.ndarray:
    return np.array(
        [
            fn(flag("call" if c else "put"), s, k, t, r, v, q)
            for c, s, k, t, r, q, v in zip(*grid_args(frame), strict=True)
        ]
    )


@pytest.fixture(scope="module")
def grid_prices() -> np.ndarray:
    return bsm_price(*grid_args(GRID))


@pytest.fixture(scope="module")
def well_posed(grid_prices: np.ndarray) -> np.ndarray:
    """Mark grid points whose price pins sigma down: 1e-9 of sigma moves it ~45 ulps or more."""
    vega = vollib_over(vollib_vega_per_pct, GRID) * 100.0  # vollib's vega is per 1 vol point
    return (grid_prices > 1e-250) & (vega >= 1e-5 * grid_prices)


def test_price_matches_vollib_over_grid(grid_prices: np.ndarray) -> None:
    reference = vollib_over(vollib_price, GRID)
    np.testing.assert_allclose(grid_prices, reference, rtol=1e-9, atol=1e-11)


def test_delta_matches_vollib_over_grid() -> None:
    reference = vollib_over(vollib_delta, GRID)
    ours = bsm_delta(*grid_args(GRID))
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)
    calls = GRID["is_call"].to_numpy()
    assert ((ours[calls] >= 0) & (ours[calls] <= 1)).all()
    assert ((ours[~calls] >= -1) & (ours[~calls] <= 0)).all()


def test_put_call_parity(grid_prices: np.ndarray) -> None:
    calls = GRID[GRID["is_call"]].reset_index(drop=True)
    puts = GRID[~GRID["is_call"]].reset_index(drop=True)
    c = grid_prices[GRID["is_call"].to_numpy()]
    p = grid_prices[~GRID["is_call"].to_numpy()]
    s, k, t, r, q = (calls[x].to_numpy() for x in ["S", "K", "T", "r", "q"])
    assert (
        puts[["S", "K", "T", "r", "q", "sigma"]] == calls[["S", "K", "T", "r", "q", "sigma"]]
    ).all(axis=None)
    np.testing.assert_allclose(c - p, s * np.exp(-q * t) - k * np.exp(-r * t), atol=1e-10)


def test_prob_otm_is_the_digital_from_vollib_prices() -> None:
    # P(S_T > K) = -e^{rT} dC/dK: a central difference of vollib's call prices in the strike.
    frame = GRID[(GRID["sigma"] * np.sqrt(GRID["T"]) >= 0.05) & GRID["is_call"]]
    h = 0.01
    up = vollib_over(vollib_price, frame.assign(K=frame["K"] + h))
    down = vollib_over(vollib_price, frame.assign(K=frame["K"] - h))
    above = -np.exp(frame["r"] * frame["T"]).to_numpy() * (up - down) / (2 * h)
    args = grid_args(frame)[1:]
    np.testing.assert_allclose(prob_otm(False, *args), above, atol=1e-6)  # put OTM: S_T > K
    np.testing.assert_allclose(prob_otm(True, *args), 1.0 - above, atol=1e-6)


def test_implied_vol_round_trips_where_well_posed(
    grid_prices: np.ndarray, well_posed: np.ndarray
) -> None:
    c, s, k, t, r, q, sigma = grid_args(GRID)
    iv = implied_vol(grid_prices, c, s, k, t, r, q)
    assert well_posed.mean() > 0.6  # the grid mostly exercises the solver, not the NaN path
    assert np.abs(iv[well_posed] - sigma[well_posed]).max() < 1e-8
    # Elsewhere the price barely depends on sigma: NaN, or a sigma that reprices the option.
    rest = ~well_posed & np.isfinite(iv)
    repriced = bsm_price(c[rest], s[rest], k[rest], t[rest], r[rest], q[rest], iv[rest])
    np.testing.assert_allclose(repriced, grid_prices[rest], rtol=1e-8, atol=1e-10)


def test_implied_vol_agrees_with_vollib(grid_prices: np.ndarray, well_posed: np.ndarray) -> None:
    frame = GRID[well_posed]
    prices = grid_prices[well_posed]
    ours = implied_vol(prices, *grid_args(frame)[:-1])
    compared = 0
    for i, (c, s, k, t, r, q, _sigma) in enumerate(zip(*grid_args(frame), strict=True)):
        try:
            reference = vollib_implied_vol(prices[i], s, k, t, r, q, "c" if c else "p")
        except ABOVE_MAXIMUM + BELOW_INTRINSIC:
            continue
        assert ours[i] == pytest.approx(reference, abs=1e-8)
        compared += 1
    assert compared > 0.9 * len(frame)


def test_implied_vol_nan_outside_no_arbitrage_bounds() -> None:
    s, k, t, r, q = 100.0, 90.0, 0.5, 0.05, 0.02
    call_floor = s * math.exp(-q * t) - k * math.exp(-r * t)  # discounted intrinsic
    call_cap = s * math.exp(-q * t)
    put_cap = k * math.exp(-r * t)
    calls = implied_vol(
        [call_floor - 0.01, call_floor, call_cap, call_cap + 1.0, 0.0, -1.0, np.nan],
        True,
        s,
        k,
        t,
        r,
        q,
    )
    assert np.isnan(calls).all()
    puts = implied_vol([put_cap, put_cap + 5.0], False, s, k, t, r, q)
    assert np.isnan(puts).all()
    # OTM put (no intrinsic value): any price up to the cap is fine, zero is not.
    assert np.isnan(implied_vol(0.0, False, s, k, t, r, q))
    assert np.isfinite(implied_vol(0.5, False, s, k, t, r, q))
    # No time left: nothing to solve.
    assert np.isnan(implied_vol(11.0, True, s, k, [0.0, -0.01], r, q)).all()
    # vollib agrees that these are out of bounds.
    with pytest.raises(BELOW_INTRINSIC):
        vollib_implied_vol(call_floor - 0.01, s, k, t, r, q, "c")
    with pytest.raises(ABOVE_MAXIMUM):
        vollib_implied_vol(call_cap + 1.0, s, k, t, r, q, "c")


def test_functions_broadcast_and_accept_scalars() -> None:
    scalar = bsm_price(True, 100.0, 100.0, 0.5, 0.05, 0.0, 0.2)
    assert scalar.shape == ()
    mixed = bsm_price(
        np.array([True, False]), 100.0, np.array([[90.0], [110.0]]), 0.5, 0.05, 0, 0.2
    )
    assert mixed.shape == (2, 2)
    assert mixed[0, 0] == pytest.approx(vollib_price("c", 100.0, 90.0, 0.5, 0.05, 0.2, 0.0))
    assert mixed[1, 1] == pytest.approx(vollib_price("p", 100.0, 110.0, 0.5, 0.05, 0.2, 0.0))
    iv = implied_vol(
        mixed, np.array([True, False]), 100.0, np.array([[90.0], [110.0]]), 0.5, 0.05, 0
    )
    np.testing.assert_allclose(iv, 0.2, atol=1e-10)
    # No diffusion or no time: NaN rather than a number a filter could accept.
    assert np.isnan(bsm_delta(False, 100.0, 100.0, [0.0, 0.5], 0.05, 0.0, [0.2, 0.0])).all()


# --- independent textbook values ---------------------------------------------------------------


def test_hull_textbook_values() -> None:
    # Hull, Options, Futures and Other Derivatives: S=42, K=40, r=10 %, sigma=20 %, T=0.5.
    assert round(float(bsm_price(True, 42, 40, 0.5, 0.10, 0.0, 0.20)), 2) == 4.76
    assert round(float(bsm_price(False, 42, 40, 0.5, 0.10, 0.0, 0.20)), 2) == 0.81
    # Hull's index option: S=930, K=900, r=8 %, q=3 %, sigma=20 %, two months -> 51.83.
    assert round(float(bsm_price(True, 930, 900, 2 / 12, 0.08, 0.03, 0.20)), 2) == 51.83
    # Hull's implied volatility example: call at 1.875, S=21, K=20, r=10 %, T=0.25 -> 23.5 %.
    assert round(float(implied_vol(1.875, True, 21, 20, 0.25, 0.10, 0.0)), 3) == 0.235


def test_dividend_yield_is_a_fraction() -> None:
    args = (True, 100.0, 100.0, 0.25, 0.04)
    with_yield = float(bsm_price(*args, 0.005, 0.25))  # 0.5 % a year
    assert with_yield != pytest.approx(float(bsm_price(*args, 0.0, 0.25)), abs=1e-3)
    assert with_yield == pytest.approx(vollib_price("c", 100, 100, 0.25, 0.04, 0.25, 0.005))
    # The same 0.5 % passed as a percent would be a 50 % yield: a very different call.
    assert float(bsm_price(*args, 0.5, 0.25)) < with_yield / 2


# --- time and units ---------------------------------------------------------------------------


def test_expiry_close_is_1600_new_york() -> None:
    winter = expiry_close(date(2026, 1, 16))
    summer = expiry_close(date(2026, 7, 17))
    assert EXPIRY_CLOSE.hour == 16 and winter.tzinfo is NEW_YORK
    assert winter.astimezone(UTC) == datetime(2026, 1, 16, 21, 0, tzinfo=UTC)  # EST = UTC-5
    assert summer.astimezone(UTC) == datetime(2026, 7, 17, 20, 0, tzinfo=UTC)  # EDT = UTC-4


def test_dte_across_spring_forward() -> None:
    # 2026-03-06 15:00 EST (20:00 UTC) to 2026-03-13 16:00 EDT (20:00 UTC): clocks spring
    # forward on 2026-03-08, so the wall clocks differ by 7 days 1 hour but exactly 7 days pass.
    as_of = datetime(2026, 3, 6, 15, 0, tzinfo=NEW_YORK)
    assert as_of.astimezone(UTC) == datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    assert calendar_dte(as_of, date(2026, 3, 13)) == 7
    assert years_to_expiry(as_of, date(2026, 3, 13)) == pytest.approx(7 * 86400 / YEAR_SECONDS)
    wall_clock_gap = (7 * 86400 + 3600) / YEAR_SECONDS
    assert years_to_expiry(as_of, date(2026, 3, 13)) != pytest.approx(wall_clock_gap)


def test_dte_across_fall_back() -> None:
    # 2025-10-31 15:00 EDT (19:00 UTC) to 2025-11-07 16:00 EST (21:00 UTC): 7 days 2 hours.
    as_of = datetime(2025, 10, 31, 19, 0, tzinfo=UTC)
    assert calendar_dte(as_of, date(2025, 11, 7)) == 7
    expected = (7 * 86400 + 2 * 3600) / YEAR_SECONDS
    assert years_to_expiry(as_of, date(2025, 11, 7)) == pytest.approx(expected, rel=1e-12)


def test_dte_uses_the_new_york_date_not_utc() -> None:
    # 02:00 UTC on the 29th is still the evening of the 28th in New York.
    as_of = datetime(2025, 8, 29, 2, 0, tzinfo=UTC)
    assert calendar_dte(as_of, date(2025, 8, 29)) == 1
    assert years_to_expiry(as_of, date(2025, 8, 29)) == pytest.approx(18 * 3600 / YEAR_SECONDS)


def test_after_the_close_on_expiry_day_is_expired() -> None:
    as_of = datetime(2026, 3, 13, 16, 30, tzinfo=NEW_YORK)
    assert calendar_dte(as_of, date(2026, 3, 13)) == 0
    assert years_to_expiry(as_of, date(2026, 3, 13)) == pytest.approx(-1800 / YEAR_SECONDS)
    assert calendar_dte(as_of, date(2026, 3, 12)) == -1


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_dte(datetime(2026, 3, 6, 15, 0), date(2026, 3, 13))
    with pytest.raises(ValueError, match="timezone-aware"):
        years_to_expiry(datetime(2026, 3, 6, 15, 0), date(2026, 3, 13))


def test_annualized_return_is_percent_with_one_day_floor() -> None:
    # 1.00 on a 100 strike for 7 days: 1 % a week = 365 / 7 % a year.
    assert float(annualized_return_pct(1.00, 100.0, 7)) == pytest.approx(52.142857142857, rel=1e-12)
    assert float(annualized_return_pct(1.00, 100.0, 7)) == pytest.approx(365 / 7)
    same_day = annualized_return_pct(1.00, 100.0, [0, -1, 1])
    np.testing.assert_allclose(same_day, 365.0)  # 0-DTE counts as one day
    assert np.isnan(annualized_return_pct([0.0, np.nan, -0.05], 100.0, 7)).all()


@pytest.mark.parametrize(
    ("dte", "target"),
    [
        (0, 0.2),
        (1, 0.2),
        (7, 0.2),
        (8, 0.24),
        (14, 0.24),
        (15, 0.28),
        (21, 0.28),
        (22, 0.32),
        (28, 0.32),
        (29, 0.36),
        (45, 0.36),
        (365, 0.36),
    ],
)
def test_call_delta_target_steps_weekly(dte: int, target: float) -> None:
    assert float(call_delta_target(dte)) == pytest.approx(target)


def test_call_delta_target_vectorized_and_configurable() -> None:
    np.testing.assert_allclose(call_delta_target(np.array([3, 10, 17])), [0.20, 0.24, 0.28])
    np.testing.assert_allclose(
        call_delta_target([3, 10, 17, 60], base=0.10, step=0.05, cap=0.2), [0.10, 0.15, 0.2, 0.2]
    )


# --- analyze_chain on recorded chains ---------------------------------------------------------


@pytest.fixture(scope="module")
def regular() -> Chain:
    return load_chain(REGULAR_FILE)


def check_invariants(chain: Chain, side: str, df: pd.DataFrame) -> None:
    """Assert what must hold on any analysed chain, against hand formulas and vollib."""
    contracts = chain.puts if side == "put" else chain.calls
    assert list(df.columns) == EXPECTED_COLUMNS
    assert len(df) == len(contracts)
    assert list(df["contract"]) == list(contracts.contract)
    assert df["dte"].dtype == np.int64 and df["valid"].dtype == bool
    assert all(isinstance(x, date) for x in df["expiration"])
    assert all(isinstance(f, tuple) for f in df["flags"])
    spot = chain.quote.price
    # One forward per expiration: the market's, or spot carried at RATE less the yield.
    assert df["forward"].nunique() <= 1
    fallback = df["flags"].map(lambda f: "forward_fallback" in f)
    assert fallback.nunique() <= 1
    if len(df) and fallback.iloc[0]:
        t = max(df["t_years"].iloc[0], 0.0)
        carried = spot * math.exp((RATE - chain.quote.dividend_yield) * t)
        assert df["forward"].iloc[0] == pytest.approx(carried, rel=1e-12)

    # Invalid rows carry nothing a filter could accept (the origin app's delta = 1 bug).
    invalid = df[~df["valid"]]
    for column in ["delta", "iv", "pop_otm", "annualized_return"]:
        assert invalid[column].isna().all(), column
    assert not (invalid["delta"] >= -0.20).any()
    assert invalid["iv_source"].isna().all()
    for flags in invalid["flags"]:
        assert {"no_bid", "crossed", "iv_out_of_range", "expired"} & set(flags)

    valid = df[df["valid"]]
    assert valid["iv"].between(0.01, 5.0).all()
    assert valid["bid"].gt(0).all()
    if side == "put":
        assert ((valid["delta"] > -1) & (valid["delta"] < 0)).all()
        np.testing.assert_allclose(df["otm_pct"], (spot - df["strike"]) / spot * 100)
        np.testing.assert_allclose(df["breakeven"], df["strike"] - df["bid"].where(df["bid"] > 0))
    else:
        assert ((valid["delta"] > 0) & (valid["delta"] < 1)).all()
        np.testing.assert_allclose(df["otm_pct"], (df["strike"] - spot) / spot * 100)
        np.testing.assert_allclose(df["breakeven"], df["strike"] + df["bid"].where(df["bid"] > 0))
    assert (valid["pop_otm"].between(0, 1)).all()
    # A mid-based IV reprices the mid in vollib; the delta is vollib's at that IV.
    for row in valid.itertuples():
        t = row.t_years
        q = bsm_yield(spot, row.forward, t)
        if row.iv_source == "mid":
            repriced = vollib_price(flag(side), spot, row.strike, t, RATE, row.iv, q)
            assert repriced == pytest.approx(row.mid, rel=1e-9, abs=1e-9)
        else:
            assert row.iv_source == "yahoo" and "yahoo_iv" in row.flags
        assert row.delta == pytest.approx(
            vollib_delta(flag(side), spot, row.strike, t, RATE, row.iv, q), abs=1e-12
        )
        expected_return = row.bid / row.strike * 365 / max(row.dte, 1) * 100
        assert row.annualized_return == pytest.approx(expected_return)

    two_sided = (df["bid"] > 0) & (df["ask"] > 0) & (df["ask"] >= df["bid"])
    np.testing.assert_allclose(df["mid"], ((df["bid"] + df["ask"]) / 2).where(two_sided))
    np.testing.assert_allclose(
        df["spread_pct"], ((df["ask"] - df["bid"]) / df["mid"] * 100).where(two_sided)
    )
    # Yahoo's IV is never used when a two-sided quote exists, even if the mid is unsolvable.
    assert (
        df.loc[two_sided, "iv_source"].isin(["mid"]).sum() == df.loc[two_sided, "iv"].notna().sum()
    )
    assert not any("yahoo_iv" in f for f in df.loc[two_sided, "flags"])
    assert (df["flags"].map(lambda f: "no_bid" in f) == ~(df["bid"] > 0)).all()


@pytest.mark.parametrize("path", TWO_SIDED_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("side", ["put", "call"])
def test_invariants_on_recorded_chains(path: Path, side: str) -> None:
    chain = load_chain(path)
    df = analyse(chain, side)
    check_invariants(chain, side, df)


def test_regular_hours_chain(regular: Chain) -> None:
    puts = analyse(regular, "put")
    calls = analyse(regular, "call")
    # Captured 2025-08-28 17:12:13 UTC; expires 2025-08-29 16:00 EDT = 20:00 UTC. Yahoo's
    # expiration epoch is that date's 00:00 UTC, so the close is 20 hours later.
    close_epoch = 1756425600 + 20 * 3600
    assert (puts["dte"] == 1).all()
    assert puts["t_years"].iloc[0] == pytest.approx((close_epoch - 1756401133) / YEAR_SECONDS)
    assert puts["valid"].sum() >= 25 and calls["valid"].sum() >= 8
    assert (puts.loc[puts["valid"], "iv_source"] == "mid").all()
    # No earnings or ex-dividend date falls in this one-day window in the recording.
    assert not any({"earnings", "ex_dividend"} & set(f) for f in puts["flags"])
    # Two-sided ITM calls whose mid sits below the discounted intrinsic value on the forward,
    # D (F - K), have no IV, and vollib agrees there is none.
    t = puts["t_years"].iloc[0]
    below = calls[calls["mid"] < math.exp(-RATE * t) * (calls["forward"] - calls["strike"])]
    assert len(below) > 0
    assert below["flags"].map(lambda f: "iv_out_of_range" in f).all()
    for row in below.itertuples():
        q = bsm_yield(regular.quote.price, row.forward, t)
        with pytest.raises(BELOW_INTRINSIC):
            vollib_implied_vol(row.mid, regular.quote.price, row.strike, t, RATE, q, "c")


def test_mid_iv_ignores_yahoo_placeholders(regular: Chain) -> None:
    puts = analyse(regular, "put")
    yahoo = regular.puts.vendor_iv
    valid = puts["valid"].to_numpy()
    # Yahoo's own figures differ from the mid-based ones on this chain: they are not copied.
    assert (np.abs(puts["iv"].to_numpy()[valid] - yahoo[valid]) > 1e-4).any()


@pytest.mark.parametrize("path", ALL_ZERO_FILES, ids=lambda p: p.name)
def test_pre_market_zero_quotes_are_all_invalid(path: Path) -> None:
    chain = load_chain(path)
    for side in ["put", "call"]:
        df = analyse(chain, side)
        check_invariants(chain, side, df)
        assert len(df) > 0
        assert not df["valid"].any()
        assert df["delta"].isna().all() and df["annualized_return"].isna().all()
        assert df["flags"].map(lambda f: "no_bid" in f).all()


def test_pre_market_aapl_zero_bids_are_invalid() -> None:
    chain = load_chain(PRE_MARKET_AAPL)
    df = analyse(chain, "put")
    check_invariants(chain, "put", df)
    assert (df["bid"] == 0).all() and not df["valid"].any()
    # Yahoo's pre-market IVs include 1e-5 placeholders: out of range on top of no_bid.
    tiny = chain.puts.vendor_iv < 0.01
    assert tiny.any()
    assert df.loc[tiny, "flags"].map(lambda f: "iv_out_of_range" in f).all()


def test_capture_at_the_close_on_expiry_day_is_expired() -> None:
    # Recorded on the expiration day, one second after the 16:00 EDT close.
    chain = load_chain(DATA / "gramistella__yfinance-rs/options_v7_AAPL_1755216000.json")
    df = analyse(chain, "put")
    check_invariants(chain, "put", df)
    assert (df["dte"] == 0).all()
    # regularMarketTime is 1755288001, one second after the 16:00 EDT close (1755288000).
    assert df["t_years"].iloc[0] == pytest.approx(-1 / YEAR_SECONDS)
    assert df["flags"].map(lambda f: "expired" in f).all() and not df["valid"].any()


def test_capture_time_comes_from_the_quote() -> None:
    # A 2016 recording: DTE from its own capture time (Tue 2016-09-06) to Fri 2016-09-09.
    chain = load_chain(DATA / "pydata__pandas-datareader/yahoo_options1.json")
    df = analyse(chain, "call")
    assert (df["dte"] == 3).all() and df["valid"].any()


def test_empty_recorded_chain_gives_empty_frame() -> None:
    chain = load_chain(DATA / "gadicc__node-yahoo-finance2/options-AAPL-expire-2022-03-01.json")
    df = analyse(chain, "put")
    assert df.empty and list(df.columns) == EXPECTED_COLUMNS


def test_side_must_be_put_or_call(regular: Chain) -> None:
    with pytest.raises(ValueError, match="side must be"):
        analyse(regular, "puts")


# --- flags on modified copies of a real row (AAPL 2025-08-29 230 put, bid 0.78 / ask 0.79) -----


def analyse_one(chain: Chain, **kwargs) -> pd.Series:
    df = analyse(chain, "put", **kwargs)
    assert len(df) == 1
    return df.iloc[0]


def test_untouched_row_is_valid_and_clean(regular: Chain) -> None:
    row = analyse_one(one_row_chain(regular, "put", 230.0))
    assert row["valid"] and row["flags"] == () and row["iv_source"] == "mid"
    assert row["mid"] == pytest.approx(0.785)
    assert row["breakeven"] == pytest.approx(230.0 - 0.78)


def test_crossed_quote(regular: Chain) -> None:
    row = analyse_one(one_row_chain(regular, "put", 230.0, bid=0.79, ask=0.78))
    assert "crossed" in row["flags"] and not row["valid"]
    assert np.isnan([row["delta"], row["iv"], row["pop_otm"], row["annualized_return"]]).all()
    assert np.isnan(row["mid"]) and row["iv_source"] is None


@pytest.mark.parametrize("bid", [0.0, np.nan])
def test_no_bid(regular: Chain, bid: float) -> None:
    row = analyse_one(one_row_chain(regular, "put", 230.0, bid=bid))
    assert "no_bid" in row["flags"] and not row["valid"]
    assert np.isnan([row["delta"], row["iv"], row["annualized_return"], row["breakeven"]]).all()


def test_no_ask_falls_back_to_yahoo_iv(regular: Chain) -> None:
    chain = one_row_chain(regular, "put", 230.0, ask=np.nan)
    yahoo_iv = float(chain.puts.vendor_iv[0])
    row = analyse_one(chain)
    assert {"no_ask", "yahoo_iv"} <= set(row["flags"])
    assert row["valid"] and row["iv_source"] == "yahoo" and row["iv"] == yahoo_iv
    q = bsm_yield(regular.quote.price, row["forward"], row["t_years"])
    assert row["delta"] == pytest.approx(
        vollib_delta("p", regular.quote.price, 230.0, row["t_years"], RATE, yahoo_iv, q)
    )
    assert np.isnan(row["mid"]) and np.isnan(row["spread_pct"])


@pytest.mark.parametrize("placeholder", [1e-5, 15.0, np.nan])
def test_no_ask_with_unusable_yahoo_iv_is_invalid(regular: Chain, placeholder: float) -> None:
    row = analyse_one(one_row_chain(regular, "put", 230.0, ask=0.0, vendor_iv=placeholder))
    assert "iv_out_of_range" in row["flags"] and not row["valid"]
    assert np.isnan(row["delta"]) and np.isnan(row["iv"])


def test_wide_spread_is_informational(regular: Chain) -> None:
    chain = one_row_chain(regular, "put", 230.0, ask=2.00)  # (2.00-0.78)/1.39 = 87.8 % of mid
    row = analyse_one(chain)
    assert row["spread_pct"] == pytest.approx((2.00 - 0.78) / 1.39 * 100)
    assert row["flags"] == ("wide_spread",) and row["valid"]
    assert analyse_one(chain, wide_spread_pct=None)["flags"] == ()
    assert analyse_one(chain, wide_spread_pct=90.0)["flags"] == ()


def test_earnings_and_ex_dividend_before_expiry(regular: Chain) -> None:
    as_of = regular.quote.as_of
    close = datetime(2025, 8, 29, 20, 0, tzinfo=UTC)
    inside = dataclasses.replace(
        regular.quote, earnings_at=as_of + timedelta(hours=6), ex_dividend_at=close - timedelta(1)
    )
    row = analyse_one(one_row_chain(dataclasses.replace(regular, quote=inside), "put", 230.0))
    assert {"earnings", "ex_dividend"} <= set(row["flags"]) and row["valid"]
    for when in [as_of - timedelta(hours=1), close + timedelta(minutes=1)]:
        outside = dataclasses.replace(regular.quote, earnings_at=when, ex_dividend_at=when)
        row = analyse_one(one_row_chain(dataclasses.replace(regular, quote=outside), "put", 230.0))
        assert row["flags"] == ()


@pytest.mark.parametrize("seconds_after_close", [0, 1, 7200])
def test_expired_row(regular: Chain, seconds_after_close: int) -> None:
    # 2025-08-29 16:00 EDT is 20:00 UTC; at the close itself no time is left.
    as_of = datetime(2025, 8, 29, 20, 0, tzinfo=UTC) + timedelta(seconds=seconds_after_close)
    late = dataclasses.replace(regular.quote, as_of=as_of)
    row = analyse_one(one_row_chain(dataclasses.replace(regular, quote=late), "put", 230.0))
    assert "expired" in row["flags"] and not row["valid"]
    assert row["dte"] == 0 and row["t_years"] == pytest.approx(-seconds_after_close / YEAR_SECONDS)
    assert np.isnan(row["delta"]) and np.isnan(row["annualized_return"])


def test_dividend_yield_reaches_the_iv_of_a_fallback(regular: Chain) -> None:
    # Without puts no strike pairs up, so the forward falls back to spot and the yield.
    calls_only = dataclasses.replace(regular, puts=regular.puts.take([]))
    no_yield = dataclasses.replace(
        calls_only, quote=dataclasses.replace(regular.quote, dividend_yield=0)
    )
    with_q = analyse(calls_only, "call")
    without_q = analyse(no_yield, "call")
    assert with_q["flags"].map(lambda f: "forward_fallback" in f).all()
    both = with_q["valid"] & without_q["valid"]
    assert both.sum() > 3
    # A dividend yield lowers the forward, so the same call mid needs a higher volatility.
    assert (with_q.loc[both, "iv"] > without_q.loc[both, "iv"]).all()


def test_the_market_forward_makes_the_quoted_yield_irrelevant(regular: Chain) -> None:
    no_yield = dataclasses.replace(
        regular, quote=dataclasses.replace(regular.quote, dividend_yield=0)
    )
    with_q, without_q = analyse(regular, "call"), analyse(no_yield, "call")
    assert not with_q["flags"].map(lambda f: "forward_fallback" in f).any()
    # The chain's own forward already holds whatever dividends the market expects.
    pd.testing.assert_frame_equal(with_q, without_q)


@pytest.mark.parametrize("side", ["put", "call"])
@pytest.mark.parametrize("only_valid", [True, False])
def test_records_are_the_rows_as_json_ready_matches(
    regular: Chain, side: str, only_valid: bool
) -> None:
    rows = analyze_chain(regular, side, risk_free_rate=RATE)
    frame = rows.frame()
    keep = rows.valid if only_valid else np.ones(len(rows), dtype=bool)
    records = rows.records(keep if only_valid else None)
    assert len(records) == keep.sum() > 0
    json.dumps(records, allow_nan=False)  # NaN would fail here
    for record, (_, row) in zip(records, frame[keep].iterrows(), strict=True):
        assert tuple(record) == MATCH_FIELDS
        for name in MATCH_FIELDS:
            value = row[name]
            if name == "expiration":
                assert record[name] == value.isoformat()
            elif name == "flags":
                assert record[name] == list(value)
            elif isinstance(value, float) and math.isnan(value):
                assert record[name] is None, name
            elif name in INTEGER_FIELDS:
                assert type(record[name]) is int and record[name] == value, name
            else:
                assert record[name] == value, name
    if not only_valid:
        assert any(r["delta"] is None for r in records)
