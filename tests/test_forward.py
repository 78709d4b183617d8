"""The forward each expiration is priced on: recovered from synthetic chains, robust to bad quotes.

Synthetic chains are priced by vollib's Black-76 on a forward set by a known rate, dividend
yield and borrow cost, F = S e^{(r - q - b) T}; the quotes are the model price -/+ a spread, so
their mids are the model prices. References for IV and delta are vollib's, not ours.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from vollib.black import black as vollib_black
from vollib.black_scholes_merton.greeks.analytical import delta as vollib_bsm_delta

from bench.pipeline import iv_agreement
from optscan.core.bsm import implied_vol
from optscan.core.chain import analyze_chain, analyze_chains
from optscan.core.expiry import years_to_expiry
from optscan.core.forward import BAND_FLOOR, Forward, band, implied_forward
from optscan.core.market import NEW_YORK
from optscan.sources.base import Chain, Contracts, Quote

AS_OF = datetime(2026, 3, 2, 14, 30, tzinfo=NEW_YORK)
SPOT = 200.0
RATE = 0.045
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "yahoo-v7"


def smile(strike: float, spot: float = SPOT) -> float:
    """Return a skewed volatility smile (fraction per year): puts richer than calls."""
    m = math.log(strike / spot)
    return 0.25 - 0.3 * m + 0.8 * m * m


def synthetic_chain(
    *,
    days: int = 30,
    dividend_yield: float = 0.0,
    borrow: float = 0.0,
    quoted_yield: float | None = None,
    strikes: np.ndarray | None = None,
    half_spread: float = 0.02,
    spot: float = SPOT,
) -> Chain:
    """Return a chain priced with Black-76 on S e^{(RATE - q - b) T}, quotes mid -/+ half_spread.

    quoted_yield is the dividend yield the quote reports (the generator's q by default).
    """
    expiration = AS_OF.date() + timedelta(days=days)
    t = years_to_expiry(AS_OF, expiration)
    forward = spot * math.exp((RATE - dividend_yield - borrow) * t)
    strikes = np.arange(120.0, 281.0, 5.0) if strikes is None else strikes

    def side(flag: str) -> Contracts:
        prices = np.array(
            [vollib_black(flag, forward, k, t, RATE, smile(k, spot)) for k in strikes]
        )
        # A price below the spread cannot be quoted around it: such contracts get no bid.
        bid = np.where(prices > half_spread, prices - half_spread, 0.0)
        ask = np.where(prices > half_spread, prices + half_spread, 0.05)
        names = [f"SYN{expiration:%y%m%d}{flag.upper()}{int(k * 1000):08d}" for k in strikes]
        return Contracts.of(names, strike=strikes, bid=bid, ask=ask, vendor_iv=[0.3] * len(names))

    quote = Quote(
        symbol="SYN",
        price=spot,
        as_of=AS_OF,
        dividend_yield=dividend_yield if quoted_yield is None else quoted_yield,
    )
    return Chain("SYN", expiration, quote, calls=side("c"), puts=side("p"))


def with_quotes(contracts: Contracts, strike: float, **changes: float) -> Contracts:
    """Return the contracts with the quote at one strike changed."""
    (index,) = np.flatnonzero(contracts.strike == strike)
    arrays = {name: getattr(contracts, name).copy() for name in changes}
    for name, value in changes.items():
        arrays[name][index] = value
    return dataclasses.replace(contracts, **arrays)


def forward_of(chain: Chain) -> Forward:
    return implied_forward(chain, RATE)


CARRIES = [(0.0, 0.0), (0.03, 0.0), (0.0, 0.25), (0.015, 0.60), (0.08, -0.02)]


@pytest.mark.parametrize(("dividend_yield", "borrow"), CARRIES)
@pytest.mark.parametrize("days", [2, 30, 365])
def test_the_forward_is_recovered_from_the_chain(
    dividend_yield: float, borrow: float, days: int
) -> None:
    # The quote reports no yield at all: the forward must come from the quotes alone.
    chain = synthetic_chain(days=days, dividend_yield=dividend_yield, borrow=borrow, quoted_yield=0)
    t = years_to_expiry(AS_OF, chain.expiration)
    expected = SPOT * math.exp((RATE - dividend_yield - borrow) * t)
    found = forward_of(chain)
    assert found.source == "market" and found.pairs == 3
    assert found.forward == pytest.approx(expected, rel=1e-6)
    assert found.carry == pytest.approx(RATE - dividend_yield - borrow, abs=1e-6 / t)


@pytest.mark.parametrize(("dividend_yield", "borrow"), CARRIES)
def test_iv_delta_and_pop_are_the_generators(dividend_yield: float, borrow: float) -> None:
    chain = synthetic_chain(dividend_yield=dividend_yield, borrow=borrow, quoted_yield=0)
    t = years_to_expiry(AS_OF, chain.expiration)
    carry_yield = dividend_yield + borrow  # what BSM on spot needs to reach the forward
    for side, flag in (("put", "p"), ("call", "c")):
        rows = analyze_chain(chain, side, risk_free_rate=RATE)
        priced = rows.iv_from_mid & rows.valid
        assert priced.sum() >= 10
        assert not rows.has_flag("forward_fallback").any()
        for i in np.flatnonzero(priced):
            k = rows.strike[i]
            assert rows.iv[i] == pytest.approx(smile(k), abs=1e-8)
            reference = vollib_bsm_delta(flag, SPOT, k, t, RATE, smile(k), carry_yield)
            assert rows.delta[i] == pytest.approx(reference, abs=1e-8)
            sigma_t = smile(k) * math.sqrt(t)
            d2 = (math.log(rows.forward[i] / k) - 0.5 * sigma_t**2) / sigma_t
            below = 0.5 * math.erfc(d2 / math.sqrt(2))  # P(S_T < K) = N(-d2)
            assert rows.pop_otm[i] == pytest.approx(1 - below if side == "put" else below)


def test_spot_and_the_quoted_yield_skew_put_and_call_ivs_apart() -> None:
    # What the forward fixes: a stock with a 25 % borrow cost, priced off spot and its yield.
    chain = synthetic_chain(borrow=0.25)
    t = years_to_expiry(AS_OF, chain.expiration)
    at = np.flatnonzero(chain.puts.strike == SPOT)[0]
    mids = [0.5 * (c.bid[at] + c.ask[at]) for c in (chain.calls, chain.puts)]
    old_call, old_put = (
        float(implied_vol(mid, is_call, SPOT, SPOT, t, RATE, 0.0))
        for mid, is_call in zip(mids, (True, False), strict=True)
    )
    assert old_put - old_call > 0.05  # five vol points apart at the money
    puts = analyze_chain(chain, "put", risk_free_rate=RATE)
    calls = analyze_chain(chain, "call", risk_free_rate=RATE)
    assert puts.iv[at] == pytest.approx(calls.iv[at], abs=1e-8)
    assert puts.iv[at] == pytest.approx(smile(SPOT), abs=1e-8)


def test_deep_in_the_money_and_one_sided_strikes_never_set_the_forward() -> None:
    chain = synthetic_chain(dividend_yield=0.02)
    t = years_to_expiry(AS_OF, chain.expiration)
    width = band(t)
    calls, puts = chain.calls, chain.puts
    near = [k for k in calls.strike if abs(k / SPOT - 1) <= width]
    assert len(near) >= 5
    # Every strike away from the money quotes a put 1 USD too rich: parity there says the
    # forward is ~1 USD lower (well inside the sanity band, so only the strike filter saves us).
    for k in calls.strike:
        if k not in near:
            (i,) = np.flatnonzero(puts.strike == k)
            puts = with_quotes(puts, k, bid=puts.bid[i] + 1, ask=puts.ask[i] + 1)
    # Near the money, all but one strike lose a side (no bid, no ask, or a bid alone), each
    # with a quote that would move the forward by dollars if it counted.
    keep = near[-1]
    for n, k in enumerate(near):
        if k == keep:
            continue
        if n % 3 == 0:
            calls = with_quotes(calls, k, bid=0.0, ask=50.0)
        elif n % 3 == 1:
            puts = with_quotes(puts, k, bid=np.nan, ask=30.0)
        else:
            calls = with_quotes(calls, k, bid=40.0, ask=np.nan)
    found = forward_of(dataclasses.replace(chain, calls=calls, puts=puts))
    expected = SPOT * math.exp((RATE - 0.02) * t)
    assert found.source == "market" and found.pairs == 1
    assert found.forward == pytest.approx(expected, rel=1e-6)


def test_a_cheap_stock_with_wide_strike_spacing_uses_the_strikes_next_to_spot() -> None:
    # 5.30 USD, strikes 1 USD apart, one day left: no strike lies within the 2.6 % band, but
    # the listed strikes either side of spot (5 and 6) are as near the money as it gets.
    chain = synthetic_chain(
        days=1, borrow=0.2, spot=5.3, strikes=np.arange(2.0, 9.0), half_spread=0
    )
    assert not (np.abs(chain.calls.strike / 5.3 - 1) <= band(1 / 365)).any()
    # The strikes beyond them quote puts 0.30 too rich: they must not count.
    puts = chain.puts
    for k in (4.0, 7.0):
        (i,) = np.flatnonzero(puts.strike == k)
        puts = with_quotes(puts, k, bid=puts.bid[i] + 0.3, ask=puts.ask[i] + 0.3)
    found = forward_of(dataclasses.replace(chain, puts=puts))
    t = years_to_expiry(AS_OF, chain.expiration)
    assert found.source == "market" and found.pairs == 2
    assert found.forward == pytest.approx(5.3 * math.exp((RATE - 0.2) * t), rel=1e-6)


def test_the_median_ignores_one_bad_pair_of_the_three() -> None:
    chain = synthetic_chain(borrow=0.1)
    t = years_to_expiry(AS_OF, chain.expiration)
    # The put at the money quotes 0.80 too cheap: its strike alone implies F 0.80 too high.
    (i,) = np.flatnonzero(chain.puts.strike == SPOT)
    puts = with_quotes(chain.puts, SPOT, bid=chain.puts.bid[i] - 0.8, ask=chain.puts.ask[i] - 0.8)
    found = forward_of(dataclasses.replace(chain, puts=puts))
    assert found.pairs == 3
    assert found.forward == pytest.approx(SPOT * math.exp((RATE - 0.1) * t), rel=1e-6)


@pytest.mark.parametrize("case", ["no pair", "one-sided", "insane", "expired"])
def test_an_expiration_without_a_valid_pair_falls_back_and_is_flagged(case: str) -> None:
    chain = synthetic_chain(dividend_yield=0.01, borrow=0.3)
    if case == "no pair":
        chain = dataclasses.replace(chain, puts=chain.puts.take([]))
    elif case == "one-sided":
        no_bid = np.where(np.abs(chain.calls.strike / SPOT - 1) <= 0.2, 0.0, chain.calls.bid)
        chain = dataclasses.replace(chain, calls=dataclasses.replace(chain.calls, bid=no_bid))
    elif case == "insane":
        # Calls 60 USD too rich everywhere: parity says F ~ 1.3 S, outside the band.
        calls = dataclasses.replace(chain.calls, bid=chain.calls.bid + 60, ask=chain.calls.ask + 60)
        chain = dataclasses.replace(chain, calls=calls)
    else:
        late = dataclasses.replace(chain.quote, as_of=AS_OF + timedelta(days=31))
        chain = dataclasses.replace(chain, quote=late)
    t = years_to_expiry(chain.quote.as_of, chain.expiration)
    found = forward_of(chain)
    assert found.source == "fallback" and found.pairs == 0
    assert found.carry == pytest.approx(RATE - 0.01)
    assert found.forward == pytest.approx(SPOT * math.exp((RATE - 0.01) * max(t, 0)), rel=1e-12)
    rows = analyze_chain(chain, "put", risk_free_rate=RATE)
    assert rows.has_flag("forward_fallback").all()
    assert all("forward_fallback" in r["flags"] for r in rows.records())
    assert (rows.forward == found.forward).all()


def test_the_band_widens_with_time_from_a_floor() -> None:
    assert band(-1.0) == band(0.0) == band(0.001) == BAND_FLOOR
    assert band(1.0) == pytest.approx(0.5)
    assert band(0.25) < band(1.0)


def test_each_expiration_of_a_symbol_has_its_own_forward() -> None:
    near = synthetic_chain(days=7, borrow=0.2, quoted_yield=0)
    far = synthetic_chain(days=90, borrow=0.2, quoted_yield=0)
    lonely = dataclasses.replace(synthetic_chain(days=14), puts=near.puts.take([]))
    rows = analyze_chains([near, far, lonely], "call", risk_free_rate=RATE)
    assert list(rows.forwards) == [near.expiration, far.expiration, lonely.expiration]
    for chain in (near, far):
        t = years_to_expiry(AS_OF, chain.expiration)
        forward = rows.forwards[chain.expiration]
        assert forward.forward == pytest.approx(SPOT * math.exp((RATE - 0.2) * t), rel=1e-6)
        mine = rows.expiration == chain.expiration
        assert (rows.forward[mine] == forward.forward).all()
        assert not rows.has_flag("forward_fallback")[mine].any()
    assert rows.forwards[lonely.expiration].source == "fallback"
    assert rows.has_flag("forward_fallback")[rows.expiration == lonely.expiration].all()


# --- the recorded chains --------------------------------------------------------------------


def test_call_and_put_ivs_agree_better_on_the_recorded_chains() -> None:
    # The ten AAPL expirations recorded Aug-Oct 2025; near the money, where both legs trade.
    before, after = iv_agreement()["near"]
    assert len(before) >= 50
    # Measured: 1.7 vol points before, 0.5 after (BENCHMARKS.md, table 2c).
    assert np.median(after) < 0.5 * np.median(before)


def test_report_forwards_are_json_ready() -> None:
    rows = analyze_chain(synthetic_chain(borrow=0.1), "put", risk_free_rate=RATE)
    (forward,) = rows.forwards.values()
    data = json.loads(json.dumps(forward.to_dict(), allow_nan=False))
    assert data == {
        "forward": forward.forward,
        "carry": forward.carry,
        "source": "market",
        "pairs": 3,
    }
    assert isinstance(rows.forwards, dict) and list(rows.forwards) == [date(2026, 4, 1)]
