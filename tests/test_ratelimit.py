"""Token buckets: the schedule they allow, the pause, Redis sharing across processes, fallback.

A token bucket of rate r and burst b lets at most b + r * W requests through in any window of
W seconds; the tests count grants per window against that bound, derived by hand from the two
numbers. A grant happens somewhere between the taker's last wake-up and acquire() returning:
only grants whose whole interval lies inside a window are counted in it, so that a taker the
machine was slow to run can only make the check looser, never fail it. That no taker is held
back too long is read from the waits the bucket asked for (at most one token interval each).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from optscan.config import ConfigError, default_config, load_settings
from optscan.store.ratelimit import LocalTokenBucket, RedisTokenBucket
from tests.pacing import Takers, max_inside_window
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

REPO = Path(__file__).resolve().parent.parent


class StepClock:
    """A clock that only moves when the code under test sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_local_bucket_grants_the_burst_then_one_token_per_interval() -> None:
    clock = StepClock()
    bucket = LocalTokenBucket(10.0, 5, clock=clock, sleep=clock.sleep)
    granted = []
    for _ in range(25):
        bucket.acquire()
        granted.append(round(clock.now - 100.0, 9))
    # Five at once, then one every 1/10 s: the 25th leaves at (25 - 5) / 10 = 2.0 s.
    assert granted == [0.0] * 5 + [round(0.1 * k, 9) for k in range(1, 21)]
    # A quiet spell refills the bucket, never beyond the burst.
    clock.now += 60.0
    start = clock.now
    for _ in range(6):
        bucket.acquire()
    assert clock.now - start == pytest.approx(0.1)


