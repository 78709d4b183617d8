"""Shared fixtures: a real Redis server, an app wired to it, and replay directories."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from optscan.store.redisserver import EmbeddedRedis
from tests.clocks import FrozenClock
from tests.databases import database, postgres_url
from tests.replaydirs import build_replay_dir

__all__ = ["database", "postgres_url"]  # fixtures shared with every test module

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Yield the Redis to test against: REDIS_URL when set, else a fresh embedded server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    # A short path: unix socket paths are limited to ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="optscan-redis-"))
    server = EmbeddedRedis(directory)
    url = server.ensure_running()
    yield url
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def private_prefix(redis_url: str) -> Iterator[str]:
    """Yield a fresh key prefix and delete every key under it afterwards."""
    prefix = f"optscan-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """Yield a key prefix private to one test."""
    with private_prefix(redis_url) as prefix:
        yield prefix


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """Yield a client of the test Redis that decodes to str."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def clock() -> FrozenClock:
    """Return a clock frozen on a regular Monday session, 11:00 ET."""
    return FrozenClock(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))


@pytest.fixture
def instance_path() -> Iterator[Path]:
    """Yield a short instance folder (short enough for a unix socket path)."""
    directory = Path(tempfile.mkdtemp(prefix="optscan-inst-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def make_app(redis_url: str, redis_prefix: str, instance_path: Path, clock: FrozenClock):
    """Return a factory of apps wired to the test Redis, an instance folder and the clock."""

    from optscan import create_app

    def factory(**config):
        base = {
            "TESTING": True,
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": redis_prefix,
            "INSTANCE_PATH": str(instance_path),
            "CLOCK": clock,
        }
        base.update(config)
        return create_app(base)

    return factory


@pytest.fixture
def aapl_dir(tmp_path: Path) -> Path:
    """Return a replay folder of AAPL's recordings private to one test."""
    return build_replay_dir(tmp_path / "replay", "aapl")


@pytest.fixture(scope="module")
def aapl_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a replay folder of AAPL's recordings shared by one module's tests."""
    return build_replay_dir(tmp_path_factory.mktemp("aapl"), "aapl")


@pytest.fixture
def no_scan_left_running(redis_prefix: str, instance_path: Path) -> Iterator[None]:
    """Wait for background scans before their Redis keys and instance folder are removed."""
    from optscan.jobs.scanjob import wait_for_background_scans

    yield
    assert wait_for_background_scans(60), "a background scan did not end"  # a hang guard
