"""Concurrent scans against the Yahoo emulator: same results, each answer fetched once,
progress per symbol from the caller, failures contained, and gevent's hub never blocked."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from optscan.config import ConfigError, default_config, load_settings
from optscan.core.market import MarketCalendar
from optscan.core.rules import Rules
from optscan.core.scan import ScanEnv, ScanResult, perform_scan
from optscan.sources.policy import FetchPolicy
from optscan.sources.replay import ReplaySource
from optscan.sources.yahoo import YahooSource
from optscan.store.ratelimit import LocalTokenBucket
from optscan.store.results import ResultStore
from optscan.store.watchlist import Watchlist
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import OPTIONS_PREFIX, YahooEmulator

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # scans are forced: the clock only stamps
PER_SYMBOL = 5  # v7 requests per AAPL-recorded symbol: the first answer + 4 expirations


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AAPL's recordings, plus BTC-USD (a symbol without options) from the premarket set."""
    root = build_replay_dir(tmp_path_factory.mktemp("replay"), "aapl")
    premarket = build_replay_dir(tmp_path_factory.mktemp("premarket"), "premarket")
    shutil.copytree(premarket / "BTC-USD", root / "BTC-USD")
    return root


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:02d}" for n in range(count)]


def make_env(source, tmp_path: Path, concurrency: int, store=None) -> ScanEnv:
    return ScanEnv(
        source=source,
        watchlist=Watchlist(tmp_path / "watchlist.sqlite3", seed=()),
        calendar=MarketCalendar(),
        rules=Rules(),
        risk_free_rate=0.045,
        wide_spread_pct=50.0,
        clock=lambda: NOW,
        store=store,
        concurrency=concurrency,
    )


@pytest.fixture
def source_for(tmp_path: Path) -> Iterator:
    sources: list[YahooSource] = []

    def make(server: YahooEmulator, **policy: object) -> YahooSource:
        policy.setdefault("rng", random.Random(3))
        source = YahooSource(
            tmp_path / "cache", base_url=server.base_url, policy=FetchPolicy(**policy)
        )
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def comparable(result: ScanResult) -> dict:
    data = result.to_dict()
    for key in ("started_at", "finished_at", "duration_s", "message"):
        data.pop(key)
    return data


def v7_counts(server: YahooEmulator) -> Counter:
    return Counter((h.path, h.date) for h in server.hits if h.path.startswith(OPTIONS_PREFIX))


