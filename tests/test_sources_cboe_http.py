"""The live Cboe source over HTTP, against a local server answering the way Cboe's CDN does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from optscan.sources.base import (
    MalformedResponse,
    RateLimited,
    SourceError,
    UnknownSymbol,
    Unreachable,
)
from optscan.sources.cboe import CboeSource, options_path
from optscan.sources.policy import FetchPolicy
from optscan.sources.replay import ReplaySource
from tests.cboe_emulator import OPTIONS_PREFIX, CboeEmulator
from tests.childlines import ChildLines
from tests.replaydirs import build_cboe_dir

pytestmark = pytest.mark.slow

AAPL = f"{OPTIONS_PREFIX}AAPL.json"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cboe_dir(tmp_path_factory.mktemp("cboe"))


@pytest.fixture
def cboe(root: Path) -> Iterator[CboeEmulator]:
    with CboeEmulator(root) as server:
        yield server


def policy(retries: int = 2, breaker: int = 0) -> FetchPolicy:
    """Return a policy that retries at once (no backoff to wait out), without pacing."""
    return FetchPolicy(
        max_retries=retries, backoff_base=0.0, backoff_cap=0.0, breaker_threshold=breaker
    )


def test_one_gzip_request_serves_quote_expirations_and_every_chain(
    cboe: CboeEmulator, root: Path
) -> None:
    replay = ReplaySource(root)
    with CboeSource(base_url=cboe.base_url, policy=policy()) as source:
        quote = source.quote("AAPL")
        expirations = source.expirations("AAPL")
        chains = [source.chain("AAPL", day) for day in expirations]
        raw = source.fetch_raw("aapl")
    assert quote == replay.quote("AAPL") and quote.source == "cboe"
    assert expirations == replay.expirations("AAPL") and len(expirations) == 24
    for chain in chains:
        recorded = replay.chain("AAPL", chain.expiration)
        assert chain.puts.contract == recorded.puts.contract
        assert (chain.calls.vendor_delta == recorded.calls.vendor_delta).all()
    assert json.loads(raw) == json.loads((root / "AAPL" / "cboe.json").read_bytes())
    # One request for the whole chain (and one more for fetch_raw, which is not memoised).
    assert [hit.path for hit in cboe.hits] == [AAPL, AAPL]
    assert cboe.gzipped == 2  # curl_cffi asks for gzip and decodes it


def test_an_index_is_asked_for_under_its_underscore_name(cboe: CboeEmulator) -> None:
    assert options_path("^SPX") == f"{OPTIONS_PREFIX}_SPX.json"
    with CboeSource(base_url=cboe.base_url) as source, pytest.raises(UnknownSymbol):
        source.quote("^SPX")
    assert [hit.path for hit in cboe.hits] == [f"{OPTIONS_PREFIX}_SPX.json"]


@pytest.mark.parametrize(
    ("fault", "error", "words", "requests"),
    [
        ("403", UnknownSymbol, "Cboe does not know AAPL", 1),  # S3's answer for a missing key
        ("404", UnknownSymbol, "Cboe does not know AAPL", 1),
        ("blocked", SourceError, "Cboe refused the request (HTTP 403)", 1),
        ("429", RateLimited, "Cboe answered 429 Too Many Requests (3 attempts)", 3),
        ("500", SourceError, "Cboe answered HTTP 500 (3 attempts)", 3),
        ("malformed", MalformedResponse, "not Cboe's options shape", 1),
        ("html", MalformedResponse, "not JSON", 1),
        ("truncated", MalformedResponse, "not JSON", 1),
        ("cut", SourceError, "request to Cboe failed", 3),
    ],
)
def test_error_answers(
    cboe: CboeEmulator, fault: str, error: type, words: str, requests: int
) -> None:
    cboe.inject(fault)
    with (
        CboeSource(base_url=cboe.base_url, policy=policy()) as source,
        pytest.raises(error) as raised,
    ):
        source.expirations("AAPL")
    assert words in raised.value.message
    assert type(raised.value) is error and len(cboe.hits) == requests


@pytest.mark.parametrize("fault", ["429", "500", "cut"])
def test_a_passing_fault_is_retried_and_the_document_kept(cboe: CboeEmulator, fault: str) -> None:
    cboe.inject(fault, times=1)
    with CboeSource(base_url=cboe.base_url, policy=policy()) as source:
        assert len(source.expirations("AAPL")) == 24
        source.chain("AAPL", date(2026, 8, 21))
    assert len(cboe.hits) == 2


def test_an_unknown_symbol_answered_404_or_403(root: Path) -> None:
    for answer in ("403", "404"):
        with CboeEmulator(root, unknown_symbol=answer) as server:
            with CboeSource(base_url=server.base_url) as source, pytest.raises(UnknownSymbol):
                source.quote("ZZZZ")
            assert [hit.status for hit in server.hits] == [int(answer)]


def test_the_breaker_gives_up_on_a_cboe_that_keeps_answering_429(cboe: CboeEmulator) -> None:
    cboe.inject("429")
    strict = FetchPolicy(
        max_retries=0, backoff_base=0, backoff_cap=0, breaker_threshold=2, breaker_pause=0
    )
    with CboeSource(base_url=cboe.base_url, policy=strict) as source:
        for symbol in ("AAPL", "MSFT", "NVDA", "AMZN"):
            with pytest.raises(RateLimited):
                source.quote(symbol)
        asked = len(cboe.hits)
        with pytest.raises(RateLimited, match="not asking again"):
            source.quote("TSLA")
        assert source.breaker is not None and source.breaker.open
    assert asked == 4 and len(cboe.hits) == 4  # given up without a request


def test_a_cboe_that_cannot_be_reached_fails_fast_as_unreachable() -> None:
    with CboeSource(base_url="http://127.0.0.1:9", policy=policy()) as source:
        for symbol in ("AAPL", "MSFT", "NVDA"):
            with pytest.raises(Unreachable, match="Cboe could not be reached"):
                source.quote(symbol)
        assert source.reachability.unreachable
        refused = source.reachability.refused
        with pytest.raises(Unreachable):
            source.quote("AMZN")
        assert source.reachability.refused == refused + 1  # no request sent


CHILD = """
from gevent import monkey

