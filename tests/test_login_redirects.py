"""`next` after login: only a path on this site, read the way a browser reads a Location."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
from werkzeug.security import generate_password_hash

from optscan.store.passwords import PasswordStore
from tests.replaydirs import build_replay_dir

PASSWORD = "correct horse battery"
# One cheap iteration: these tests log in dozens of times; the hash's strength is not tested here.
FAST_HASH = generate_password_hash(PASSWORD, "pbkdf2:sha256:1")
HOST = "localhost"

NASTY = [
    "/\t/evil.example",
    "/\n/x",
    "/\r\n/evil.example",
    "/\r/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/ \t/evil.example",
    "//evil.example",
    "///evil.example",
    "//evil.example/%2e%2e",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "\\/evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\x7f/evil.example",
    "/\x85/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "https:/evil.example",
    "https:evil.example",
    "http:\\\\evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "%2F%2Fevil.example",
    "",
    "/" + "a" * 5000,
    "/x" * 3000,
]
# Odd-looking but harmless: a browser reads each as a path on this site.
SAME_SITE = ["/watchlist", "/?side=call", "/results.csv?side=put", "/%2F%2Fevil.example", "/%09/x"]


def browser_location(location: str) -> str:
    """Return the absolute URL a browser on http://HOST/login resolves a Location to."""
    # WHATWG URL parsing: strip C0 controls and spaces at the ends, drop every tab and
    # newline, read "\" as "/" (http is a special scheme), then resolve against the page.
    cleaned = location.strip("".join(chr(c) for c in range(0x21)))
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    return urljoin(f"http://{HOST}/login", cleaned)


def assert_stays_here(location: str) -> None:
    assert not re.search(r"[\x00-\x1f\x7f]", location), repr(location)
    resolved = urlsplit(browser_location(location))
    assert (resolved.scheme, resolved.netloc) == ("http", HOST), (location, resolved)


@pytest.fixture
def replay(tmp_path: Path) -> str:
    return f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}"


@pytest.fixture
def open_app(make_app, replay: str):
    return make_app(SOURCE=replay, WTF_CSRF_ENABLED=False)


@pytest.fixture
def protected_app(make_app, replay: str):
    return make_app(SOURCE=replay, WTF_CSRF_ENABLED=False, PASSWORD_HASH=FAST_HASH)


def get_login(client, target: str):
    return client.get(f"/login?{urlencode({'next': target})}", base_url=f"http://{HOST}")


def test_without_a_password_login_bounces_only_to_this_site(open_app) -> None:
    client = open_app.test_client()
    answers = {target: get_login(client, target) for target in NASTY + SAME_SITE}
    wrong = {
        target: (answer.status_code, answer.headers.get("Location"))
        for target, answer in answers.items()
        if (answer.status_code, answer.headers.get("Location"))
        != (302, target if target in SAME_SITE else "/")
    }
    assert wrong == {}
    for answer in answers.values():
        assert_stays_here(answer.headers["Location"])


def test_with_a_password_the_form_and_the_redirect_stay_on_this_site(protected_app) -> None:
    client = protected_app.test_client()
    wrong = {}
    for target in NASTY + SAME_SITE:
        expected = target if target in SAME_SITE else "/"
        page = get_login(client, target)
        carried = re.search(r'name="next" value="([^"]*)"', page.get_data(as_text=True))
        form_next = unescape(carried.group(1)) if carried else None
        answer = client.post("/login", data={"password": PASSWORD, "next": target})
        got = (page.status_code, form_next, answer.status_code, answer.headers.get("Location"))
        if got != (200, expected, 303, expected):
            wrong[target] = got
        client.post("/logout")
    assert wrong == {}


def test_a_wrong_password_never_answers_5xx(make_app, replay: str) -> None:
    app = make_app(
        SOURCE=replay, WTF_CSRF_ENABLED=False, PASSWORD_HASH=FAST_HASH, LOGIN_ATTEMPT_LIMIT=1000
    )
    client = app.test_client()
    statuses = {
        target: client.post("/login", data={"password": "wrong", "next": target}).status_code
        for target in NASTY + SAME_SITE
    }
    assert set(statuses.values()) == {401}, statuses


def test_the_reported_attacks_are_refused(open_app) -> None:
    # Before the fix: "302 Location: //evil.example" and a 500.
    client = open_app.test_client()
    tab = client.get("/login?next=/%09/evil.example")
    newline = client.get("/login?next=/%0a/x")
    assert (tab.status_code, tab.headers["Location"]) == (302, "/")
    assert (newline.status_code, newline.headers["Location"]) == (302, "/")


def test_a_private_page_sends_its_own_path_through_login(make_app, instance_path, replay) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    app = make_app(SOURCE=replay, PUBLIC_READ=False, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    page = client.get("/watchlist?x=%09", headers={"Accept": "text/html"})
    assert page.status_code == 302
    login_url = page.headers["Location"]
    assert_stays_here(login_url)
    target = parse_qs(urlsplit(login_url).query)["next"][0]
    assert target == "/watchlist?x=%09"
    answer = client.post("/login", data={"password": PASSWORD, "next": target})
    assert (answer.status_code, answer.headers["Location"]) == (303, target)
    assert_stays_here(answer.headers["Location"])
