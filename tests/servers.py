"""Run the real app under gunicorn (the project's gunicorn.conf.py, gevent workers) for tests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Inherited settings that would leak the developer's environment into the server under test.
_SCRUBBED_PREFIXES = ("OPTSCAN_", "GUNICORN_", "FLASK_")
_SCRUBBED_NAMES = {"REDIS_URL", "WEB_CONCURRENCY"}


class BaseURL(str):
    """The server's base URL (``http://127.0.0.1:PORT``), which can also show the server's log."""

    _log_file: IO[bytes]
    pid: int

    def log(self) -> str:
        """Return everything gunicorn and the app have written so far."""
        self._log_file.flush()
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")

    @property
    def host(self) -> str:
        """Return the host to connect to."""
        return self.split("://", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """Return the port to connect to."""
        return int(self.rsplit(":", 1)[1])


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """Return this process's environment without inherited optscan settings, plus `env`."""
    child_env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_PREFIXES) and name not in _SCRUBBED_NAMES
    }
    child_env.update({name: str(value) for name, value in env.items()})
    return child_env


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        # Any HTTP answer (even 404) means a worker has loaded the app and serves requests.
        connection.request("GET", "/favicon-probe-for-tests")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@contextmanager
def gunicorn_server(
    env: dict[str, str],
    workers: int = 1,
    *,
    app: str = "wsgi:app",
    start_timeout: float = 120.0,  # a hang guard
    stop_timeout: float = 15.0,
) -> Iterator[BaseURL]:
    """Serve the app under gunicorn on a free local port and yield its base URL.

    ``env`` holds the settings (OPTSCAN_INSTANCE_PATH, REDIS_URL, OPTSCAN_REDIS_PREFIX, ...);
    inherited OPTSCAN_*, GUNICORN_*, FLASK_*, REDIS_URL and WEB_CONCURRENCY are dropped first.
    The server is stopped with SIGTERM (SIGKILL to its process group after ``stop_timeout``);
    open streams hold a gevent worker up to gunicorn's graceful timeout, so close them first.
    A failure inside the block gets the server's log attached as a note.
    """
    port = free_port()
    child_env = child_environment(env)
    child_env.update(
        {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(workers),
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_file = tempfile.TemporaryFile(prefix="optscan-gunicorn-")  # noqa: SIM115 - lives with the server
    process = subprocess.Popen(
        # No control socket: its default path is per user, shared by every test server.
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket", app],
        cwd=PROJECT_ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Its own process group: a hung server and its workers can be killed together.
        start_new_session=True,
    )
    url = BaseURL(f"http://127.0.0.1:{port}")
    url._log_file = log_file
    url.pid = process.pid
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers("127.0.0.1", port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with code {process.returncode} at start-up:\n{url.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn did not answer within {start_timeout:g} s:\n{url.log()}"
                )
            time.sleep(0.1)
        try:
            yield url
        except BaseException as exc:
            exc.add_note(f"--- gunicorn log (pid {process.pid}) ---\n{url.log()[-20000:]}")
            raise
    finally:
        _stop(process, stop_timeout)
        log_file.close()


def _stop(process: subprocess.Popen[bytes], stop_timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    # Hung: the group was created for this server alone, so end all of it.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
