"""SIGKILL the gunicorn worker that runs a scan: the lock frees within one TTL, the last good
results survive, the scan shows as interrupted (not running forever), and a new scan starts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from optscan.store.watchlist import Watchlist
from tests.faults import (
    alias_names,
    answers,
    child_pids,
    post_scan,
    request,
    scan_status,
    server_env,
    wait_for,
)
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

SYMBOLS = alias_names("K", 12)
LOCK_TTL_S = 5  # OPTSCAN_LOCK_TTL_SECONDS: the smallest the settings accept
HANG_GUARD_S = 60.0  # for what must happen: only a hang guard


def since(moment: float) -> float:
    """Return the seconds elapsed since a time.monotonic() moment."""
    return time.monotonic() - moment


def test_a_killed_worker_frees_the_lock_keeps_results_and_shows_interrupted(
    tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str
) -> None:
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    lock_key = f"{redis_prefix}scan:lock"
    last_key = f"{redis_prefix}scan:last:put"
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    figures: dict[str, float | int | str] = {}
    with YahooEmulator(recordings, aliases=dict.fromkeys(SYMBOLS, "AAPL")) as yahoo:
        env = server_env(
            OPTSCAN_INSTANCE_PATH=str(instance_path),
            REDIS_URL=redis_url,
            OPTSCAN_REDIS_PREFIX=redis_prefix,
            OPTSCAN_SOURCE=f"yahoo:{yahoo.base_url}",
            OPTSCAN_LOCK_TTL_SECONDS=str(LOCK_TTL_S),
            # One request at a time: the scan advances symbol by symbol.
            OPTSCAN_SCAN_CONCURRENCY="1",
            OPTSCAN_FETCH_TIMEOUT_SECONDS="120",  # held answers must not time out
        )
        with gunicorn_server(env, workers=1) as url:
            # 1. A good scan first: these are the results that must survive.
            assert post_scan(url).status == 202
            good = wait_for(
                lambda: (s := scan_status(url))["state"] == "idle" and s["last"]["put"] and s,
                HANG_GUARD_S,
                "the first scan to complete",
            )
            assert good["last"]["put"]["success"] is True
            stored_before = store.get(last_key)
            download_before = request(url, "GET", "/results.json?side=put")
            assert download_before.status == 200 and stored_before

            # 2. A scan held at Yahoo after three symbols, killed with its worker there.
            stall = yahoo.hold(r"/K(0[3-9]|1[01])$")
            assert post_scan(url).status == 202
            stall.wait_for_arrivals(1)
            running = wait_for(
                lambda: (
                    (s := scan_status(url))["running"]
                    and (s["progress"] or {}).get("index", 0) == 3
                    and s
                ),
                HANG_GUARD_S,
                "the held scan to report three symbols",
            )
            scan_id = running["holder"]["scan_id"]
            assert running["progress"]["scan_id"] == scan_id
            workers = child_pids(url.pid)
            assert len(workers) == 1, workers
            os.kill(workers[0], signal.SIGKILL)
            killed_at = time.monotonic()
            index_at_kill = running["progress"]["index"]
            wait_for(lambda: workers[0] not in child_pids(url.pid), HANG_GUARD_S, "the kill")
            # Dead: at most one TTL left on the lock, and nobody pushes it back any more.
            ttl_left_ms = store.pttl(lock_key)
            assert 0 < ttl_left_ms <= LOCK_TTL_S * 1000, ttl_left_ms

            # 3. gunicorn respawns the worker; the lock expires by itself within that TTL;
            # from then on the status says interrupted.
            milestones: dict[str, float] = {}
            deadline = killed_at + HANG_GUARD_S
            interrupted = None
            while interrupted is None:
                assert time.monotonic() < deadline, f"still not interrupted: {milestones}"
                if set(child_pids(url.pid)) - set(workers):
                    milestones.setdefault("worker_respawned_after_s", since(killed_at))
                ttl = store.pttl(lock_key)
                assert ttl <= ttl_left_ms, "the dead holder's lock was renewed"
                freed = ttl < 0
                if freed:
                    milestones.setdefault("lock_freed_after_s", since(killed_at))
                answer = answers(url)  # waits in the listen queue while no worker is up
                if answer is not None and answer.status == 200:
                    milestones.setdefault("status_answers_after_s", since(killed_at))
                    if answer.json()["state"] == "interrupted":
                        milestones["interrupted_shown_after_s"] = since(killed_at)
                        interrupted = answer.json()
                    else:
                        # Until the lock expires nothing can tell a dead holder from a slow
                        # one; once it has, the status must say interrupted.
                        assert not freed, answer.json()
                        assert answer.json()["state"] == "running", answer.json()
                time.sleep(0.05)
            figures.update(lock_ttl_left_at_kill_ms=ttl_left_ms, **milestones)
            stall.release()

            # 4. The respawned worker reports the scan as interrupted, not running.
            respawned = child_pids(url.pid)
            assert respawned and respawned != workers
            assert interrupted["running"] is False and interrupted["holder"] is None
            progress = interrupted["progress"]
            assert progress["scan_id"] == scan_id
            assert index_at_kill <= progress["index"] < len(SYMBOLS)
            # Nothing was saved by the killed scan: the last good result and attempt stand.
            assert interrupted["last"]["put"] == {
                **interrupted["last"]["put"],
                "finished_at": good["last"]["put"]["finished_at"],
                "success": True,
            }
            assert (
                interrupted["last_attempt"]["put"]["finished_at"]
                == (good["last"]["put"]["finished_at"])
            )
            assert store.get(last_key) == stored_before
            # No symbol lost its rows; only symbols the killed scan finished were replaced.
            before = json.loads(download_before.text)
            after = json.loads(request(url, "GET", "/results.json?side=put").text)
            assert after["last_scan"] == before["last_scan"]
            assert set(after["symbols"]) == set(before["symbols"]) == set(SYMBOLS)
            replaced = [s for s in SYMBOLS if after["symbols"][s] != before["symbols"][s]]
            assert len(replaced) <= progress["index"]
            assert all(after["symbols"][s]["status"] == "ok" for s in replaced)

            page = request(url, "GET", "/")
            assert page.status == 200
            assert "was interrupted after" in page.text
            assert f"{progress['index']} of {len(SYMBOLS)} symbols" in page.text
            assert "Traceback" not in page.text
            figures["yahoo_requests_so_far"] = len(yahoo.hits)

            # 5. A new scan can start and completes; the page stops saying interrupted.
            restart = post_scan(url)
            assert restart.status == 202, restart.text[:1000]
            done = wait_for(
                lambda: (
                    (s := scan_status(url))["state"] == "idle"
                    and s["last"]["put"]["finished_at"] != good["last"]["put"]["finished_at"]
                    and s
                ),
                HANG_GUARD_S,
                "the new scan to complete",
            )
            assert done["last"]["put"]["success"] is True
            assert done["last"]["put"]["counts"]["scanned"] == len(SYMBOLS)
            assert "was interrupted after" not in request(url, "GET", "/").text
            log = url.log()
    store.close()
    assert "Traceback" not in log, log[-4000:]
    shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print("\nSIGKILL mid-scan:", shown)
