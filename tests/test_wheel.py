"""The wheel's money figures, checked against sums worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optscan.core.wheel import (
    CONTRACT_SIZE,
    Holding,
    annualize_pct,
    downside_protection_pct,
    expected_move,
    premium,
    put_collateral,
    put_contracts,
    return_if_assigned_pct,
    sigma_distance,
)


def test_a_contract_is_100_shares_so_dollars_are_per_share_times_100() -> None:
    assert CONTRACT_SIZE == 100
    # A 2.15 bid pays 215 USD per contract; a 230 strike ties up 23,000 USD.
    np.testing.assert_allclose(premium([2.15, 0.05]), [215.0, 5.0])
    np.testing.assert_allclose(put_collateral([230.0, 7.5]), [23000.0, 750.0])


def test_puts_are_sized_by_the_cash_and_none_without_it() -> None:
    # 50,000 USD secures two 230 puts (46,000) but not three (69,000); one 480 put.
    np.testing.assert_array_equal(put_contracts([230.0, 480.0, 600.0], 50_000), [2, 1, 0])
    assert np.isnan(put_contracts([230.0], None)).all()
    # Exactly enough cash is enough.
    np.testing.assert_array_equal(put_contracts([250.0], 25_000), [1])


def test_held_shares_cover_one_call_per_100() -> None:
    assert Holding(shares=250, cost_basis=230.0).coverable_contracts == 2
    assert Holding(shares=99, cost_basis=230.0).coverable_contracts == 0


def test_a_call_above_the_basis_returns_the_gain_plus_the_premium() -> None:
    # Bought at 230, sell the 240 call for 1.50: assigned, 10 + 1.50 = 11.50 per share,
    # 11.50 / 230 = 5.0 %; over 14 days that is 5.0 * 365 / 14 = 130.36 % a year.
    got = return_if_assigned_pct([240.0], 230.0, [1.50])
    assert got[0] == pytest.approx(5.0)
    assert annualize_pct(got, [14])[0] == pytest.approx(5.0 * 365 / 14)
    # Below the basis the gain is negative even with the premium: 225 - 230 + 2 = -3 per share.
    assert return_if_assigned_pct([225.0], 230.0, [2.0])[0] == pytest.approx(-3 / 230 * 100)
    # A same-day expiry annualizes over one day, as the annualized return does.
    assert annualize_pct([1.0], [0])[0] == pytest.approx(365.0)


def test_downside_protection_is_the_premium_over_the_spot() -> None:
    assert downside_protection_pct([2.30], 230.0)[0] == pytest.approx(1.0)


def test_expected_move_and_sigma_distance() -> None:
    # IV 25 %, 36.5 days (0.1 year): one standard deviation is 25 % x sqrt(0.1) = 7.906 %.
    spot, iv, t = 200.0, 0.25, 0.1
    move = expected_move(spot, [iv], [t])[0]
    assert move == pytest.approx(200 * 0.25 * math.sqrt(0.1))
    # A strike one expected move below a forward of 201 lies 1.0 sigma away, on either side.
    forward = 201.0
    one_sigma = forward * iv * math.sqrt(t)
    np.testing.assert_allclose(
        sigma_distance([forward - one_sigma, forward + 2 * one_sigma], forward, iv, t), [1.0, 2.0]
    )
    # No IV or no time left: no distance.
    assert np.isnan(sigma_distance([190.0], forward, [np.nan], t)).all()
    assert np.isnan(sigma_distance([190.0], forward, iv, [0.0])).all()
