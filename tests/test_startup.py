"""Check what start-up loads: heavy libraries only where a command needs them.

Start-up time is measured in the README's figures, not here: these tests check the cause
(which modules a fresh interpreter has loaded), which does not depend on the machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.replaydirs import build_replay_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "scipy", "yfinance", "curl_cffi", "exchange_calendars", "sqlalchemy")


def loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """Run `code` in a fresh interpreter and return which of HEAVY it left loaded."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_settings_loads_no_analytics() -> None:
    assert loaded_after("import optscan.config") == set()


def test_creating_the_app_loads_no_heavy_library(instance_path: Path) -> None:
    code = """
        from optscan import create_app
        create_app()
    """
    assert loaded_after(code, {"OPTSCAN_INSTANCE_PATH": str(instance_path)}) == set()


def test_scan_help_loads_no_heavy_library(instance_path: Path) -> None:
    code = """
        from flask.cli import cli
        try:
            cli.main(["--app", "optscan", "scan", "--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
    """
    assert loaded_after(code, {"OPTSCAN_INSTANCE_PATH": str(instance_path)}) == set()


@pytest.mark.slow
def test_a_forced_replay_scan_loads_only_what_it_uses(
    instance_path: Path, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # The symbols are named: the watchlist is not read, but the default rules and the
    # positions (cash, holdings) are, and the scan history (IV rank reads it, the completed scan
    # is recorded in it): SQLAlchemy. The market is not asked (exchange_calendars); the source
    # replays files (no yfinance, no curl_cffi).
    replay = build_replay_dir(tmp_path / "replay", "aapl")
    code = """
        from flask.cli import cli
        try:
            cli.main(["--app", "optscan", "scan", "--force", "--symbols", "AAPL", "--json"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
    """
    env = {
        "OPTSCAN_INSTANCE_PATH": str(instance_path),
        "OPTSCAN_SOURCE": f"replay:{replay}",
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": redis_prefix,
    }
    # scipy: the IV solver (no pandas any more); sqlalchemy: the books, saved rules, history.
    assert loaded_after(code, env) == {"scipy", "sqlalchemy"}
