"""Retries, backoff and the circuit breaker of the live source, counted at the Yahoo emulator.

Every figure checked here is what reached the emulator: how many requests, and when.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis

from optscan.config import ConfigError, default_config, load_settings
from optscan.sources.base import MalformedResponse, RateLimited, SourceError
from optscan.sources.policy import FetchPolicy
from optscan.sources.v7 import expiration_epoch
from optscan.sources.yahoo import YahooSource
from optscan.store.ratelimit import LocalTokenBucket, RedisTokenBucket
from tests.emulator import cleaned
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

OPTIONS = "/v7/finance/options/"
AUG22 = date(2025, 8, 22)
EPOCH = expiration_epoch(AUG22)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YahooEmulator]:
    root = build_replay_dir(tmp_path_factory.mktemp("aapl"), "aapl")
    # Hung requests outlast any client timeout here; closing the emulator releases them.
    with YahooEmulator(root, aliases={"MSFT": "AAPL"}, hang_seconds=120) as emulator:
        yield emulator


@pytest.fixture
def yahoo(server: YahooEmulator) -> Iterator[YahooEmulator]:
    yield from cleaned(server)


@pytest.fixture
def source_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    cache = tmp_path_factory.mktemp("cache")
    sources: list[YahooSource] = []

    def make(server: YahooEmulator, timeout: float = 5.0, **policy: object) -> YahooSource:
        policy.setdefault("rng", random.Random(5))
        source = YahooSource(
            cache, base_url=server.base_url, timeout=timeout, policy=FetchPolicy(**policy)
        )
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def chain_hits(server: YahooEmulator, symbol: str = "AAPL") -> list:
    return [h for h in server.hits if h.path == OPTIONS + symbol and h.date == EPOCH]


def gaps(hits: list) -> list[float]:
    times = sorted(h.at for h in hits)
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the seconds this test's thread sleeps (the backoffs), sleeping them all the same."""
    slept: list[float] = []
    real_sleep, me = time.sleep, threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == me:
            slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_429s_are_retried_after_a_doubling_jittered_backoff(yahoo, source_for, sleeps) -> None:
    yahoo.inject("429", date=EPOCH, times=3)
    source = source_for(yahoo, max_retries=3, backoff_base=0.2, backoff_cap=2.0,
                        breaker_threshold=0)  # fmt: skip
    chain = source.chain("AAPL", AUG22)
    assert chain.expiration == AUG22
    hits = chain_hits(yahoo)
    # One request per attempt: yfinance's own instant retry of a 429 is not added on top.
    assert [h.status for h in hits] == [429, 429, 429, 200]
    # Retry n waited exactly the policy's draw, between half and all of 0.2 * 2 ** (n - 1) s
    # (the same seed draws the same waits), and no request went out before its wait was over.
    drawn = FetchPolicy(backoff_base=0.2, backoff_cap=2.0, rng=random.Random(5))
    expected = [drawn.backoff(n) for n in (1, 2, 3)]
    assert sleeps == expected
    for n, (wait, gap) in enumerate(zip(expected, gaps(hits), strict=True), start=1):
        step = 0.2 * 2 ** (n - 1)
        assert step / 2 <= wait <= step and gap >= wait, (n, wait, gap)
    print("backoff gaps (s):", [round(g, 3) for g in gaps(hits)])


def test_the_backoff_is_capped_and_jittered() -> None:
    policy = FetchPolicy(backoff_base=0.5, backoff_cap=8.0, rng=random.Random(1))
    waits = [[policy.backoff(n) for _ in range(200)] for n in range(1, 8)]
    for n, drawn in enumerate(waits, start=1):
        step = min(8.0, 0.5 * 2 ** (n - 1))
        assert step / 2 <= min(drawn) and max(drawn) <= step
        assert max(drawn) - min(drawn) > step / 4  # spread out: no synchronised retries
    assert max(waits[-1]) <= 8.0


def test_a_persistent_500_gives_up_after_the_retries_and_is_not_memoised(yahoo, source_for) -> None:
    yahoo.inject("500", date=EPOCH)
    source = source_for(yahoo, max_retries=2, backoff_base=0.02, backoff_cap=0.05)
    with pytest.raises(SourceError, match=r"HTTP 500: Emulated internal error \(3 attempts\)"):
        source.chain("AAPL", AUG22)
    assert [h.status for h in chain_hits(yahoo)] == [500, 500, 500]
    yahoo.clear_faults()
    assert source.chain("AAPL", AUG22).expiration == AUG22
    assert source.chain("AAPL", AUG22).expiration == AUG22  # memoised once it succeeded
    assert [h.status for h in chain_hits(yahoo)] == [500, 500, 500, 200]


