"""The embedded Redis server and the scan lock, against real Redis servers and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis

from optscan.store.lock import ScanLock, lock_holder
from optscan.store.redisserver import EmbeddedRedis, connect
from tests.flaskrun import run_python

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_embedded_redis_is_shared_by_concurrent_processes(instance_path: Path) -> None:
    code = """
        import sys
        from pathlib import Path
        from optscan.store.redisserver import connect
        client = connect(None, Path(sys.argv[1]))
        client.incr("starts")
        print(client.info("server")["process_id"])
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(instance_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        for _ in range(4)
    ]
    pids = {p.communicate(timeout=60)[0].strip() for p in procs}
    server = EmbeddedRedis(instance_path / "redis")
    try:
        assert len(pids) == 1, f"each process started its own server: {pids}"
        client = connect(None, instance_path)
        assert client.get("starts") == "4"
        client.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_embedded_redis_keeps_data_across_a_restart(instance_path: Path) -> None:
    server = EmbeddedRedis(instance_path / "redis")
    client = connect(None, instance_path)
    client.set("optscan:scan:last:put", json.dumps({"matches": [1, 2, 3]}))
    first_pid = client.info("server")["process_id"]
    client.close()
    server.stop()  # SHUTDOWN flushes the append-only file, whatever its fsync policy
    assert not server._ping()
    client = connect(None, instance_path)
    try:
        assert client.info("server")["process_id"] != first_pid
        assert json.loads(client.get("optscan:scan:last:put")) == {"matches": [1, 2, 3]}
    finally:
        client.close()
        server.stop()


def test_lock_refuses_a_second_holder_and_names_the_first(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}scan:lock"
    first = ScanLock(redis_client, key, ttl=5, holder={"trigger": "web"})
    second = ScanLock(redis_client, key, ttl=5, holder={"trigger": "cli"})
    assert first.acquire()
    try:
        assert not second.acquire()
        assert lock_holder(redis_client, key) == {"trigger": "web"}
    finally:
        first.release()
    assert lock_holder(redis_client, key) is None
    assert second.acquire()
    second.release()


def test_lock_taken_in_one_thread_is_released_by_another(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}scan:lock"
    lock = ScanLock(redis_client, key, ttl=5, holder={})
    assert lock.acquire()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            lock.release()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=release)
    worker.start()
    worker.join()
    assert errors == []
    assert not redis_client.exists(key)


def renewals_seen(client: redis.Redis, key: str, count: int, *, past: float = 0.0) -> None:
    """Watch `key` until its TTL has been pushed back `count` times and `past` seconds have gone
    by; fail if it disappears meanwhile or after a generous hang guard."""
    started = time.monotonic()
    deadline = started + 60
    last, seen = client.pttl(key), 0
    while seen < count or time.monotonic() - started < past:
        assert time.monotonic() < deadline, f"{seen} renewals of {key} in 60 s"
        time.sleep(0.02)
        ttl = client.pttl(key)
        assert ttl > 0, f"{key} expired after {seen} renewals"
        seen += ttl > last
        last = ttl


def test_watchdog_keeps_the_lock_past_its_ttl(redis_client: redis.Redis, redis_prefix: str) -> None:
    key = f"{redis_prefix}scan:lock"
    lock = ScanLock(redis_client, key, ttl=2, holder={})
    assert lock.acquire()
    try:
        # Renewed every ttl / 3: four renewals and more than a TTL later, still held.
        renewals_seen(redis_client, key, 4, past=2.2)
        assert not lock.lost
        assert not ScanLock(redis_client, key, ttl=2, holder={}).acquire()
    finally:
        lock.release()


def test_a_lost_lock_is_noticed_within_a_renewal(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}scan:lock"
    lock = ScanLock(redis_client, key, ttl=3, holder={})
    assert lock.acquire()
    redis_client.delete(key)  # as if it had expired while the process was stalled
    redis_client.set(key, "someone-else")
    # Noticed by the watchdog at its next renewal, not only when released.
    deadline = time.monotonic() + 60  # a hang guard: the renewal is due within 1 s
    while not lock.lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.lost
    lock.release()
    assert redis_client.get(key) == "someone-else", "released a lock it no longer owned"


@pytest.mark.slow
def test_lock_of_a_killed_process_frees_within_one_ttl(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}scan:lock"
    code = """
        import sys, time, redis
        from optscan.store.lock import ScanLock
        client = redis.Redis.from_url(sys.argv[1], decode_responses=True)
        lock = ScanLock(client, sys.argv[2], ttl=2, holder={"trigger": "cli"})
        assert lock.acquire()
        print("held", flush=True)
        time.sleep(60)
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), redis_url, key],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    renewals_seen(redis_client, key, 1)  # the watchdog renews a live holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    # Dead: at most one TTL left, and nobody pushes it back any more.
    left = redis_client.pttl(key)
    assert 0 < left <= 2000, f"{left} ms left on the lock of a dead holder (TTL 2 s)"
    deadline = time.monotonic() + 60  # a hang guard: Redis expires it within those 2 s
    while (ttl := redis_client.pttl(key)) > 0:
        assert ttl <= left, "renewed after its holder died"
        assert time.monotonic() < deadline, "never expired"
        left = ttl
        time.sleep(0.05)
    assert not redis_client.exists(key)


@pytest.mark.slow
def test_lock_works_across_greenlets_under_gevent(redis_url: str, redis_prefix: str) -> None:
    result = run_python(
        """
        from gevent import monkey
        monkey.patch_all()
        import sys, gevent, redis
        from optscan.store.lock import ScanLock
        client = redis.Redis.from_url(sys.argv[1], decode_responses=True)
        lock = ScanLock(client, sys.argv[2], ttl=2, holder={})
        assert gevent.spawn(lock.acquire).get()
        ticks = []
        ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.1)) for _ in range(15)])
        # The watchdog greenlet renews (the TTL goes back up) four times: past the 2 s TTL.
        last, renewals = client.pttl(sys.argv[2]), 0
        while renewals < 4 and last > 0:
            gevent.sleep(0.02)
            ttl = client.pttl(sys.argv[2])
            renewals, last = renewals + (ttl > last), ttl
        held = client.exists(sys.argv[2])
        gevent.spawn(lock.release).get()
        ticker.join()
        print(held, client.exists(sys.argv[2]), len(ticks), lock.lost)
        """,
        redis_url,
        f"{redis_prefix}scan:lock",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "0", "15", "False"]
