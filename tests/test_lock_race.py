"""One scan at a time: concurrent POST /scan on two gunicorn workers racing a `flask scan`."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from optscan.store.events import ScanEvents
from optscan.store.watchlist import Watchlist
from tests.flaskrun import flask_command
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN"]
POSTS = 50


def session_and_token(host: str, port: int) -> tuple[str, str]:
    """Open the page once and return its session cookie and CSRF token."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    body = response.read().decode()
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    connection.close()
    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    return cookie, token


def post_scan(host: str, port: int, cookie: str, token: str, results: list, barrier) -> None:
    body = urlencode({"side": "put", "force": "1", "csrf_token": token})
    connection = http.client.HTTPConnection(host, port, timeout=30)
    barrier.wait()
    connection.request(
        "POST",
        "/scan",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "X-Requested-With": "fetch",
        },
    )
    response = connection.getresponse()
    results.append((response.status, response.read().decode()))
    connection.close()


def test_exactly_one_scan_runs_among_racing_web_requests_and_the_cli(
    tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str
) -> None:
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    aliases = dict.fromkeys(SYMBOLS, "AAPL")
    with YahooEmulator(recordings, aliases=aliases) as yahoo:
        # The winner's scan waits at Yahoo until every contender has been answered: however
        # slow or fast the machine, no scan can finish (and free the lock) while others try.
        gate = yahoo.hold()
        env = {
            "OPTSCAN_INSTANCE_PATH": str(instance_path),
            "REDIS_URL": redis_url,
            "OPTSCAN_REDIS_PREFIX": redis_prefix,
            "OPTSCAN_SOURCE": f"yahoo:{yahoo.base_url}",
            "OPTSCAN_SECRET_KEY": "race-test-secret-key-0123456789abcdef",
            "OPTSCAN_SCAN_CONCURRENCY": "1",
            "OPTSCAN_FETCH_TIMEOUT_SECONDS": "120",  # held answers must not time out
        }
        with gunicorn_server(env, workers=2) as url:
            cookie, token = session_and_token(url.host, url.port)
            cli = subprocess.Popen(
                flask_command("scan", "--force", "--json"),
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # Fire the requests about when the CLI has imported its modules and goes for the
            # lock (only to make the race real: the outcome is checked, not the timing).
            time.sleep(1.0)
            results: list[tuple[int, str]] = []
            barrier = threading.Barrier(POSTS)
            threads = [
                threading.Thread(
                    target=post_scan, args=(url.host, url.port, cookie, token, results, barrier)
                )
                for _ in range(POSTS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert len(results) == POSTS
            if 202 in (status for status, _ in results):
                # A web scan holds the lock: the CLI must be refused while it waits at Yahoo.
                cli_out, cli_err = cli.communicate(timeout=120)
                gate.release()
            else:
                # The CLI holds it: its scan reaches Yahoo; let it go.
                gate.wait_for_arrivals(1, give_up=lambda: cli.poll() is not None)
                gate.release()
                cli_out, cli_err = cli.communicate(timeout=120)

            client = redis.Redis.from_url(redis_url, decode_responses=True)
            events = ScanEvents(client, redis_prefix)
            deadline = time.monotonic() + 120  # a hang guard
            while time.monotonic() < deadline:
                ended = [e for e in events.logged() if e.type in ("scan-finished", "scan-failed")]
                if ended:
                    break
                time.sleep(0.2)
            log = events.logged()
            client.close()

    statuses = sorted(status for status, _ in results)
    started_by_web = statuses.count(202)
    cli_won = cli.returncode == 0
    assert len(results) == POSTS
    assert started_by_web + int(cli_won) == 1, (statuses, cli.returncode, cli_err[-2000:])
    assert set(statuses) <= {202, 409}
    for status, body in results:
        if status == 409:
            assert "already running" in body
    if not cli_won:
        assert cli.returncode == 4 and "already running" in cli_err
    else:
        assert json.loads(cli_out)["success"] is True
    starts = [e for e in log if e.type == "scan-started"]
    assert len(starts) == 1, [e.data for e in starts]
    assert [e.type for e in log].count("scan-finished") == 1
