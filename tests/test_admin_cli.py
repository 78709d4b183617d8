"""`flask set-password` prompts, and `flask redis status|stop` for the embedded server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from optscan.cli import EXIT_BUSY, EXIT_FAILED, EXIT_USAGE
from optscan.store.redisserver import EmbeddedRedis
from tests.flaskrun import run_flask
from tests.replaydirs import build_replay_dir
from tests.servers import child_environment

PASSWORD = "correct horse battery"


def test_a_short_password_is_refused_before_the_second_prompt(
    make_app, instance_path: Path
) -> None:
    runner = make_app().test_cli_runner()
    for args in (["set-password"], ["set-password", "--print"]):
        short = runner.invoke(args=args, input="short\n")
        assert short.exit_code == EXIT_USAGE, short.output
        assert "at least 10 characters" in short.stderr
        assert "Repeat" not in short.output  # asked once only
    assert not (instance_path / "password_hash").exists()


def test_two_different_passwords_change_nothing(make_app, instance_path: Path) -> None:
    runner = make_app().test_cli_runner()
    differ = runner.invoke(args=["set-password"], input=f"{PASSWORD}\n{PASSWORD}!\n")
    assert differ.exit_code == EXIT_USAGE and "differ" in differ.stderr
    assert not (instance_path / "password_hash").exists()
    done = runner.invoke(args=["set-password"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.exit_code == 0 and (instance_path / "password_hash").exists()


def test_the_redis_commands_refuse_a_server_they_do_not_own(make_app) -> None:
    runner = make_app().test_cli_runner()  # make_app points REDIS_URL at the test server
    for command in ("status", "stop"):
        answer = runner.invoke(args=["redis", command])
        assert answer.exit_code == EXIT_USAGE and "REDIS_URL is set" in answer.stderr


@pytest.fixture
def embedded_instance(instance_path: Path) -> Iterator[Path]:
    """Yield an instance folder whose embedded Redis is stopped afterwards, whatever happened."""
    yield instance_path
    EmbeddedRedis(instance_path / "redis").stop()


def flask(instance: Path, replay: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_environment(
        {"OPTSCAN_INSTANCE_PATH": str(instance), "OPTSCAN_SOURCE": f"replay:{replay}"}
    )
    return run_flask(*args, env=env)


def alive(pid: int) -> bool:
    """Return whether a process runs (a zombie waiting for init to reap it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_the_embedded_redis_outlives_a_scan_until_flask_redis_stop(
    embedded_instance: Path, tmp_path: Path
) -> None:
    replay = build_replay_dir(tmp_path / "replay", "aapl")
    server = EmbeddedRedis(embedded_instance / "redis")
    assert server.status() is None
    scan = flask(embedded_instance, replay, "scan", "--force", "--symbols", "AAPL")
    assert scan.returncode == 0, scan.stderr[-2000:]
    status = server.status()
    assert status is not None, "the scan's Redis should still run after the scan exits"
    shown = flask(embedded_instance, replay, "redis", "status")
    assert shown.returncode == 0 and f"running: pid {status.pid}" in shown.stdout

    # Another client (a web worker, a scan) is connected: refused, nothing stopped.
    other = redis.Redis(unix_socket_path=str(server.socket_path))
    assert other.ping()
    busy = flask(embedded_instance, replay, "redis", "stop")
    assert busy.returncode == EXIT_BUSY and "other clients are connected" in busy.stderr
    assert alive(status.pid)
    other.close()

    stopped = flask(embedded_instance, replay, "redis", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"Stopped the embedded Redis server (pid {status.pid})" in stopped.stdout
    assert not alive(status.pid) and server.status() is None
    after = flask(embedded_instance, replay, "redis", "status")
    assert after.returncode == EXIT_FAILED and "not running" in after.stdout

    # The data survived the stop: the server starts again with the scan's keys.
    server.ensure_running()
    client = redis.Redis(unix_socket_path=str(server.socket_path))
    assert any(client.scan_iter(match="optscan:*"))
    client.close()