def test_a_concurrent_scan_equals_a_sequential_one_and_fetches_each_answer_once(
    root: Path, tmp_path: Path, source_for
) -> None:
    symbols = names("C", 10)
    latency = 0.05
    with YahooEmulator(root, latency=latency, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        timings, results = {}, {}
        for concurrency in (1, 8):
            yahoo.reset_hits()
            env = make_env(source_for(yahoo), tmp_path, concurrency)
            started = time.monotonic()
            results[concurrency] = perform_scan(symbols, force=True, env=env)
            timings[concurrency] = time.monotonic() - started
            counts = v7_counts(yahoo)
            assert sum(counts.values()) == len(symbols) * PER_SYMBOL
            assert set(counts.values()) == {1}, "an answer was fetched twice"
    assert results[8].success and comparable(results[8]) == comparable(results[1])
    assert results[8].matches, "the AAPL recordings hold puts that pass the default rules"
    requests = len(symbols) * PER_SYMBOL
    # Sequential: at least one latency per request. Concurrent: well under a third of that.
    assert timings[1] >= requests * latency
    assert timings[8] < timings[1] / 3
    print(f"10 symbols, 50 requests: sequential {timings[1]:.2f} s, 8 at once {timings[8]:.2f} s")


def test_a_replay_scan_gives_the_same_result_at_any_concurrency(root: Path, tmp_path: Path) -> None:
    symbols = ["AAPL", "BTC-USD", "NOPE"]
    sequential = perform_scan(symbols, force=True, env=make_env(ReplaySource(root), tmp_path, 1))
    concurrent = perform_scan(symbols, force=True, env=make_env(ReplaySource(root), tmp_path, 4))
    assert comparable(concurrent) == comparable(sequential)
    assert [s.status for s in concurrent.symbols.values()][:2] == ["ok", "no_options"]


def test_progress_comes_from_the_calling_thread_as_symbols_finish(
    root: Path, tmp_path: Path, source_for
) -> None:
    symbols = names("P", 8)
    # P00 is first in the list but its answers take 0.4 s longer than the others'.
    aliases = dict.fromkeys(symbols, "AAPL")
    with YahooEmulator(root, latency=0.02, aliases=aliases, delays={"/P00$": 0.4}) as yahoo:
        seen: list[tuple[int, int, str, int]] = []
        caller = threading.get_ident()

        def progress(index: int, total: int, symbol: str, matches: list, report: object) -> None:
            assert threading.get_ident() == caller
            seen.append((index, total, symbol, len(matches)))

        env = make_env(source_for(yahoo), tmp_path, 4)
        result = perform_scan(symbols, force=True, env=env, progress=progress)
    assert [index for index, *_ in seen] == list(range(1, len(symbols) + 1))
    assert {total for _, total, _, _ in seen} == {len(symbols)}
    assert sorted(symbol for _, _, symbol, _ in seen) == symbols
    assert seen[-1][2] == "P00"  # finished last, reported last
    # Each call carried that symbol's matches; the result lists them in watchlist order.
    assert sum(count for *_, count in seen) == len(result.matches)
    order = [match["symbol"] for match in result.matches]
    assert order == sorted(order) and order[0] == "P00"


def test_one_symbols_expirations_are_fetched_at_once(
    root: Path, tmp_path: Path, source_for
) -> None:
    latency = 0.3
    with YahooEmulator(root, latency=latency) as yahoo:
        env = make_env(source_for(yahoo), tmp_path, 8)
        started = time.monotonic()
        result = perform_scan(["AAPL"], force=True, env=env)
        elapsed = time.monotonic() - started
        hits = [h for h in yahoo.hits if h.path.startswith(OPTIONS_PREFIX)]
    assert result.symbols["AAPL"].status == "ok"
    assert len(result.symbols["AAPL"].expirations) == 4
    # The first answer, then the four expirations side by side: two latencies, not five.
    assert 2 * latency <= elapsed < 3 * latency
    chains = sorted(h.at for h in hits if h.date is not None)
    assert len(chains) == 4 and chains[-1] - chains[0] < latency / 3


def test_sixty_symbols_with_failures_each_get_their_own_status(
    root: Path, tmp_path: Path, source_for, redis_client, redis_prefix: str
) -> None:
    good = names("G", 54)
    failing = {"FAILA": "500", "FAILB": "429", "PARTL": "not_v7"}
    aliases = dict.fromkeys(good + list(failing), "AAPL")
    symbols = [*good[:20], "NOPE1", "FAILA", "BTC-USD", *good[20:40], "FAILB", "PARTL"]
    symbols += [*good[40:], "NOPE2"]
    assert len(symbols) == 60
    latency = 0.05
    with YahooEmulator(root, latency=latency, aliases=aliases) as yahoo:
        yahoo.inject("500", path="/FAILA$")
        yahoo.inject("429", path="/FAILB$")
        yahoo.inject("not_v7", path="/PARTL$", date=1756425600)  # 2025-08-29 only
        source = source_for(yahoo, limiter=LocalTokenBucket(1000.0, 50), max_retries=2,
                            backoff_base=0.02, backoff_cap=0.05, breaker_threshold=0)  # fmt: skip
        store = ResultStore(redis_client, redis_prefix)
        progress: list[tuple[int, str]] = []
        started = time.monotonic()
        result = perform_scan(
            symbols,
            force=True,
            env=make_env(source, tmp_path, 8, store),
            progress=lambda i, n, s, m, r: progress.append((i, s)),
        )
        elapsed = time.monotonic() - started
        counts = v7_counts(yahoo)

    statuses = {symbol: report.status for symbol, report in result.symbols.items()}
    assert {statuses[s] for s in good} == {"ok"}
    assert statuses["NOPE1"] == statuses["NOPE2"] == "unknown_symbol"
    assert result.symbols["NOPE1"].error == "Yahoo does not know NOPE1"
    assert statuses["FAILA"] == "error" and "HTTP 500" in (result.symbols["FAILA"].error or "")
    assert statuses["FAILB"] == "rate_limited"
    assert statuses["BTC-USD"] == "no_options"
    assert statuses["PARTL"] == "partial"
    assert result.symbols["PARTL"].expirations == ["2025-08-22", "2025-09-05", "2025-09-12"]
    assert result.success and result.counts()["failed"] == 5 and result.counts()["scanned"] == 55
    assert store.last("put")["counts"]["scanned"] == 55
    assert [i for i, _ in progress] == list(range(1, 61))
    assert sorted(s for _, s in progress) == sorted(symbols)
    # Each answer once, except the failing ones, asked max_retries + 1 = 3 times each.
    retried = {key: n for key, n in counts.items() if n > 1}
    assert retried == {(OPTIONS_PREFIX + "FAILA", None): 3, (OPTIONS_PREFIX + "FAILB", None): 3}
    requests = sum(counts.values())
    assert requests == 55 * PER_SYMBOL + 2 + 1 + 2 * 3
    assert elapsed < requests * latency / 3  # sequential would need requests x latency
    print(f"60 symbols, {requests} requests in {elapsed:.2f} s with 8 at once")


def test_an_interrupted_scan_stops_starting_symbols_and_saves_nothing(
    root: Path, tmp_path: Path, source_for, redis_client, redis_prefix: str
) -> None:
    symbols = names("I", 20)
    with YahooEmulator(root, latency=0.05, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        done: list[str] = []
        store = ResultStore(redis_client, redis_prefix)
        result = perform_scan(
            symbols,
            force=True,
            env=make_env(source_for(yahoo), tmp_path, 4, store),
            progress=lambda i, n, s, m, r: done.append(s),
            should_continue=lambda: len(done) < 3,
        )
        opened = {h.path for h in yahoo.hits if h.path.startswith(OPTIONS_PREFIX)}
    assert result.interrupted and not result.success
    assert len(done) == 3
    assert sum(r.status == "ok" for r in result.symbols.values()) == 3
    assert sum(r.status == "pending" for r in result.symbols.values()) == 17
    # Nothing started after the stop: at most the 4 workers' worth of symbols beyond the 3.
    assert len(opened) <= 3 + 4
    assert store.last("put") is None


def test_scan_concurrency_is_validated_and_wired(make_app) -> None:
    for bad, words in ((0, "at least 1"), (65, "at most 64"), (2.5, "whole number")):
        config = default_config()
        config["SCAN_CONCURRENCY"] = bad
        with pytest.raises(ConfigError, match=f"OPTSCAN_SCAN_CONCURRENCY must be.*{words}"):
            load_settings(config)
    assert load_settings(default_config()).scan_concurrency == 16
    app = make_app(SCAN_CONCURRENCY=5)
    env = app.extensions["optscan"].scan_env()
    assert env.concurrency == 5
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        perform_scan(["AAPL"], force=True, env=make_env(env.source, Path(app.instance_path), 0))


# -- gevent: the hub keeps ticking while a concurrent scan runs -------------------------------

CHILD = """
from gevent import monkey

monkey.patch_all()

import json, sys, time
from datetime import UTC, datetime
from pathlib import Path

import gevent
import redis

from optscan.core.market import MarketCalendar
from optscan.store.ratelimit import RedisTokenBucket
from optscan.core.rules import Rules
from optscan.core.scan import ScanEnv, perform_scan
from optscan.sources.policy import FetchPolicy
from optscan.sources.yahoo import YahooSource
from optscan.store.watchlist import Watchlist

base_url, redis_url, key, work, every = sys.argv[1:6]
symbols = sys.argv[6].split(",")
limiter = RedisTokenBucket(redis.Redis.from_url(redis_url), key, 500.0, 50)
source = YahooSource(Path(work) / "cache", base_url=base_url, policy=FetchPolicy(limiter=limiter))
env = ScanEnv(
    source=source,
    watchlist=Watchlist(Path(work) / "watchlist.sqlite3", seed=()),
    calendar=MarketCalendar(),
    rules=Rules(),
    risk_free_rate=0.045,
    wide_spread_pct=50.0,
    clock=lambda: datetime(2026, 11, 23, 16, 0, tzinfo=UTC),
    concurrency=12,
)
source.fetch_raw(symbols[0], None)  # cookie and crumb, outside the measurement

ticks = []

def tick():
    while True:
        gevent.sleep(float(every))
        ticks.append(time.monotonic())

main = gevent.getcurrent()
callers = set()
watcher = gevent.spawn(tick)
gevent.sleep(0)
start = time.monotonic()
result = perform_scan(
    symbols, force=True, env=env, progress=lambda *a: callers.add(gevent.getcurrent() is main)
)
end = time.monotonic()
watcher.kill()
during = [t for t in ticks if start <= t <= end]
edges = [start] + during + [end]
print(json.dumps({
    "elapsed": end - start,
    "ticks": len(during),
    "max_gap": max(b - a for a, b in zip(edges, edges[1:])),
    "scanned": result.counts()["scanned"],
    "from_main": sorted(callers),
    "pool": gevent.get_hub().threadpool.maxsize,
}))
"""


@pytest.mark.slow
def test_under_gevent_a_concurrent_scan_never_blocks_the_hub(
    root: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    symbols = names("E", 16)
    latency, tick = 0.2, 0.02
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with YahooEmulator(root, latency=latency, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        child = subprocess.run(
            [sys.executable, str(script), yahoo.base_url, redis_url,
             f"{redis_prefix}yahoo:bucket", str(tmp_path), str(tick), ",".join(symbols)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"gevent scan figures: {figures}")
    assert figures["scanned"] == len(symbols)
    requests = len(symbols) * PER_SYMBOL
    # 80 requests of 0.2 s: 16 s one after another; 12 at a time need ~1.4 s.
    assert figures["elapsed"] < requests * latency / 4
    # The ticking greenlet kept its pace all through: never held up by the scan's I/O.
    # (A blocked hub would show a gap of at least one 0.2 s request.)
    assert figures["max_gap"] < 0.15
    assert figures["ticks"] >= 0.6 * figures["elapsed"] / tick
    # Progress ran in the scanning greenlet; gevent's pool grew to hold every worker.
    assert figures["from_main"] == [True]
    assert figures["pool"] >= 12 + 2
