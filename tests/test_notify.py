"""Alerts over real HTTP: apprise posts to a local json:// webhook after real scans."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from optscan.notify.ledger import AlertLedger
from optscan.notify.message import match_line
from optscan.store.results import ResultStore
from tests.flaskrun import run_flask
from tests.hooks import HookServer

PUBLIC = "https://optscan.example.org"
# Wide rules: the AAPL recordings then give more than ten puts, so the top-10 cut shows.
WIDE = ["scan", "--force", "--symbols", "AAPL", "--min-return", "0", "--max-delta", "0.5", "--json"]


@pytest.fixture
def hook():
    with HookServer() as server:
        yield server


def alert_app(make_app, aapl_dir: Path, hook: HookServer, **config):
    return make_app(
        SOURCE=f"replay:{aapl_dir}", NOTIFY_URLS=hook.url(), PUBLIC_URL=PUBLIC, **config
    )


def scan(app, args=WIDE):
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def ledger(app) -> AlertLedger:
    svc = app.extensions["optscan"]
    return AlertLedger(svc.redis, svc.settings.redis_prefix)


def test_first_scan_alerts_once_naming_the_new_contracts_then_the_same_scan_sends_nothing(
    make_app, aapl_dir: Path, hook: HookServer
) -> None:
    app = alert_app(make_app, aapl_dir, hook)
    body, stderr = scan(app)
    matches = body["matches"]
    assert len(matches) > 10
    assert f"Alert sent: {len(matches)} new matches." in stderr
    assert len(hook.bodies()) == 1
    sent = hook.bodies()[0]
    assert sent["title"] == f"optscan: {len(matches)} new puts"
    lines = sent["message"].splitlines()
    best = sorted(matches, key=lambda m: -m["annualized_return"])[:10]
    assert lines[:10] == [match_line(m) for m in best]
    assert best[0]["symbol"] in lines[0] and best[0]["expiration"] in lines[0]
    assert f"{best[0]['annualized_return']:.1f} % annualized" in lines[0]
    assert lines[10:] == [f"…and {len(matches) - 10} more.", f"All results: {PUBLIC}/?side=put"]
    # Every new contract is remembered, not just the ten listed.
    assert set(ledger(app).alerted()) == {m["contract"] for m in matches}

    _, stderr = scan(app)
    assert "Alert: nothing new to send." in stderr
    assert len(hook.bodies()) == 1

    page = app.test_client().get("/").get_data(as_text=True)
    assert "Last alert sent" in page and f"{len(matches)} new puts" in page
    assert "last alert failed" not in page
    events = app.extensions["optscan"].events.logged()
    assert [e.data["ok"] for e in events if e.type == "alert"] == [True]


def test_only_contracts_not_alerted_yet_are_listed(
    make_app, aapl_dir: Path, hook: HookServer
) -> None:
    app = alert_app(make_app, aapl_dir, hook)
    strict, _ = scan(app, ["scan", "--force", "--symbols", "AAPL", "--min-return", "50", "--json"])
    assert len(strict["matches"]) == 1
    wide, _ = scan(app)
    assert len(hook.bodies()) == 2
    second = hook.bodies()[1]
    assert second["title"] == f"optscan: {len(wide['matches']) - 1} new puts"
    assert match_line(strict["matches"][0]) not in second["message"]


def test_a_contract_is_alerted_again_once_the_repeat_window_has_passed(
    make_app, aapl_dir: Path, hook: HookServer, clock
) -> None:
    app = alert_app(make_app, aapl_dir, hook, NOTIFY_REPEAT_HOURS=2)
    args = ["scan", "--force", "--symbols", "AAPL", "--json"]
    scan(app, args)
    clock.at += timedelta(hours=1, minutes=59)
    scan(app, args)
    assert len(hook.bodies()) == 1
    clock.at += timedelta(minutes=2)
    scan(app, args)
    assert len(hook.bodies()) == 2
    assert hook.bodies()[0]["message"] == hook.bodies()[1]["message"]


def stored_then(app):
    """Return a check, run by the webhook as a request arrives: is the scan already stored?"""
    svc = app.extensions["optscan"]
    store = ResultStore(svc.redis, svc.settings.redis_prefix)

    def check() -> bool:
        last = store.last("put")
        return last is not None and last["success"] and "AAPL" in store.board("put")

    return check


def test_a_notifier_answering_500_leaves_the_scan_whole_and_the_page_says_so(
    make_app, aapl_dir: Path, redis_url: str, redis_prefix: str, instance_path: Path, clock
) -> None:
    with HookServer(500) as failing:
        app = alert_app(make_app, aapl_dir, failing)
        failing.on_request = stored_then(app)
        body, stderr = scan(app)
    # The scan's result was stored before the notifier was even asked.
    assert failing.seen == [True]
    assert body["success"] is True and body["matches"]
    assert "Alert failed:" in stderr and "500" in stderr
    page = app.test_client().get("/").get_data(as_text=True)
    assert "last alert failed:" in page and "500" in page
    # A failed alert gives its contracts back: the next scan tries again, and says so.
    assert ledger(app).alerted() == {}
    with HookServer() as working:
        app = alert_app(make_app, aapl_dir, working)
        scan(app)
    assert len(working.bodies()) == 1
    page = app.test_client().get("/").get_data(as_text=True)
    assert "last alert failed" not in page and "Last alert sent" in page


def test_a_hanging_notifier_is_given_up_on_and_the_scan_is_not_held(
    make_app, aapl_dir: Path
) -> None:
    with HookServer(hold=True) as hanging:
        app = alert_app(make_app, aapl_dir, hanging, NOTIFY_TIMEOUT_SECONDS=0.5)
        hanging.on_request = stored_then(app)
        body, stderr = scan(app)
        # The webhook still holds the request: the command finished without its answer.
        assert hanging.arrived.is_set() and hanging.seen == [True]
    assert body["success"] is True
    assert "Alert failed:" in stderr
    page = app.test_client().get("/").get_data(as_text=True)
    assert "last alert failed:" in page


def test_no_alert_when_alerts_are_off_or_the_scan_failed(
    make_app, aapl_dir: Path, hook: HookServer
) -> None:
    off = make_app(SOURCE=f"replay:{aapl_dir}")
    _, stderr = scan(off)
    assert "Alert" not in stderr
    assert "alert-status" not in off.test_client().get("/").get_data(as_text=True)
    app = alert_app(make_app, aapl_dir, hook)
    result = app.test_cli_runner().invoke(args=["scan", "--force", "--symbols", "MSFT", "--json"])
    assert result.exit_code == 1  # nothing recorded for MSFT: the scan failed
    assert hook.bodies() == []
    assert "Alerts on: none sent yet." in app.test_client().get("/").get_data(as_text=True)


def flask_notify_test(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("OPTSCAN_")}
    return run_flask(
        "notify", "test", env={**scrubbed, "OPTSCAN_INSTANCE_PATH": str(tmp_path), **env}
    )


def test_flask_notify_test_sends_a_test_message(hook: HookServer, tmp_path: Path) -> None:
    proc = flask_notify_test(
        {"OPTSCAN_NOTIFY_URLS": hook.url(), "OPTSCAN_PUBLIC_URL": PUBLIC}, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Test message sent to json://127.0.0.1:{hook.port}/hook."
    (sent,) = hook.bodies()
    assert sent["title"] == "optscan: test message"
    assert sent["message"].endswith(f"Results: {PUBLIC}/?side=put")


def test_flask_notify_test_fails_with_the_reason(tmp_path: Path) -> None:
    with HookServer(500) as failing:
        proc = flask_notify_test({"OPTSCAN_NOTIFY_URLS": failing.url()}, tmp_path)
        assert len(failing.bodies()) == 1
    assert proc.returncode == 1
    assert "Test message not sent to json://127.0.0.1:" in proc.stderr
    assert "error=500" in proc.stderr and "Traceback" not in proc.stderr
    unset = flask_notify_test({}, tmp_path)
    assert unset.returncode == 2 and "OPTSCAN_NOTIFY_URLS is not set" in unset.stderr


def test_a_bad_url_stops_start_up_naming_the_variable_not_the_secret(make_app) -> None:
    from optscan.config import ConfigError

    with pytest.raises(ConfigError, match=r"OPTSCAN_NOTIFY_URLS: URL 2 of 2 \(foo://…\)") as err:
        make_app(NOTIFY_URLS="json://127.0.0.1:9/hook, foo://token-abc@host")
    assert "token-abc" not in str(err.value)
    with pytest.raises(ConfigError, match="OPTSCAN_PUBLIC_URL must be an http"):
        make_app(PUBLIC_URL="optscan.example.org")
