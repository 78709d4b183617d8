"""Auth and hardening: login for changes, throttles, cookies, secret key, security headers."""

from __future__ import annotations

import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from optscan.config import ConfigError
from optscan.jobs.scanjob import wait_for_background_scans
from optscan.store.passwords import PasswordStore
from tests.replaydirs import build_replay_dir

PASSWORD = "correct horse battery"


@pytest.fixture
def replay(tmp_path: Path) -> str:
    return f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}"


@pytest.fixture
def protected(make_app, instance_path: Path, replay: str):
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    return make_app(SOURCE=replay, WTF_CSRF_ENABLED=False)


def login(client, password: str = PASSWORD):
    return client.post("/login", data={"password": password, "next": "/watchlist"})


class InlineFinder(HTMLParser):
    """Collect what a strict CSP would block: inline scripts, style attributes, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = "src" not in names
        if tag == "style":
            self.problems.append("<style> element")
        self.problems += [f"{tag}[{n}]" for n in names if n == "style" or n.startswith("on")]

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_security_headers_and_no_inline_code(make_app, replay: str) -> None:
    client = make_app(SOURCE=replay).test_client()
    for path in ("/", "/watchlist"):
        response = client.get(path)
        assert response.status_code == 200
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        finder = InlineFinder()
        finder.feed(response.get_data(as_text=True))
        assert finder.problems == [], path


def test_without_a_password_everything_is_open(make_app, replay: str) -> None:
    client = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False).test_client()
    assert client.post("/watchlist/add", data={"symbols": "IBM"}).status_code == 303
    assert "Log in" not in client.get("/").get_data(as_text=True)


def test_changes_need_a_login_when_a_password_is_set(protected) -> None:
    client = protected.test_client()
    svc = protected.extensions["optscan"]
    before = svc.watchlist.entries()
    assert client.get("/").status_code == 200  # reading stays public by default
    refused = client.post("/watchlist/add", data={"symbols": "IBM"})
    assert refused.status_code == 401
    assert "Log in" in refused.get_data(as_text=True)
    scan = client.post(
        "/scan", data={"side": "put", "force": "1"}, headers={"X-Requested-With": "fetch"}
    )
    assert scan.status_code == 401
    assert svc.watchlist.entries() == before
    assert svc.events.logged() == []  # no scan started

    assert login(client, "wrong password").status_code == 401
    answer = login(client)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/watchlist")
    assert client.post("/watchlist/add", data={"symbols": "IBM"}).status_code == 303
    assert "IBM" in [e.symbol for e in svc.watchlist.entries()]
    assert client.post("/logout").status_code == 303
    assert client.post("/watchlist/add", data={"symbols": "TSLA"}).status_code == 401


def test_private_reading_redirects_to_login(make_app, instance_path: Path, replay: str) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, PUBLIC_READ=False, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    page = client.get("/watchlist", headers={"Accept": "text/html"})
    assert page.status_code == 302 and "/login?next=/watchlist" in page.headers["Location"]
    status = client.get("/scan/status", headers={"Accept": "application/json"})
    assert status.status_code == 401 and status.json["error"]
    assert client.get("/results.csv?side=put").status_code == 401
    login(client)
    assert client.get("/scan/status").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(protected, target: str) -> None:
    answer = protected.test_client().post("/login", data={"password": PASSWORD, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"


def test_failed_logins_are_throttled(make_app, instance_path: Path, replay: str) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, LOGIN_ATTEMPT_LIMIT=3, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert [login(client, "nope").status_code for _ in range(3)] == [401, 401, 401]
    blocked = login(client)  # even the right password waits out the window
    assert blocked.status_code == 429
    assert "Too many failed logins" in blocked.get_data(as_text=True)


def test_scan_triggers_are_limited_per_client(make_app, replay: str) -> None:
    app = make_app(SOURCE=replay, SCAN_TRIGGER_LIMIT=2, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    form = {"side": "put", "force": "1"}
    headers = {"X-Requested-With": "fetch"}
    for _ in range(2):
        assert client.post("/scan", data=form, headers=headers).status_code == 202
        assert wait_for_background_scans(30)
    limited = client.post("/scan", data=form, headers=headers)
    assert limited.status_code == 429
    assert "started 2 scans in the last 10 minutes" in limited.get_data(as_text=True)
    other = app.test_client()
    answer = other.post(
        "/scan", data=form, headers=headers, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert answer.status_code == 202
    assert wait_for_background_scans(30)


def test_csrf_is_required_on_login(protected) -> None:
    app = protected
    app.config["WTF_CSRF_ENABLED"] = True
    answer = app.test_client().post("/login", data={"password": PASSWORD})
    assert answer.status_code == 400
    assert "did not come from an optscan page" in answer.get_data(as_text=True)


def test_oversized_bodies_are_refused(make_app, replay: str) -> None:
    client = make_app(SOURCE=replay, WTF_CSRF_ENABLED=False).test_client()
    answer = client.post("/watchlist/add", data={"symbols": "A" * 70_000})
    assert answer.status_code == 413


def test_session_cookie_flags(make_app, replay: str) -> None:
    app = make_app(SOURCE=replay, ENV="production", SECRET_KEY="k" * 16 + os.urandom(16).hex())
    cookie = app.test_client().get("/").headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize("key", [None, "", "dev", "changeme", "short-key"])
def test_production_refuses_a_missing_or_weak_secret_key(make_app, key) -> None:
    with pytest.raises(ConfigError, match="OPTSCAN_SECRET_KEY must be set"):
        make_app(ENV="production", SECRET_KEY=key)


def test_development_key_is_generated_once_and_shared(make_app, instance_path: Path) -> None:
    first = make_app(SECRET_KEY=None).secret_key
    second = make_app(SECRET_KEY=None).secret_key
    assert first == second and len(first) >= 32
    path = instance_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_password_stores_only_a_hash(make_app, instance_path: Path) -> None:
    runner = make_app().test_cli_runner()
    short = runner.invoke(args=["set-password"], input="short\nshort\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.stderr
    done = runner.invoke(args=["set-password"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.exit_code == 0, done.output
    path = instance_path / "password_hash"
    stored = path.read_text()
    assert PASSWORD not in stored and re.match(r"^(scrypt|pbkdf2):", stored)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PasswordStore(path).check(PASSWORD) and not PasswordStore(path).check("guess")
    printed = runner.invoke(args=["set-password", "--print"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert printed.stdout.strip().count("$") == 2
    assert runner.invoke(args=["set-password", "--clear"]).exit_code == 0
    assert not path.exists()


def test_a_plain_password_in_config_is_refused(make_app) -> None:
    with pytest.raises(ConfigError, match="not a plain password"):
        make_app(PASSWORD_HASH="hunter2")


@pytest.mark.slow
def test_workers_starting_together_share_one_generated_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Each process imports once, then for every round waits for its folder, so that all six ask
    # for the same new key at once, round after round.
    code = (
        "import sys; from pathlib import Path; from optscan.web.security import resolve_secret_key;"
        "from optscan.config import load_settings, default_config;"
        "settings = load_settings(default_config()); print('ready', flush=True);"
        "[print(resolve_secret_key(settings, Path(line.strip())), flush=True)"
        " for line in iter(sys.stdin.readline, '')]"
    )
    root = Path(__file__).resolve().parent.parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for _ in range(6)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for attempt in range(6):
            folder = tmp_path / f"instance-{attempt}"
            folder.mkdir()
            for proc in procs:
                proc.stdin.write(f"{folder}\n")
                proc.stdin.flush()
            keys = {proc.stdout.readline().strip() for proc in procs}
            assert len(keys) == 1 and len(keys.pop()) == 64, keys
            assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no temporary left behind
    finally:
        for proc in procs:
            proc.stdin.close()  # ends each process's loop
        errors = [proc.stderr.read() for proc in procs]
        codes = [proc.wait(timeout=60) for proc in procs]
        for proc in procs:
            proc.stdout.close()
            proc.stderr.close()
    assert codes == [0] * len(procs), [err[-300:] for err in errors]
