"""ATM IV and 30-day IV from synthetic chains with known IVs; IV rank and percentile by hand."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime

import numpy as np
import pytest

from optscan.core.atmiv import IV30_YEARS, atm_iv, atm_ivs, iv30
from optscan.core.chain import analyze_chains
from optscan.core.ivrank import (
    MIN_DAYS,
    WINDOW_DAYS,
    IvRank,
    gate,
    iv_rank,
    rank_words,
    trading_day,
)
from optscan.core.market import NEW_YORK
from tests.test_forward import RATE, SPOT, smile, synthetic_chain

# -- ATM IV and 30-day IV --------------------------------------------------------------------


def test_atm_iv_interpolates_in_log_strike_between_the_strikes_around_the_forward() -> None:
    strikes = np.array([110.0, 90.0, 100.0])  # unsorted on purpose
    ivs = np.array([0.20, 0.30, 0.25])
    # Between 100 and 110: a third of the way in log-strike.
    forward = 100.0 * (110.0 / 100.0) ** (1 / 3)
    assert atm_iv(strikes, ivs, forward) == pytest.approx(0.25 - 0.05 / 3, abs=1e-12)
    assert atm_iv(strikes, ivs, 100.0) == 0.25  # on a strike: its own IV
    # Every strike on one side of the forward: no bracket, no guess.
    assert atm_iv(strikes, ivs, 120.0) is None and atm_iv(strikes, ivs, 80.0) is None
    # A missing IV is skipped: the bracket is then 90-110.
    gap = atm_iv(strikes, np.array([0.20, 0.30, np.nan]), 100.0)
    assert gap == pytest.approx(0.30 + (0.20 - 0.30) * math.log(100 / 90) / math.log(110 / 90))


@pytest.mark.parametrize("side", ["put", "call"])
def test_atm_iv_of_a_synthetic_chain_is_its_smile_at_the_forward(side: str) -> None:
    chain = synthetic_chain(days=30, dividend_yield=0.02)
    rows = analyze_chains([chain], side, risk_free_rate=RATE)
    ((expiration, (t_years, found)),) = atm_ivs(rows).items()
    forward = rows.forwards[expiration].forward
    assert rows.forwards[expiration].source == "market"
    # The strikes are 5 apart; the forward lies between two of them.
    k1 = math.floor(forward / 5) * 5.0
    k2 = k1 + 5.0
    weight = math.log(forward / k1) / math.log(k2 / k1)
    expected = smile(k1) + weight * (smile(k2) - smile(k1))
    assert found == pytest.approx(expected, abs=1e-6)
    # ... which is the smile at the forward, to within the interpolation's curvature error.
    assert found == pytest.approx(smile(forward, SPOT), abs=2e-4)
    assert t_years == pytest.approx(rows.t_years[0])


def test_atm_iv_ignores_vendor_ivs_and_unusable_rows() -> None:
    chain = synthetic_chain(days=30)
    puts = chain.puts
    # No ask at the strikes around the forward: those rows take the vendor's IV (0.30), which
    # must not count; the bracket widens to the next strikes solved from a mid.
    near = (puts.strike >= 195) & (puts.strike <= 205)
    ask = puts.ask.copy()
    ask[near] = np.nan
    chain = dataclasses.replace(chain, puts=dataclasses.replace(puts, ask=ask))
    rows = analyze_chains([chain], "put", risk_free_rate=RATE)
    assert rows.has_flag("yahoo_iv")[near].all() and (rows.iv[near] == 0.3).all()
    ((expiration, (_, found)),) = atm_ivs(rows).items()
    forward = rows.forwards[expiration].forward
    weight = math.log(forward / 190) / math.log(210 / 190)
    assert found == pytest.approx(smile(190) + weight * (smile(210) - smile(190)), abs=1e-6)


def test_iv30_interpolates_total_variance_between_the_expirations_around_30_days() -> None:
    near, far = date(2026, 1, 1), date(2026, 2, 1)
    # 20 days at 20 %, 40 days at 30 %: total variance 0.8/365 and 3.6/365; halfway at 30
    # days, 2.2/365, so IV30 = sqrt(2.2 / 30).
    points = {near: (20 / 365, 0.20), far: (40 / 365, 0.30)}
    assert iv30(points) == pytest.approx(math.sqrt(2.2 / 30), rel=1e-12)
    assert iv30(points) == pytest.approx(0.2708013, abs=1e-7)
    # Flat outside: all before 30 days, the last one's IV; all after, the first one's.
    assert iv30({near: (7 / 365, 0.40), far: (28 / 365, 0.25)}) == 0.25
    assert iv30({near: (45 / 365, 0.33), far: (60 / 365, 0.35)}) == 0.33
    assert iv30({near: (IV30_YEARS, 0.22)}) == 0.22
    assert iv30({}) is None


def test_iv30_of_synthetic_chains_around_30_days() -> None:
    chains = [synthetic_chain(days=21), synthetic_chain(days=42)]
    rows = analyze_chains(chains, "put", risk_free_rate=RATE)
    points = atm_ivs(rows)
    assert len(points) == 2
    (t1, v1), (t2, v2) = sorted(points.values())
    w = v1 * v1 * t1 + (v2 * v2 * t2 - v1 * v1 * t1) * (IV30_YEARS - t1) / (t2 - t1)
    assert iv30(points) == pytest.approx(math.sqrt(w / IV30_YEARS), rel=1e-12)
    assert v1 < iv30(points) < v2 or v2 < iv30(points) < v1 or v1 == pytest.approx(v2)


# -- IV rank and percentile ------------------------------------------------------------------


def test_rank_and_percentile_against_hand_computed_values() -> None:
    prior = [0.20 + 0.01 * i for i in range(19)]  # 0.20 .. 0.38
    ranked = iv_rank(0.30, prior)
    # min 0.20, max 0.38: (0.30 - 0.20) / 0.18; below 0.30: 0.20 .. 0.29, 10 of the 19.
    assert ranked.days == 20
    assert ranked.rank == pytest.approx(0.10 / 0.18)
    assert ranked.percentile == pytest.approx(10 / 19)
    assert rank_words(ranked.rank, ranked.percentile, ranked.days) == (
        "IV rank 56%, percentile 53%"
    )
    # A new high: rank 1, percentile 1; a new low: 0 and 0.
    assert iv_rank(0.50, prior) == IvRank(1.0, 1.0, 20)
    assert iv_rank(0.10, prior) == IvRank(0.0, 0.0, 20)


def test_no_rank_before_20_days() -> None:
    ranked = iv_rank(0.30, [0.25] * (MIN_DAYS - 2))
    assert ranked == IvRank(None, None, MIN_DAYS - 1)
    assert rank_words(None, None, ranked.days) == "IV rank n/a (19 of 20 days)"
    assert iv_rank(0.30, []) == IvRank(None, None, 1)
    assert iv_rank(None, [0.25] * 30) == IvRank(None, None, 30)


def test_the_window_holds_252_days_today_included() -> None:
    # 49 old days far above, then 251 recent ones: only the recent ones count.
    prior = [5.0] * 49 + [0.20 + 0.001 * (i % 100) for i in range(WINDOW_DAYS - 1)]
    ranked = iv_rank(0.25, prior)
    assert ranked.days == WINDOW_DAYS
    recent = prior[49:]
    assert ranked.rank == pytest.approx((0.25 - 0.20) / (max(recent) - 0.20))
    assert ranked.percentile == pytest.approx(sum(v < 0.25 for v in recent) / 251)


def test_a_flat_history_has_no_rank() -> None:
    ranked = iv_rank(0.25, [0.25] * 25)
    assert ranked.rank is None and ranked.percentile == 0.0
    assert rank_words(ranked.rank, ranked.percentile, ranked.days) == (
        "IV rank n/a (no range), percentile 0%"
    )


def test_the_minimum_iv_rank_drops_only_known_low_ranks() -> None:
    low = IvRank(0.12, 0.10, 30)
    assert gate(low, None) == (True, None)
    keep, note = gate(low, 30.0)
    assert not keep and note == "IV rank 12% is below the minimum 30%: no rows kept"
    assert gate(IvRank(0.30, 0.5, 30), 30.0) == (True, None)  # at the minimum: kept
    keep, note = gate(IvRank(None, None, 5), 30.0)
    assert keep and note == "not filtered by the minimum IV rank 30%: IV rank n/a (5 of 20 days)"


# -- trading days ----------------------------------------------------------------------------


def test_a_scan_belongs_to_the_new_york_day_of_its_quotes() -> None:
    # Yahoo's regularMarketTime: during a session, its last trade; after it, the close.
    assert trading_day(datetime(2026, 11, 23, 16, 0, tzinfo=UTC)) == date(2026, 11, 23)
    assert trading_day("2026-11-23T21:00:00+00:00") == date(2026, 11, 23)  # 16:00 ET close
    # A Friday close seen on Sunday evening UTC is still Friday's in New York.
    assert trading_day(datetime(2026, 11, 27, 13, 0, tzinfo=NEW_YORK)) == date(2026, 11, 27)
    assert trading_day("2026-11-28T02:30:00+00:00") == date(2026, 11, 27)
    with pytest.raises(ValueError, match="naive"):
        trading_day(datetime(2026, 11, 23, 16, 0))
