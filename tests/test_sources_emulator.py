"""The Yahoo emulator itself, spoken to with a plain HTTP client (no yfinance)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.yahoo_emulator import CRUMB, YahooEmulator

AAPL = "/v7/finance/options/AAPL"


@pytest.fixture
def yahoo(aapl_root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(aapl_root) as server:
        yield server


def get(server: YahooEmulator, target: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.base_url + target, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serves_recordings_verbatim_and_yahoos_answer_for_other_days(
    yahoo: YahooEmulator, aapl_root: Path
) -> None:
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}") == (
        200,
        (aapl_root / "AAPL/2025-08-15.json").read_bytes(),
    )
    status, body = get(yahoo, f"{AAPL}?date=1755820800&crumb={CRUMB}")
    assert (status, body) == (200, (aapl_root / "AAPL/2025-08-22.json").read_bytes())
    status, body = get(yahoo, f"{AAPL}?date=1760054400&crumb={CRUMB}")  # 2025-10-10
    result = json.loads(body)["optionChain"]["result"][0]
    assert status == 200
    assert result["options"] == [
        {"expirationDate": 1760054400, "hasMiniOptions": False, "calls": [], "puts": []}
    ]
    assert result["quote"]["symbol"] == "AAPL"


def test_yahoo_like_errors(yahoo: YahooEmulator) -> None:
    status, body = get(yahoo, f"/v7/finance/options/NOPE?crumb={CRUMB}")
    assert status == 404
    assert json.loads(body)["finance"]["error"]["code"] == "Not Found"
    status, body = get(yahoo, AAPL)
    assert status == 401 and b"Invalid Crumb" in body
    assert get(yahoo, "/v1/test/getcrumb") == (200, CRUMB.encode())


def test_faults_by_path_date_and_count(yahoo: YahooEmulator) -> None:
    fault = yahoo.inject("429", path="/AAPL$", date=1755820800, times=2)
    target = f"{AAPL}?date=1755820800&crumb={CRUMB}"
    assert [get(yahoo, target)[0] for _ in range(3)] == [429, 429, 200]
    assert fault.fired == 2
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}")[0] == 200  # other date: untouched
    yahoo.inject("500")
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}")[0] == 500
    assert get(yahoo, "/v1/test/getcrumb")[0] == 200  # faults default to v7 paths only
    yahoo.clear_faults()
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}")[0] == 200
    assert yahoo.count(AAPL, date=1755820800) == 3
    assert yahoo.count(AAPL, date=None) == 3
    assert yahoo.counts() == {AAPL: 6, "/v1/test/getcrumb": 1}
    with pytest.raises(ValueError, match="unknown fault"):
        yahoo.inject("503")


def test_a_hang_holds_the_request_until_the_client_gives_up(yahoo: YahooEmulator) -> None:
    yahoo.inject("hang", times=1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        get(yahoo, f"{AAPL}?crumb={CRUMB}", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    # The client gave up while the emulator still hung (status -1: not answered yet).
    assert [(hit.fault, hit.status) for hit in yahoo.hits] == [("hang", -1)]


def test_latency_fixed_and_jittered(aapl_root: Path) -> None:
    with YahooEmulator(aapl_root, latency=0.2) as server:
        started = time.monotonic()
        get(server, f"{AAPL}?crumb={CRUMB}")
        assert time.monotonic() - started >= 0.2
        # Latency applies to v7 paths only by default.
        assert server._delay(AAPL) == 0.2 and server._delay("/v1/test/getcrumb") == 0.0
    with YahooEmulator(aapl_root, latency=(0.0, 0.1), seed=7) as server:
        delays = [server._delay(AAPL) for _ in range(5)]
    assert all(0.0 <= delay <= 0.1 for delay in delays)
    assert max(delays) - min(delays) > 0.005  # jittered, not fixed


def test_a_hold_keeps_requests_until_released(yahoo: YahooEmulator) -> None:
    hold = yahoo.hold(AAPL, date=None)
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(get(yahoo, f"{AAPL}?crumb={CRUMB}")[0])
    )
    waiting.start()
    assert hold.wait_for_arrivals(1) == [(AAPL, None)]
    # Held: other dates and paths pass, and the held request is not answered yet.
    assert get(yahoo, f"{AAPL}?date=1755820800&crumb={CRUMB}")[0] == 200
    assert answers == [] and yahoo.peak_in_flight == 2
    hold.release()
    waiting.join(timeout=30)
    assert answers == [200] and not hold.timed_out
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}")[0] == 200  # a released hold lets all through


def test_a_hold_until_n_is_a_barrier(yahoo: YahooEmulator) -> None:
    barrier = yahoo.hold(AAPL, until=3)
    threads = [
        threading.Thread(target=get, args=(yahoo, f"{AAPL}?crumb={CRUMB}")) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert barrier.released and len(barrier.arrived) == 3
    assert yahoo.peak_in_flight == 3 and yahoo.counts()[AAPL] == 3


def test_a_hold_gives_up_after_its_timeout(yahoo: YahooEmulator) -> None:
    hold = yahoo.hold(AAPL, timeout=0.1)
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}")[0] == 200
    assert hold.timed_out and not hold.released
    with pytest.raises(AssertionError, match="1 of 2 requests reached the hold"):
        hold.wait_for_arrivals(2, timeout=0.1)