def test_local_pause_holds_takers_back_and_resumes_without_a_burst() -> None:
    clock = StepClock()
    bucket = LocalTokenBucket(10.0, 5, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.pause(2.0)
    bucket.pause(0.5)  # a shorter pause never cuts a longer one short
    start = clock.now
    times = []
    for _ in range(3):
        waited = bucket.acquire()
        times.append(round(clock.now - start, 9))
        assert waited >= 0
    # Nothing before the pause ends; then the steady rate, not the 5-token burst.
    assert times == [2.1, 2.2, 2.3]


def test_bad_rates_are_refused() -> None:
    for rate, burst in ((0, 5), (-1, 5), (float("inf"), 5), (10, 0), (10, 2.5), (10, True)):
        with pytest.raises(ValueError, match="must be"):
            LocalTokenBucket(rate, burst)  # type: ignore[arg-type]


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_redis_bucket_keeps_the_rate_across_threads(
    raw_redis: redis.Redis, redis_prefix: str
) -> None:
    rate, burst, threads_n, each = 40.0, 5, 4, 10
    takers = Takers()
    bucket = RedisTokenBucket(raw_redis, f"{redis_prefix}bucket", rate, burst, sleep=takers.sleep)

    def take() -> None:
        for _ in range(each):
            takers.take(bucket)

    started = time.monotonic()
    threads = [threading.Thread(target=take) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants = takers.grants
    assert len(grants) == threads_n * each
    # 40 tokens: 5 at once, 35 more at 40/s -> 0.875 s at the least.
    assert max(end for _, end in grants) - started >= (threads_n * each - burst) / rate * 0.97
    for window in (0.1, 0.25, 0.5):
        assert max_inside_window(grants, window) <= burst + rate * window + 1, window
    # Never held back longer than one token interval at a time: no needless throttling.
    assert takers.waits and max(takers.waits) <= 1 / rate + 1e-6


def test_redis_bucket_is_shared_and_so_is_its_pause(
    raw_redis: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    key = f"{redis_prefix}shared"
    first = RedisTokenBucket(raw_redis, key, 5.0, 2)
    other_client = redis.Redis.from_url(redis_url)
    try:
        second = RedisTokenBucket(other_client, key, 5.0, 2)
        started = time.monotonic()
        assert first.acquire() == 0 and first.acquire() == 0  # the burst of 2...
        # ...is spent for the other client too: it waits one interval, 1/5 s, and no more.
        assert second.acquire() <= 0.2 + 1e-3
        assert time.monotonic() - started >= 0.2 * 0.97
        started = time.monotonic()
        first.pause(0.6)
        # The pause, then one interval at the steady rate.
        assert second.acquire() <= 0.6 + 0.2 + 1e-3
        assert time.monotonic() - started >= 0.8 * 0.97
        # The state expires once the bucket would be full again anyway.
        ttl_ms = raw_redis.pttl(key)
        assert 0 < ttl_ms <= (2 / 5.0) * 1000 + 1100
    finally:
        other_client.close()


def test_without_redis_the_bucket_paces_locally_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1; no client-side retries, so that each failure is quick.
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    bucket = RedisTokenBucket(dead, "optscan-test:dead", 20.0, 2, retry_after=0.1)
    caplog.set_level(logging.WARNING, logger="optscan.store.ratelimit")
    started = time.monotonic()
    waited = [bucket.acquire() for _ in range(6)]
    # Local pacing at the same rate: 2 at once, 4 more at 20/s.
    assert waited[:2] == [0, 0]
    assert all(wait <= 1 / 20 + 1e-3 for wait in waited)
    assert time.monotonic() - started >= 4 / 20 * 0.97
    warnings = [r for r in caplog.records if "pacing locally" in r.getMessage()]
    assert len(warnings) == 1
    bucket.pause(0.3)  # must not raise either
    dead.close()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("YAHOO_RATE_PER_SECOND", 0, "OPTSCAN_YAHOO_RATE_PER_SECOND must be greater than 0"),
        ("YAHOO_RATE_PER_SECOND", "fast", "OPTSCAN_YAHOO_RATE_PER_SECOND must be a number"),
        ("YAHOO_RATE_PER_SECOND", 5000, "at most 1000"),
        ("YAHOO_BURST", 0, "OPTSCAN_YAHOO_BURST must be at least 1"),
        ("YAHOO_BURST", 2.5, "OPTSCAN_YAHOO_BURST must be a whole number"),
    ],
)
def test_bad_rate_settings_are_refused(key: str, value: object, words: str) -> None:
    config = default_config()
    config[key] = value
    with pytest.raises(ConfigError, match=words):
        load_settings(config)


def test_the_app_shares_one_bucket_under_its_prefix(
    make_app, redis_client: redis.Redis, redis_prefix: str
) -> None:
    app = make_app(YAHOO_RATE_PER_SECOND=7, YAHOO_BURST=3)
    services = app.extensions["optscan"]
    limiter = services.yahoo_limiter
    assert limiter.key == f"{redis_prefix}yahoo:bucket"
    assert (limiter.rate, limiter.burst) == (7.0, 3)
    policy = services.fetch_policy()
    assert policy.limiter is limiter
    limiter.acquire()
    assert redis_client.exists(limiter.key)


# -- two processes, one bucket, counted at the emulator ---------------------------------------

CHILD = """
import json, sys
from pathlib import Path

import redis

from optscan.store.ratelimit import RedisTokenBucket
from optscan.core.scan import perform_scan
from optscan.sources.policy import FetchPolicy
from optscan.sources.yahoo import YahooSource
from tests.pacing import RecordedLimiter, Takers
from tests.scanenv import make_scan_env

base_url, redis_url, key, rate, burst, work = sys.argv[1:7]
symbols = sys.argv[7].split(",")
client = redis.Redis.from_url(redis_url)
takers = Takers()
bucket = RedisTokenBucket(client, key, float(rate), int(burst), sleep=takers.sleep)
limiter = RecordedLimiter(bucket, takers)
source = YahooSource(
    Path(work) / "cache", base_url=base_url, timeout=120, policy=FetchPolicy(limiter=limiter)
)
env = make_scan_env(source, Path(work) / "watchlist.sqlite3", concurrency=4)
result = perform_scan(symbols, force=True, env=env)
print(json.dumps({"counts": result.counts(), "grants": takers.grants, "waits": takers.waits}))
"""


@pytest.mark.slow
def test_two_processes_sharing_the_bucket_keep_to_its_rate_at_yahoo(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    rate, burst = 50.0, 5
    groups = {"A": [f"A{n:02d}" for n in range(12)], "B": [f"B{n:02d}" for n in range(12)]}
    aliases = {symbol: "AAPL" for names in groups.values() for symbol in names}
    root = build_replay_dir(tmp_path / "replay", "aapl")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with YahooEmulator(root, aliases=aliases) as yahoo:
        # Each child's requests wait until the other's arrive too: both scan at once.
        holds = {name: yahoo.hold(rf"/{name}\d\d$") for name in groups}
        children = {}
        for name, symbols in groups.items():
            work = tmp_path / name
            work.mkdir()
            children[name] = subprocess.Popen(
                [sys.executable, str(script), yahoo.base_url, redis_url,
                 f"{redis_prefix}yahoo:bucket", str(rate), str(burst), str(work),
                 ",".join(symbols)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
            )  # fmt: skip
        try:
            for name, hold in holds.items():
                hold.wait_for_arrivals(1, give_up=lambda c=children[name]: c.poll() is not None)
        finally:
            for hold in holds.values():
                hold.release()
        results = {}
        for name, child in children.items():
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err[-3000:]
            results[name] = json.loads(out.strip().splitlines()[-1])
        hits = yahoo.hits

    for result in results.values():
        assert result["counts"]["scanned"] == 12 and result["counts"]["failed"] == 0
    # Each child: 12 symbols x (1 + 4 expirations) v7 requests, plus its cookie and crumb,
    # each paced by the shared bucket.
    grants = {name: [tuple(g) for g in result["grants"]] for name, result in results.items()}
    assert len(hits) == sum(len(g) for g in grants.values()) == 2 * (12 * 5 + 2)
    both = grants["A"] + grants["B"]
    for window in (0.2, 0.5, 1.0):
        # At most burst + rate * W per window for both together; ~2x without sharing.
        assert max_inside_window(both, window) <= burst + rate * window + 1, window
    # Nobody waited longer than one token interval at a time: the pace was not held back.
    waits = [w for result in results.values() for w in result["waits"]]
    assert waits and max(waits) <= 1 / rate + 1e-6
    # Both were served throughout, not one after the other.
    for mine, theirs in (("A", "B"), ("B", "A")):
        assert min(end for _, end in grants[mine]) < max(start for start, _ in grants[theirs])
