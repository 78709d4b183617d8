"""The rules: one table of fields, one validation (environment, flags, form), and select()."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import numpy as np
import pytest

from optscan.config import ConfigError, default_config, load_settings
from optscan.core.book import Book
from optscan.core.chain import analyze_chains
from optscan.core.match import top_per_symbol
from optscan.core.rulefields import (
    FIELDS,
    RULE_FIELDS,
    InvalidRule,
    apply_values,
    check_rules,
    parse_value,
    rule_values,
)
from optscan.core.rules import Rules, select
from optscan.core.sizing import size_rows
from optscan.core.wheel import Holding
from optscan.sources.replay import ReplaySource
from optscan.web.rulesform import field_name
from tests.replaydirs import build_replay_dir

RATE = 0.045


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> ReplaySource:
    return ReplaySource(build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl"))


def chains(source: ReplaySource, *days: str):
    return [source.chain("AAPL", date.fromisoformat(day)) for day in days]


# -- the table and the one validation -------------------------------------------------------


def test_every_rules_field_has_one_row_and_defaults_are_the_documented_ones() -> None:
    assert [f.name for f in RULE_FIELDS] == list(FIELDS)
    assert {f.name for f in dataclasses.fields(Rules)} == set(FIELDS)
    rules = Rules()
    assert rules.min_dte == 1 and rules.horizon_days == 28 and rules.top_n == 3
    assert not (rules.exclude_earnings or rules.calls_below_basis or rules.calls_unowned)
    flags = [f.flag for f in RULE_FIELDS if f.flag]
    wanted = "--min-dte --max-dte --min-oi --min-volume --max-spread --no-earnings"
    wanted += " --no-ex-dividend --top --below-basis --unowned"
    assert set(wanted.split()) <= set(flags)


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("min_dte", "7", 7),
        ("min_dte", 7.0, 7),
        ("max_spread_pct", "", None),
        ("max_spread_pct", " 12.5 ", 12.5),
        ("call_max_delta", None, None),
        ("exclude_earnings", "1", True),
        ("exclude_earnings", "", False),
        ("exclude_earnings", False, False),
        ("top_n", "0", 0),
    ],
)
def test_values_are_typed_from_text_or_json(name: str, raw: object, value: object) -> None:
    assert parse_value(FIELDS[name], raw) == value


@pytest.mark.parametrize(
    ("name", "raw", "words"),
    [
        ("min_dte", "-1", "must be at least 0, got '-1'"),
        ("min_dte", "2.5", "must be a whole number"),
        ("min_dte", "", "must be a number"),
        ("put_max_delta", "1.5", "must be at most 1"),
        ("put_min_return_pct", "nan", "must be a number"),
        ("put_min_return_pct", True, "must be a number"),
        ("exclude_earnings", "maybe", "must be true or false"),
        ("top_n", "{x}", "must be a number, got '{x}'"),  # braces survive the formatting
    ],
)
def test_bad_values_are_refused_naming_the_field_as_each_place_calls_it(
    name: str, raw: object, words: str
) -> None:
    field = FIELDS[name]
    with pytest.raises(InvalidRule) as refused:
        parse_value(field, raw)
    assert refused.value.text(lambda f: f.variable).startswith(f"{field.variable} {words}")
    assert refused.value.text(lambda f: f.cli_name).startswith(f"{field.cli_name} must")
    assert refused.value.text(field_name).startswith(f"{field_name(field)} must")


def test_environment_flags_and_form_share_the_validation() -> None:
    config = {**default_config(), "MIN_DTE": -3}
    with pytest.raises(ConfigError, match="OPTSCAN_MIN_DTE must be at least 0, got -3"):
        load_settings(config)
    with pytest.raises(InvalidRule) as refused:
        apply_values(Rules(), {"min_dte": "-3"})
    assert refused.value.text(lambda f: f.cli_name) == "--min-dte must be at least 0, got '-3'"
    assert refused.value.text(field_name) == "Min DTE must be at least 0, got '-3'"


def test_every_bad_value_is_reported_at_once_and_nothing_applies() -> None:
    with pytest.raises(InvalidRule) as refused:
        apply_values(Rules(), {"min_dte": "x", "put_max_delta": "2", "top_n": "5"})
    words = refused.value.text(field_name)
    assert "Min DTE must be a number" in words and "Puts: Max |delta| must be at most 1" in words
    assert len(refused.value.problems) == 2


def test_fields_must_agree_with_each_other() -> None:
    with pytest.raises(InvalidRule) as refused:
        apply_values(Rules(), {"min_dte": "10", "horizon_days": "5"})
    assert (
        refused.value.text(lambda f: f.cli_name) == "--max-dte (5) must be at least --min-dte (10)"
    )
    config = {**default_config(), "CALL_DELTA_CAP": 0.1}
    with pytest.raises(
        ConfigError, match=r"OPTSCAN_CALL_DELTA_CAP \(0\.1\) must be >= OPTSCAN_CALL_DELTA_BASE"
    ):
        load_settings(config)
    assert check_rules(Rules()) == Rules()


def test_values_round_trip_through_json() -> None:
    rules = Rules(min_dte=3, max_spread_pct=None, exclude_earnings=True, top_n=5)
    assert apply_values(Rules(), rule_values(rules)) == rules


def test_rules_describe_themselves_per_side() -> None:
    rules = Rules(min_dte=2, exclude_earnings=True, exclude_ex_dividend=True)
    assert "DTE 2-28" in rules.describe("put") and "no earnings before expiry" in rules.describe(
        "put"
    )
    assert "ex-dividend" not in rules.describe("put")
    assert "strike >= cost basis" in rules.describe("call")
    assert "no ex-dividend before expiry" in rules.describe("call")
    # top_n decides what is shown, never what passes.
    assert rules.describe("put") == dataclasses.replace(rules, top_n=9).describe("put")


# -- select() on recorded chains -------------------------------------------------------------


def test_dte_bounds_keep_only_rows_inside_them(source: ReplaySource) -> None:
    # 2025-08-29 and 2025-09-12 were recorded a day before expiry; 2025-08-22 a week before.
    rows = analyze_chains(chains(source, "2025-08-22", "2025-08-29"), "put", risk_free_rate=RATE)
    loose = Rules(put_min_return_pct=0, put_max_delta=1, min_dte=0)
    both = rows.records(select(rows, "put", loose))
    assert {m["dte"] for m in both} == {1, 7}
    week = rows.records(select(rows, "put", dataclasses.replace(loose, min_dte=2)))
    assert week and {m["dte"] for m in week} == {7}
    short = rows.records(select(rows, "put", dataclasses.replace(loose, horizon_days=6)))
    assert short and {m["dte"] for m in short} == {1}


def test_earnings_and_ex_dividend_before_expiry_can_be_left_out(source: ReplaySource) -> None:
    (chain,) = chains(source, "2025-08-22")
    # An earnings report and an ex-dividend date between the quote and the expiry.
    soon = datetime(2025, 8, 19, 20, tzinfo=UTC)
    moved = dataclasses.replace(chain.quote, earnings_at=soon, ex_dividend_at=soon)
    flagged = dataclasses.replace(chain, quote=moved)
    loose = Rules(put_min_return_pct=0, put_max_delta=1, call_min_return_pct=0, call_max_delta=1)
    for side in ("put", "call"):
        rows = analyze_chains([flagged], side, risk_free_rate=RATE)
        kept = select(rows, side, loose)
        assert kept.sum() > 0 and rows.has_flag("earnings")[kept].all()
        assert not select(rows, side, dataclasses.replace(loose, exclude_earnings=True)).any()
    puts = analyze_chains([flagged], "put", risk_free_rate=RATE)
    no_exdiv = dataclasses.replace(loose, exclude_ex_dividend=True)
    assert select(puts, "put", no_exdiv).sum() == select(puts, "put", loose).sum()  # calls only
    calls = analyze_chains([flagged], "call", risk_free_rate=RATE)
    assert not select(calls, "call", no_exdiv).any()


def test_calls_keep_strikes_at_or_above_the_basis_unless_told(source: ReplaySource) -> None:
    rows = analyze_chains(chains(source, "2025-08-22"), "call", risk_free_rate=RATE)
    loose = Rules(call_min_return_pct=0, call_max_delta=1)
    book = Book({"AAPL": Holding(300, 232.5)})
    sized = size_rows(rows, book)
    kept = sized.records(select(sized, "call", loose))
    assert kept and min(m["strike"] for m in kept) >= 232.5
    lifted = sized.records(
        select(sized, "call", dataclasses.replace(loose, calls_below_basis=True))
    )
    below = [m for m in lifted if m["strike"] < 232.5]
    assert below and all("below_basis" in m["flags"] for m in below)
    # Without positions (no basis known) no strike is held back.
    assert select(rows, "call", loose).sum() == len(lifted)


def test_top_per_symbol_keeps_the_best_annualized_returns() -> None:
    rows = [
        {"symbol": s, "annualized_return": r, "contract": f"{s}{r}"}
        for s, r in (("B", 10.0), ("A", 5.0), ("A", 50.0), ("A", 20.0), ("B", 30.0))
    ]
    best = top_per_symbol(rows, 2)  # type: ignore[arg-type]
    assert [m["contract"] for m in best] == ["A50.0", "A20.0", "B30.0", "B10.0"]
    assert len(top_per_symbol(rows, 0)) == 5  # type: ignore[arg-type]


def test_select_never_passes_nan(source: ReplaySource) -> None:
    rows = analyze_chains(chains(source, "2025-08-22"), "put", risk_free_rate=RATE)
    kept = select(rows, "put", Rules(put_min_return_pct=0, put_max_delta=1))
    assert np.isfinite(rows.delta[kept]).all() and np.isfinite(rows.annualized_return[kept]).all()


@pytest.mark.parametrize("value", [0.2, 30.0, 12.3456789, 0.1 + 0.2, 1e-05, 7])
def test_the_form_shows_values_that_read_back_the_same(value: float) -> None:
    from optscan.core.rulefields import form_text

    field = FIELDS["put_min_return_pct"]
    assert parse_value(field, form_text(field, value)) == value
