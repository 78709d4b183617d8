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
from pathlib import Path

import pytest

from optscan.config import ConfigError, default_config, load_settings
from optscan.core.scan import ScanEnv, ScanResult, perform_scan
from optscan.sources.policy import FetchPolicy
from optscan.sources.replay import ReplaySource
from optscan.sources.yahoo import YahooSource
from optscan.store.ratelimit import LocalTokenBucket
from optscan.store.results import ResultStore
from tests.childlines import ChildLines
from tests.replaydirs import build_replay_dir
from tests.scanenv import make_scan_env
from tests.yahoo_emulator import DATED, OPTIONS_PREFIX, YahooEmulator

REPO = Path(__file__).resolve().parent.parent
PER_SYMBOL = 5  # v7 requests per AAPL-recorded symbol: the first answer + 4 expirations
HANG_GUARD_S = 120.0  # fetch timeout: answers held back by a test must not time out


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
    return make_scan_env(source, tmp_path / "watchlist.sqlite3", concurrency, store)


@pytest.fixture
def source_for(tmp_path: Path) -> Iterator:
    sources: list[YahooSource] = []

    def make(server: YahooEmulator, timeout: float = HANG_GUARD_S, **policy: object) -> YahooSource:
        policy.setdefault("rng", random.Random(3))
        source = YahooSource(
            tmp_path / "cache", base_url=server.base_url, timeout=timeout,
            policy=FetchPolicy(**policy),
        )  # fmt: skip
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
    with YahooEmulator(root, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        results, peaks = {}, {}
        for concurrency in (1, 8):
            yahoo.reset_hits()
            # The first `concurrency` requests wait for one another: all under way at once.
            barrier = yahoo.hold(OPTIONS_PREFIX, until=concurrency)
            env = make_env(source_for(yahoo), tmp_path, concurrency)
            results[concurrency] = perform_scan(symbols, force=True, env=env)
            assert barrier.released and not barrier.timed_out
            peaks[concurrency] = yahoo.peak_in_flight
            counts = v7_counts(yahoo)
            assert sum(counts.values()) == len(symbols) * PER_SYMBOL
            assert set(counts.values()) == {1}, "an answer was fetched twice"
    assert results[8].success and comparable(results[8]) == comparable(results[1])
    assert results[8].matches, "the AAPL recordings hold puts that pass the default rules"
    # One request at a time, then 8 at a time and never more.
    assert peaks == {1: 1, 8: 8}


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
    aliases = dict.fromkeys(symbols, "AAPL")
    with YahooEmulator(root, aliases=aliases) as yahoo:
        # P00 is first in the list, but its answers wait until every other symbol is reported.
        slow = yahoo.hold("/P00$")
        seen: list[tuple[int, int, str, int]] = []
        caller = threading.get_ident()

        def progress(index: int, total: int, symbol: str, matches: list, report: object) -> None:
            assert threading.get_ident() == caller
            seen.append((index, total, symbol, len(matches)))
            if len(seen) == len(symbols) - 1:
                slow.release()

        env = make_env(source_for(yahoo), tmp_path, 4)
        result = perform_scan(symbols, force=True, env=env, progress=progress)
    assert not slow.timed_out and slow.arrived, "P00 was asked before the others finished"
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
    with YahooEmulator(root) as yahoo:
        # The four expirations wait for one another: released only once all four are asked.
        together = yahoo.hold("/AAPL$", date=DATED, until=4)
        env = make_env(source_for(yahoo), tmp_path, 8)
        result = perform_scan(["AAPL"], force=True, env=env)
    assert result.symbols["AAPL"].status == "ok"
    assert len(result.symbols["AAPL"].expirations) == 4
    # The first answer, then the four expirations side by side.
    assert together.released and not together.timed_out
    assert len({day for _, day in together.arrived}) == 4


def test_sixty_symbols_with_failures_each_get_their_own_status(
    root: Path, tmp_path: Path, source_for, redis_client, redis_prefix: str
) -> None:
    good = names("G", 54)
    failing = {"FAILA": "500", "FAILB": "429", "PARTL": "not_v7"}
    aliases = dict.fromkeys(good + list(failing), "AAPL")
    symbols = [*good[:20], "NOPE1", "FAILA", "BTC-USD", *good[20:40], "FAILB", "PARTL"]
    symbols += [*good[40:], "NOPE2"]
    assert len(symbols) == 60
    with YahooEmulator(root, aliases=aliases) as yahoo:
        # The first 8 requests wait for one another: 8 symbols under way at once.
        barrier = yahoo.hold(OPTIONS_PREFIX, until=8)
        yahoo.inject("500", path="/FAILA$")
        yahoo.inject("429", path="/FAILB$")
        yahoo.inject("not_v7", path="/PARTL$", date=1756425600)  # 2025-08-29 only
        source = source_for(yahoo, limiter=LocalTokenBucket(1000.0, 50), max_retries=2,
                            backoff_base=0.02, backoff_cap=0.05, breaker_threshold=0)  # fmt: skip
        store = ResultStore(redis_client, redis_prefix)
        progress: list[tuple[int, str]] = []
        result = perform_scan(
            symbols,
            force=True,
            env=make_env(source, tmp_path, 8, store),
            progress=lambda i, n, s, m, r: progress.append((i, s)),
        )
        counts = v7_counts(yahoo)
        peak = yahoo.peak_in_flight

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
    assert barrier.released and not barrier.timed_out and peak == 8


def test_an_interrupted_scan_stops_starting_symbols_and_saves_nothing(
    root: Path, tmp_path: Path, source_for, redis_client, redis_prefix: str
) -> None:
    symbols = names("I", 20)
    with YahooEmulator(root, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
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
from pathlib import Path

import gevent
import redis

from optscan.store.ratelimit import RedisTokenBucket
from optscan.core.scan import perform_scan
from optscan.sources.policy import FetchPolicy
from optscan.sources.yahoo import YahooSource
from tests.scanenv import make_scan_env

base_url, redis_url, key, work, every = sys.argv[1:6]
symbols = sys.argv[6].split(",")
limiter = RedisTokenBucket(redis.Redis.from_url(redis_url), key, 500.0, 50)
source = YahooSource(
    Path(work) / "cache", base_url=base_url, timeout=120, policy=FetchPolicy(limiter=limiter)
)
env = make_scan_env(source, Path(work) / "watchlist.sqlite3", concurrency=12)
source.fetch_raw("AAPL", None)  # cookie and crumb first (AAPL is not held)

def tick():
    while True:
        gevent.sleep(float(every))
        print("tick", time.monotonic(), flush=True)

main = gevent.getcurrent()
callers = set()
watcher = gevent.spawn(tick)
result = perform_scan(
    symbols, force=True, env=env, progress=lambda *a: callers.add(gevent.getcurrent() is main)
)
watcher.kill()
print(json.dumps({
    "scanned": result.counts()["scanned"],
    "from_main": sorted(callers),
    "pool": gevent.get_hub().threadpool.maxsize,
}), flush=True)
"""


@pytest.mark.slow
def test_under_gevent_a_concurrent_scan_never_blocks_the_hub(
    root: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    symbols = names("E", 16)
    workers = 12
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with YahooEmulator(root, aliases=dict.fromkeys(symbols, "AAPL")) as yahoo:
        # Held until released below: first the symbols' first answers, then their expirations.
        phases = {
            "first answers": yahoo.hold(r"/E\d\d$", date=None),
            "expirations": yahoo.hold(r"/E\d\d$", date=DATED),
        }
        child = ChildLines(
            subprocess.Popen(
                [sys.executable, str(script), yahoo.base_url, redis_url,
                 f"{redis_prefix}yahoo:bucket", str(tmp_path), "0.02", ",".join(symbols)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
            )
        )  # fmt: skip
        try:
            for what, hold in phases.items():
                # Every worker waits on a request of the phase: 12 transfers under way at once...
                hold.wait_for_arrivals(workers, give_up=child.exited)
                held_since = time.monotonic()
                # ...and all the while the hub runs other greenlets. A transfer that blocked
                # the hub would stop the ticks until it ended, and it ends only on release.
                child.wait_for_ticks_after(held_since, 3, f"while the {what} are held")
                hold.release()
        finally:
            for hold in phases.values():
                hold.release()
            lines, stderr = child.finish()
    assert child.process.returncode == 0, stderr[-3000:]
    figures = json.loads(lines[-1])
    print(f"gevent scan figures: {figures}")
    assert figures["scanned"] == len(symbols)
    assert not any(hold.timed_out for hold in phases.values())
    # Progress ran in the scanning greenlet; gevent's pool grew to hold every worker.
    assert figures["from_main"] == [True]
    assert figures["pool"] >= workers + 2
