"""The failed-login limit: checked and counted in one atomic step, across workers and processes."""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from optscan.store.passwords import PasswordStore
from optscan.store.throttle import Throttle
from tests.servers import BaseURL, gunicorn_server

PASSWORD = "correct horse battery"
LIMIT = 3
ATTEMPTS = 40


def test_take_admits_exactly_the_limit_among_racing_threads(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    throttle = Throttle(redis_client, f"{redis_prefix}t:", limit=LIMIT, window_seconds=900)
    barrier = threading.Barrier(ATTEMPTS)
    results: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        results.append(throttle.take("10.0.0.1").allowed)

    threads = [threading.Thread(target=attempt) for _ in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert Counter(results) == {True: LIMIT, False: ATTEMPTS - LIMIT}


def test_take_slides_with_the_window(redis_client: redis.Redis, redis_prefix: str) -> None:
    throttle = Throttle(redis_client, f"{redis_prefix}t:", limit=2, window_seconds=60)
    assert throttle.take("a", now=1000.0).allowed
    assert throttle.take("a", now=1010.0).allowed
    refused = throttle.take("a", now=1030.0)
    assert not refused.allowed and refused.retry_after == 30  # the first leaves at 1060
    assert throttle.take("b", now=1030.0).allowed  # per client
    assert throttle.take("a", now=1060.5).allowed  # the first has left the window
    assert not throttle.take("a", now=1061.0).allowed
    throttle.reset("a")
    assert throttle.take("a", now=1061.0).allowed


def test_take_without_a_limit_counts_nothing(redis_client: redis.Redis, redis_prefix: str) -> None:
    throttle = Throttle(redis_client, f"{redis_prefix}t:", limit=0, window_seconds=60)
    assert all(throttle.take("a").allowed for _ in range(5))
    assert redis_client.exists(f"{redis_prefix}t:a") == 0


def login_form(base: BaseURL) -> tuple[str, str]:
    """Open the login page once and return its session cookie and CSRF token."""
    connection = http.client.HTTPConnection(base.host, base.port, timeout=30)
    connection.request("GET", "/login")
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 200, body[:1000]
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token is not None
    return cookie, token.group(1)


@pytest.mark.slow
def test_concurrent_wrong_passwords_on_two_workers_check_at_most_the_limit(
    instance_path: Path, redis_url: str, redis_prefix: str
) -> None:
    PasswordStore(instance_path / "password_hash").set(PASSWORD)
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance_path),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": redis_prefix,
        "OPTSCAN_SECRET_KEY": "login-limit-test-secret-0123456789abcdef",
        "OPTSCAN_LOGIN_ATTEMPT_LIMIT": str(LIMIT),
    }
    with gunicorn_server(env, workers=2) as url:
        cookie, token = login_form(url)
        body = urlencode({"password": "not the password", "csrf_token": token})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
        barrier = threading.Barrier(ATTEMPTS)
        answers: list[tuple[int, str]] = []
        lock = threading.Lock()

        def guess() -> None:
            connection = http.client.HTTPConnection(url.host, url.port, timeout=60)
            # Everything but the body's last byte goes first, so that each worker holds the
            # request open; the barrier then releases all the last bytes together.
            connection.putrequest("POST", "/login")
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                connection.putheader(name, value)
            connection.endheaders(body[:-1].encode())
            barrier.wait()
            connection.send(body[-1:].encode())
            response = connection.getresponse()
            answer = (response.status, response.read().decode())
            connection.close()
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=guess) for _ in range(ATTEMPTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    statuses = Counter(status for status, _ in answers)
    checked = [text for status, text in answers if status == 401]
    assert len(answers) == ATTEMPTS
    assert set(statuses) <= {401, 429}, statuses
    # Every request that was not refused had its password checked (and found wrong).
    assert all("Wrong password." in text for text in checked)
    assert statuses[401] == LIMIT, statuses
    assert all("Too many failed logins" in text for status, text in answers if status == 429)
