"""SIGKILL a `flask scan` mid-way with the default settings: scanning is free again within one
lock TTL (10 s, so well within 15 s), and meanwhile and after the scan shows as interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from optscan.config import DEFAULTS
from optscan.store.watchlist import Watchlist
from tests.faults import alias_names, server_env, wait_for
from tests.flaskrun import flask_command, run_flask
from tests.replaydirs import build_replay_dir
from tests.servers import PROJECT_ROOT, child_environment
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

SYMBOLS = alias_names("Q", 5)
HUNG = SYMBOLS[2]  # the scan stops here, on a request that is never answered
NEW_SCAN_WITHIN_S = 15


def test_default_lock_ttl_frees_a_killed_scan_within_15_s() -> None:
    assert DEFAULTS["LOCK_TTL_SECONDS"] <= NEW_SCAN_WITHIN_S - 5


def test_a_killed_cli_scan_is_shown_interrupted_and_a_new_scan_can_start(
    tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str, make_app
) -> None:
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    lock_key = f"{redis_prefix}scan:lock"
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    aliases = dict.fromkeys(SYMBOLS, "AAPL")
    with YahooEmulator(recordings, aliases=aliases, hang_seconds=600) as yahoo:
        yahoo.inject("hang", path=f"/{HUNG}$")
        # Default lock TTL: that is what is under test. One request at a time and no timeout
        # to speak of: the scan reliably sits on the hung request until it is killed.
        env = child_environment(
            server_env(
                OPTSCAN_INSTANCE_PATH=str(instance_path),
                REDIS_URL=redis_url,
                OPTSCAN_REDIS_PREFIX=redis_prefix,
                OPTSCAN_SOURCE=f"yahoo:{yahoo.base_url}",
                OPTSCAN_SCAN_CONCURRENCY="1",
                OPTSCAN_FETCH_TIMEOUT_SECONDS="300",
            )
        )
        scan = subprocess.Popen(
            flask_command("scan", "--force"),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The controlled point: the scan holds the lock and waits on the hung request.
            wait_for(
                lambda: any(h.path.endswith(f"/{HUNG}") and h.status == -1 for h in yahoo.hits),
                120,
                "the scan to reach the hung request",
            )
            holder = store.get(f"{lock_key}:holder")
            assert holder and store.exists(lock_key)
        finally:
            os.kill(scan.pid, signal.SIGKILL)
            scan.wait(timeout=30)

        web = make_app(SOURCE=f"yahoo:{yahoo.base_url}").test_client()
        while_held = web.get("/scan/status").json
        # Nothing renews the lock now: Redis drops it when its TTL runs out, at most 10 s on.
        ttl_ms = store.pttl(lock_key)
        assert 0 < ttl_ms <= DEFAULTS["LOCK_TTL_SECONDS"] * 1000, ttl_ms
        # The lock outlived that request, and until it expires nothing can tell a dead holder
        # from a slow one.
        assert while_held["state"] == "running", while_held
        wait_for(lambda: not store.exists(lock_key), NEW_SCAN_WITHIN_S + 30, "the lock to expire")

        status = web.get("/scan/status").json
        assert status["state"] == "interrupted" and status["running"] is False, status
        assert 2 <= status["progress"]["index"] < len(SYMBOLS), status["progress"]
        page = web.get("/").get_data(as_text=True)
        assert "was interrupted after" in page

        yahoo.clear_faults()
        again = run_flask("scan", "--force", "--json", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert web.get("/scan/status").json["state"] == "idle"
        assert "was interrupted after" not in web.get("/").get_data(as_text=True)
    store.close()
