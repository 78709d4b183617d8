"""Run `flask --app optscan ...` (as an operator or cron would) and Python snippets as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def flask_command(*args: str) -> list[str]:
    """Return the argv of `flask --app optscan ARGS` run with this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "optscan", *args]


def run_flask(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `flask --app optscan ARGS` from the project folder and return what it did."""
    return subprocess.run(
        flask_command(*args),
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )


def scan_env(source: str, redis_url: str, redis_prefix: str, instance: Path) -> dict[str, str]:
    """Return this process's environment set to scan `source` into a private Redis prefix."""
    return dict(
        os.environ,
        OPTSCAN_SOURCE=source,
        REDIS_URL=redis_url,
        OPTSCAN_REDIS_PREFIX=redis_prefix,
        OPTSCAN_INSTANCE_PATH=str(instance),
    )


def run_python(
    code: str, *args: str, timeout: float = 60, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter with the project importable."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        check=check,
    )