def test_a_persistent_429_is_rate_limited_after_exactly_the_attempts_allowed(
    yahoo, source_for
) -> None:
    yahoo.inject("429", date=EPOCH)
    source = source_for(yahoo, max_retries=3, backoff_base=0.01, backoff_cap=0.02,
                        breaker_threshold=0)  # fmt: skip
    with pytest.raises(RateLimited, match=r"429 Too Many Requests \(4 attempts\)"):
        source.chain("AAPL", AUG22)
    # yfinance alone would have sent 2 per attempt (its retry with the other cookie strategy).
    assert len(chain_hits(yahoo)) == 4


def test_a_hung_request_times_out_and_the_retry_succeeds(yahoo, source_for) -> None:
    yahoo.inject("hang", date=EPOCH, times=1)
    source = source_for(yahoo, timeout=0.4, max_retries=2, backoff_base=0.05, backoff_cap=0.1)
    started = time.monotonic()
    assert source.chain("AAPL", AUG22).expiration == AUG22
    assert time.monotonic() - started >= 0.4
    # The first request was given up on while the emulator still hung (status -1).
    assert [(h.fault, h.status) for h in chain_hits(yahoo)] == [("hang", -1), (None, 200)]


def test_persistent_timeouts_name_the_timeout_and_the_attempts(yahoo, source_for) -> None:
    yahoo.inject("hang", date=EPOCH)
    source = source_for(yahoo, timeout=0.3, max_retries=1, backoff_base=0.05, backoff_cap=0.1)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not answer within 0.3 s \(2 attempts\)"):
        source.chain("AAPL", AUG22)
    assert time.monotonic() - started >= 0.6
    # Both attempts timed out on the client's side: the emulator was still hanging on them.
    assert [h.status for h in chain_hits(yahoo)] == [-1, -1]


def test_dropped_connections_are_retried(yahoo, source_for) -> None:
    yahoo.inject("drop", date=EPOCH, times=2)
    source = source_for(yahoo, max_retries=2, backoff_base=0.02, backoff_cap=0.05)
    assert source.chain("AAPL", AUG22).expiration == AUG22
    assert [h.fault for h in chain_hits(yahoo)] == ["drop", "drop", None]


@pytest.mark.parametrize(
    ("fault", "error"),
    [("404", SourceError), ("not_v7", MalformedResponse), ("truncated", MalformedResponse)],
)
def test_answers_that_will_not_change_are_not_asked_again(
    yahoo, source_for, fault: str, error: type[SourceError]
) -> None:
    yahoo.inject(fault, date=EPOCH)
    source = source_for(yahoo, max_retries=3, backoff_base=0.01, backoff_cap=0.02)
    with pytest.raises(error):
        source.chain("AAPL", AUG22)
    assert len(chain_hits(yahoo)) == 1


