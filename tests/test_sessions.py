"""Logins end when the password changes, and last OPTSCAN_SESSION_LIFETIME_DAYS (7 by default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from optscan.store.passwords import PasswordStore
from tests.replaydirs import build_replay_dir

PASSWORD = "correct horse battery"
OTHER = "another long password"


@pytest.fixture
def replay(tmp_path: Path) -> str:
    return f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}"


def can_edit(client) -> bool:
    """Return whether the session may change the watchlist (a no-op change: 303 vs 401)."""
    status = client.post("/watchlist/activate", data={"symbol": "AAPL"}).status_code
    assert status in (303, 401), status
    return status == 303


def log_in(client, password: str = PASSWORD) -> None:
    answer = client.post("/login", data={"password": password})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]


def test_setting_a_new_password_with_the_cli_ends_every_login(
    make_app, instance_path: Path, replay: str
) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False)
    first, second = app.test_client(), app.test_client()
    log_in(first)
    log_in(second)
    assert can_edit(first) and can_edit(second)

    done = app.test_cli_runner().invoke(args=["set-password"], input=f"{OTHER}\n{OTHER}\n")
    assert done.exit_code == 0 and "every existing login has ended" in done.output
    assert not can_edit(first) and not can_edit(second)
    log_in(first, OTHER)
    assert can_edit(first) and not can_edit(second)


def test_the_same_password_set_again_still_ends_every_login(
    make_app, instance_path: Path, replay: str
) -> None:
    store = PasswordStore(instance_path / "password_hash")
    store.set(PASSWORD)
    client = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False).test_client()
    log_in(client)
    store.set(PASSWORD)  # a fresh salt: a new hash, so a new fingerprint
    assert not can_edit(client)


def test_clearing_the_password_then_setting_one_ends_old_logins(
    make_app, instance_path: Path, replay: str
) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    log_in(client)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["set-password", "--clear"]).exit_code == 0
    assert can_edit(client)  # no password: everything is open to everyone
    assert runner.invoke(args=["set-password"], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    assert not can_edit(client)


def test_a_new_configured_hash_ends_logins_made_under_the_old_one(make_app, replay: str) -> None:
    old_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1")
    new_hash = generate_password_hash(OTHER, "pbkdf2:sha256:1")
    before = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, PASSWORD_HASH=old_hash)
    client = before.test_client()
    log_in(client)
    cookie = client.get_cookie("session")
    assert cookie is not None

    # A restart with OPTSCAN_PASSWORD_HASH changed: same secret key, same cookie.
    after = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, PASSWORD_HASH=new_hash)
    moved = after.test_client()
    moved.set_cookie("session", cookie.value)
    assert not can_edit(moved)
    # The cookie itself is still valid: a restart with the old hash accepts it.
    again = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, PASSWORD_HASH=old_hash)
    kept = again.test_client()
    kept.set_cookie("session", cookie.value)
    assert can_edit(kept)


def test_a_session_from_before_the_fingerprint_is_refused(
    make_app, instance_path: Path, replay: str
) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    client = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False).test_client()
    with client.session_transaction() as session:
        session["user"] = "admin"  # what a login stored before sessions carried a fingerprint
    assert not can_edit(client)


def cookie_expiry(client) -> timedelta:
    set_cookie = client.post("/login", data={"password": PASSWORD}).headers["Set-Cookie"]
    expires = next(
        part.split("=", 1)[1] for part in set_cookie.split("; ") if part.startswith("Expires=")
    )
    return parsedate_to_datetime(expires) - datetime.now(UTC)


@pytest.mark.parametrize(("config", "days"), [({}, 7), ({"SESSION_LIFETIME_DAYS": 0.5}, 0.5)])
def test_a_login_lasts_the_configured_days(
    make_app, instance_path: Path, replay: str, config: dict, days: float
) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, **config)
    assert app.permanent_session_lifetime == timedelta(days=days)
    left = cookie_expiry(app.test_client())
    # Minutes of slack for a slow machine; 31 days (Flask's default) is far outside.
    assert timedelta(days=days) - timedelta(minutes=10) < left <= timedelta(days=days)
