"""Configuration: defaults, environment overrides and clear errors for bad values."""

from __future__ import annotations

import pytest

from optscan.config import ConfigError, default_config, load_settings


def test_defaults_are_the_documented_rules() -> None:
    settings = load_settings(default_config())
    rules = settings.rules
    assert (rules.put_min_return_pct, rules.put_max_delta) == (30.0, 0.20)
    assert (rules.call_min_return_pct, rules.call_delta_base) == (20.0, 0.20)
    assert (rules.call_delta_step, rules.call_delta_cap, rules.horizon_days) == (0.04, 0.36, 28)
    assert settings.risk_free_rate == pytest.approx(0.045)  # percent in config, fraction inside
    assert settings.source == "yahoo" and settings.redis_url is None


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("PUT_MIN_RETURN_PCT", "abc", "OPTSCAN_PUT_MIN_RETURN_PCT must be a number"),
        ("PUT_MIN_RETURN_PCT", -1, "at least 0"),
        ("PUT_MAX_DELTA", 1.5, "at most 1"),
        ("HORIZON_DAYS", 2.5, "whole number"),
        ("HORIZON_DAYS", True, "must be a number"),
        ("RISK_FREE_RATE_PCT", float("nan"), "must be a number"),
        (
            "SOURCE",
            "google",
            "OPTSCAN_SOURCE must be 'yahoo', 'yahoo:<base URL>', 'cboe', 'cboe:<base URL>' or"
            " 'replay:<dir>'",
        ),
        ("SOURCE", "yahoo:localhost:8000", "OPTSCAN_SOURCE must be"),
        ("SOURCE", "replay:", "OPTSCAN_SOURCE"),
        ("SOURCE", "cboe:cdn.cboe.com", "OPTSCAN_SOURCE must be"),
        ("SOURCE", "yahoo,yahoo", "named twice"),
        ("SOURCE", "yahoo,", "OPTSCAN_SOURCE must be"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with"),
        ("CALL_DELTA_CAP", 0.1, "must be >= OPTSCAN_CALL_DELTA_BASE"),
        ("LOCK_TTL_SECONDS", 1, "at least 5"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    key: str, value: object, words: str
) -> None:
    config = default_config()
    config[key] = value
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("'", ".")):
        load_settings(config)


def test_environment_overrides_reach_the_app(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTSCAN_PUT_MIN_RETURN_PCT", "25")
    monkeypatch.setenv("OPTSCAN_MAX_SPREAD_PCT", "12.5")
    app = make_app()
    rules = app.extensions["optscan"].settings.rules
    assert rules.put_min_return_pct == 25.0
    assert rules.max_spread_pct == 12.5


def test_bad_environment_value_stops_the_app_at_start_up(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTSCAN_HORIZON_DAYS", '"four weeks"')
    with pytest.raises(ConfigError, match="OPTSCAN_HORIZON_DAYS must be a number"):
        make_app()
