"""A 500-symbol watchlist scanned to completion by `flask scan` as a real process, against the
Yahoo emulator serving every symbol from AAPL's recordings."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from optscan.core.scan import perform_scan
from optscan.sources.replay import ReplaySource
from optscan.store.watchlist import Watchlist
from tests.faults import alias_names, server_env
from tests.flaskrun import flask_command
from tests.replaydirs import build_replay_dir
from tests.scanenv import make_scan_env
from tests.servers import PROJECT_ROOT
from tests.yahoo_emulator import OPTIONS_PREFIX, YahooEmulator

pytestmark = pytest.mark.slow

COUNT = 500
CONCURRENCY = 16


def reference_matches(recordings: Path, tmp_path: Path) -> tuple[list[dict], int]:
    """Return AAPL's put matches from the recordings read directly, and its expiration count."""
    env = make_scan_env(ReplaySource(recordings), tmp_path / "reference.sqlite3")
    result = perform_scan(["AAPL"], "put", True, env=env)
    assert result.success and result.matches
    return result.matches, len(result.symbols["AAPL"].expirations)


def without_names(match: dict) -> dict:
    return {k: v for k, v in match.items() if k not in ("symbol", "contract")}


def test_a_500_symbol_watchlist_scans_to_completion(
    tmp_path: Path, instance_path: Path, redis_url: str, redis_prefix: str
) -> None:
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    symbols = alias_names("W", COUNT)
    Watchlist(instance_path / "watchlist.sqlite3", seed=symbols)
    reference, expirations = reference_matches(recordings, tmp_path)
    with YahooEmulator(recordings, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        env = server_env(
            OPTSCAN_INSTANCE_PATH=str(instance_path),
            REDIS_URL=redis_url,
            OPTSCAN_REDIS_PREFIX=redis_prefix,
            OPTSCAN_SOURCE=f"yahoo:{yahoo.base_url}",
            OPTSCAN_SCAN_CONCURRENCY=str(CONCURRENCY),
        )
        started = time.monotonic()
        process = subprocess.run(
            flask_command("scan", "--force", "--json"),
            cwd=PROJECT_ROOT,
            env={**_inherited(), **env},
            capture_output=True,
            text=True,
            timeout=280,  # a hang guard, under pytest-timeout's
            check=False,
        )
        wall = time.monotonic() - started
        hits = yahoo.hits

    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout)
    assert result["success"] is True
    assert result["counts"]["symbols"] == result["counts"]["scanned"] == COUNT
    assert {r["status"] for r in result["symbols"].values()} == {"ok"}
    # Every symbol's matches are AAPL's, read from the same recordings without HTTP.
    expected = [without_names(m) for m in reference]
    found: dict[str, list[dict]] = {}
    for match in result["matches"]:
        found.setdefault(match["symbol"], []).append(without_names(match))
    assert set(found) == set(symbols)
    assert all(found[s] == expected for s in symbols)
    # Each symbol asked once for its listing and once per expiration in the horizon: no
    # answer fetched twice, none skipped.
    options_hits = [h for h in hits if h.path.startswith(OPTIONS_PREFIX)]
    per_symbol = Counter(h.path[len(OPTIONS_PREFIX) :] for h in options_hits)
    assert set(per_symbol.values()) == {1 + expirations}
    assert all(h.status == 200 for h in options_hits)
    options = sum(per_symbol.values())
    print(
        f"\n{COUNT} symbols: flask scan exited 0 after {wall:.1f} s wall"
        f" (scan {result['duration_s']:.1f} s); {options} options requests"
        f" + {len(hits) - options} cookie/crumb; {len(result['matches'])} matches;"
        f" {options / result['duration_s']:.0f} requests/s at {CONCURRENCY} in flight"
    )


def _inherited() -> dict[str, str]:
    """Return this process's environment without settings that would leak into the scan."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPTSCAN_", "FLASK_")) and name != "REDIS_URL"
    }