class _PauseSignal(RedisTokenBucket):
    """A shared bucket that also tells the test when a breaker paused it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.paused = threading.Event()

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        self.paused.set()


def test_the_breaker_pauses_every_process_then_gives_up(
    yahoo, source_for, redis_url: str, redis_prefix: str
) -> None:
    # AAPL is rate-limited for good; MSFT (served from the same recordings) is not.
    yahoo.inject("429", path="/AAPL$")
    pause = 0.8
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    key = f"{redis_prefix}yahoo:bucket"
    # Two sources on one Redis bucket through two connections: two processes, as far as the
    # bucket can tell; each has its own breaker.
    bucket = _PauseSignal(clients[0], key, 100.0, 10)
    limited = source_for(
        yahoo, limiter=bucket, max_retries=10,
        backoff_base=0.05, backoff_cap=0.1, breaker_threshold=3, breaker_pause=pause,
    )  # fmt: skip
    other = source_for(yahoo, limiter=RedisTokenBucket(clients[1], key, 100.0, 10))
    other_done: dict[str, float] = {}

    def other_asks_once_paused() -> None:
        # Woken by the pause itself, not by polling: it asks while the pause is on.
        if bucket.paused.wait(timeout=60):
            other_done["asked"] = time.monotonic()
            other.expirations("MSFT")

    watcher = threading.Thread(target=other_asks_once_paused)
    watcher.start()
    with pytest.raises(RateLimited, match=r"again after a 0.8 s pause") as caught:
        limited.chain("AAPL", AUG22)
    bucket.paused.set()  # in case the breaker never paused: the watcher must not hang
    watcher.join(timeout=60)
    for client in clients:
        client.close()

    hits = chain_hits(yahoo)
    # 3 strikes, the pause, 3 more strikes, then no more asking: 6 requests, not 11.
    assert [h.status for h in hits] == [429] * 6
    assert caught.value.kind == "rate_limited"
    # Two trips: the first paused, the second gave up (no second pause).
    assert limited.breaker is not None and limited.breaker.trips_total == 2
    pause_gap = gaps(hits)[2]
    assert pause_gap >= pause - 0.02
    # The other "process" asked during the pause and was held until it ended.
    msft = [h for h in yahoo.hits if h.path == OPTIONS + "MSFT"]
    assert len(msft) == 1 and msft[0].status == 200
    third = sorted(h.at for h in hits)[2]
    assert "asked" in other_done
    assert msft[0].at >= third + pause - 0.05


def test_a_success_resets_the_breaker(yahoo, source_for) -> None:
    # Two 429s, a success, two 429s: never three in a row, so never a pause.
    source = source_for(yahoo, limiter=LocalTokenBucket(100.0, 10), max_retries=2,
                        backoff_base=0.01, backoff_cap=0.02, breaker_threshold=3,
                        breaker_pause=5.0)  # fmt: skip
    yahoo.inject("429", date=EPOCH, times=2)
    source.chain("AAPL", AUG22)
    yahoo.inject("429", date=expiration_epoch(date(2025, 8, 29)), times=2)
    source.chain("AAPL", date(2025, 8, 29))
    assert source.breaker is not None and source.breaker.trips_total == 0


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("YAHOO_MAX_RETRIES", -1, "OPTSCAN_YAHOO_MAX_RETRIES must be at least 0"),
        ("YAHOO_MAX_RETRIES", 1.5, "OPTSCAN_YAHOO_MAX_RETRIES must be a whole number"),
        ("YAHOO_BACKOFF_BASE_SECONDS", "soon", "OPTSCAN_YAHOO_BACKOFF_BASE_SECONDS must be a"),
        ("YAHOO_BACKOFF_CAP_SECONDS", 0.1, "OPTSCAN_YAHOO_BACKOFF_CAP_SECONDS .* must be >="),
        ("YAHOO_BREAKER_THRESHOLD", -2, "OPTSCAN_YAHOO_BREAKER_THRESHOLD must be at least 0"),
        ("YAHOO_BREAKER_PAUSE_SECONDS", -1, "OPTSCAN_YAHOO_BREAKER_PAUSE_SECONDS must be at"),
        ("FETCH_TIMEOUT_SECONDS", 0, "OPTSCAN_FETCH_TIMEOUT_SECONDS must be at least 0.1"),
    ],
)
def test_bad_retry_settings_are_refused(key: str, value: object, words: str) -> None:
    config = default_config()
    config[key] = value
    with pytest.raises(ConfigError, match=words):
        load_settings(config)


def test_the_app_builds_live_sources_with_its_policy_and_timeout(make_app, tmp_path: Path) -> None:
    app = make_app(
        YAHOO_MAX_RETRIES=5,
        YAHOO_BACKOFF_BASE_SECONDS=0.25,
        YAHOO_BACKOFF_CAP_SECONDS=4,
        YAHOO_BREAKER_THRESHOLD=2,
        YAHOO_BREAKER_PAUSE_SECONDS=12,
        FETCH_TIMEOUT_SECONDS=3,
    )
    services = app.extensions["optscan"]
    source = services.new_source()
    try:
        assert isinstance(source, YahooSource)
        assert source.timeout == 3
        assert source.policy is not None and source.policy.limiter is services.yahoo_limiter
        assert (source.policy.max_retries, source.policy.backoff_base) == (5, 0.25)
        assert (source.policy.backoff_cap, source.policy.breaker_threshold) == (4, 2)
        assert source.policy.breaker_pause == 12
        # A fresh breaker per source, that is per scan.
        other = services.new_source()
        assert other.breaker is not source.breaker
        other.close()
    finally:
        source.close()
    replay = build_replay_dir(tmp_path / "replay", "aapl")
    replay_app = make_app(SOURCE=f"replay:{replay}")
    assert not isinstance(replay_app.extensions["optscan"].new_source(), YahooSource)
