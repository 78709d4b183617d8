"""A bad setting stops `flask` (exit 2) and gunicorn at start-up with one line, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from optscan.cli import EXIT_USAGE
from tests.flaskrun import flask_command
from tests.servers import PROJECT_ROOT, child_environment, free_port

pytestmark = pytest.mark.slow

APP_LOAD_ERROR = 4  # gunicorn's exit code when a worker cannot load the app

# Each bad value, as a function of a scratch folder, and the variable its message must name.
BAD: dict[str, tuple[Callable[[Path], dict[str, str]], str]] = {
    "missing replay folder": (
        lambda d: {"OPTSCAN_SOURCE": f"replay:{d}/nowhere"},
        "OPTSCAN_SOURCE",
    ),
    "replay is a file": (lambda d: {"OPTSCAN_SOURCE": f"replay:{d}/a-file"}, "OPTSCAN_SOURCE"),
    "no secret in production": (lambda d: {"OPTSCAN_ENV": "production"}, "OPTSCAN_SECRET_KEY"),
    "numeric secret": (lambda d: {"OPTSCAN_SECRET_KEY": "1234567890"}, "OPTSCAN_SECRET_KEY"),
    "not a number": (lambda d: {"OPTSCAN_HORIZON_DAYS": "four weeks"}, "OPTSCAN_HORIZON_DAYS"),
    "unusable hash": (lambda d: {"OPTSCAN_PASSWORD_HASH": "md5$salt$abc"}, "OPTSCAN_PASSWORD_HASH"),
    "bad Redis port": (lambda d: {"REDIS_URL": "redis://localhost:port"}, "REDIS_URL"),
    "instance under a file": (
        lambda d: {"OPTSCAN_INSTANCE_PATH": f"{d}/a-file/instance"},
        "OPTSCAN_INSTANCE_PATH",
    ),
    "zero lifetime": (
        lambda d: {"OPTSCAN_SESSION_LIFETIME_DAYS": "0"},
        "OPTSCAN_SESSION_LIFETIME_DAYS",
    ),
}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "instance").mkdir()
    return tmp_path


def settings(scratch: Path, case: str) -> dict[str, str]:
    make, _ = BAD[case]
    return {"OPTSCAN_INSTANCE_PATH": str(scratch / "instance"), **make(scratch)}


def assert_one_line(stderr: str, variable: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    naming = [line for line in stderr.splitlines() if variable in line]
    assert len(naming) == 1, stderr[-3000:]
    assert naming[0].startswith("Error: "), naming


def run_gunicorn(env: dict[str, str], workers: int = 2) -> subprocess.CompletedProcess[str]:
    """Start gunicorn as `just run` does and return how it ended (it must not keep running)."""
    child_env = child_environment(
        {**env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}", "WEB_CONCURRENCY": str(workers)}
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--no-control-socket",
            "wsgi:app",
        ],
        cwd=PROJECT_ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=90)  # a hang guard: it should stop at once
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"gunicorn started despite a bad setting:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("case", list(BAD))
def test_the_cli_stops_with_exit_2_and_one_line(scratch: Path, case: str) -> None:
    answer = subprocess.run(
        flask_command("scan", "--force"),
        cwd=PROJECT_ROOT,
        env=child_environment(settings(scratch, case)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == EXIT_USAGE, answer.stderr[-3000:]
    assert_one_line(answer.stderr, BAD[case][1])
    assert answer.stdout == ""


@pytest.mark.parametrize("case", list(BAD))
def test_gunicorn_refuses_to_start_with_one_line(scratch: Path, case: str) -> None:
    ended = run_gunicorn(settings(scratch, case))
    assert ended.returncode == EXIT_USAGE, ended.stderr[-3000:]
    assert_one_line(ended.stderr, BAD[case][1])
    assert "Booting worker" not in ended.stderr  # refused before any worker started


def test_a_worker_that_cannot_load_the_app_stops_gunicorn_with_one_line(scratch: Path) -> None:
    # A damaged generated key is found by the worker, not the settings check: still one line.
    instance = scratch / "instance"
    (instance / "secret_key").write_text("short\n")
    ended = run_gunicorn({"OPTSCAN_INSTANCE_PATH": str(instance)}, workers=1)
    assert ended.returncode == APP_LOAD_ERROR, ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr, ended.stderr[-3000:]
    naming = [line for line in ended.stderr.splitlines() if "holds no usable secret key" in line]
    assert len(naming) == 1 and naming[0].startswith("Error: "), ended.stderr[-3000:]