monkey.patch_all()

import json, sys, time
import gevent
from optscan.sources.cboe import CboeSource

base_url, every = sys.argv[1], float(sys.argv[2])
source = CboeSource(base_url=base_url, timeout=120)
ticks = []

def tick():
    while True:
        gevent.sleep(every)
        ticks.append(time.monotonic())
        print("tick", ticks[-1], flush=True)

watcher = gevent.spawn(tick)
gevent.sleep(0)
start = time.monotonic()
jobs = [gevent.spawn(source.quote, s) for s in ("AAPL", "MSFT", "NVDA")]
gevent.joinall(jobs, raise_error=True)
end = time.monotonic()
watcher.kill()
print(json.dumps({"cooperative": source._session.cooperative,
                  "ticks": sum(start <= t <= end for t in ticks)}), flush=True)
"""


def test_under_gevent_held_fetches_let_other_greenlets_run(root: Path, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with CboeEmulator(root, aliases={"MSFT": "AAPL", "NVDA": "AAPL"}) as server:
        # Released only once all three are asked: proof that they were under way at once.
        three = server.hold(until=4)  # never reached by three: the test releases it
        child = ChildLines(
            subprocess.Popen(
                [sys.executable, str(script), server.base_url, "0.1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                cwd=tmp_path,
            )
        )
        try:
            three.wait_for_arrivals(3, give_up=child.exited)
            child.wait_for_ticks_after(time.monotonic(), 5, "while three fetches are held")
        finally:
            three.release()
        lines, stderr = child.finish()
    assert child.process.returncode == 0, stderr[-3000:]
    figures = json.loads(lines[-1])
    assert figures["cooperative"] is True and figures["ticks"] >= 5


def test_unknown_symbols_are_noted_for_the_watchlist_page(
    cboe: CboeEmulator, redis_client, redis_prefix: str
) -> None:
    from optscan.store.yahoomemo import YahooMemo

    memo = YahooMemo(redis_client, redis_prefix, today=lambda: date(2026, 7, 24))
    memo.mark_unknown("AAPL", "Yahoo does not know AAPL")  # an old note, wrong by now
    with CboeSource(base_url=cboe.base_url, memo=memo) as source:
        source.quote("AAPL")
        with pytest.raises(UnknownSymbol):
            source.quote("ZZZZ")
    assert memo.unknown() == {"ZZZZ": "Cboe does not know ZZZZ"}
