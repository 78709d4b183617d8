"""The Yahoo emulator itself, spoken to with a plain HTTP client (no yfinance)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import CRUMB, YahooEmulator

AAPL = "/v7/finance/options/AAPL"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_replay_dir(tmp_path_factory.mktemp("aapl"), "aapl")


@pytest.fixture
def yahoo(root: Path) -> Iterator[YahooEmulator]:
    with YahooEmulator(root) as server:
        yield server


def get(server: YahooEmulator, target: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.base_url + target, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serves_recordings_verbatim_and_yahoos_answer_for_other_days(
    yahoo: YahooEmulator, root: Path
) -> None:
    assert get(yahoo, f"{AAPL}?crumb={CRUMB}") == (
        200,
        (root / "AAPL/2025-08-15.json").read_bytes(),
    )
    status, body = get(yahoo, f"{AAPL}?date=1755820800&crumb={CRUMB}")
    assert (status, body) == (200, (root / "AAPL/2025-08-22.json").read_bytes())
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
    assert 0.3 <= time.monotonic() - started < 2
    assert [hit.fault for hit in yahoo.hits] == ["hang"]


def test_latency_fixed_and_jittered(root: Path) -> None:
    with YahooEmulator(root, latency=0.2) as server:
        started = time.monotonic()
        get(server, f"{AAPL}?crumb={CRUMB}")
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        get(server, "/v1/test/getcrumb")  # latency applies to v7 paths only by default
        assert time.monotonic() - started < 0.15
    delays = []
    with YahooEmulator(root, latency=(0.0, 0.1), seed=7) as server:
        for _ in range(5):
            started = time.monotonic()
            get(server, f"{AAPL}?crumb={CRUMB}")
            delays.append(time.monotonic() - started)
    assert max(delays) - min(delays) > 0.005  # jittered, not fixed
    assert min(delays) >= 0.0 and max(delays) < 0.5
