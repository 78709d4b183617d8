"""Under gevent, a Yahoo fetch must not freeze the worker's other greenlets.

libcurl's I/O (curl_cffi, under yfinance) is invisible to gevent's monkey patching. Each child
process below patches gevent first, then fetches from the emulator (which delays its v7
answers by 1.5 s) while a greenlet ticks every 0.1 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

DELAY = 1.5  # seconds the emulator holds each measured v7 answer
TICK = 0.1  # seconds between ticks of the watching greenlet
REPO = Path(__file__).resolve().parent.parent

CHILD = """
from gevent import monkey

monkey.patch_all()

import json, sys, time
from pathlib import Path

import gevent

from optscan.sources.yahoo import YahooSession, YahooSource

base_url, cache, mode, every = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
# "auto": what the app does (detect gevent); "plain": curl_cffi without the fix.
session = YahooSession(base_url, cooperative=None if mode == "auto" else False)
source = YahooSource(cache, session=session)
source.fetch_raw("QQQ", None)  # cookie and crumb, outside the measurement (QQQ: no delay)

ticks = []

def tick():
    while True:
        gevent.sleep(every)
        ticks.append(time.monotonic())

watcher = gevent.spawn(tick)
gevent.sleep(0)
start = time.monotonic()
source.expirations("AAPL")
single = time.monotonic() - start
during = sum(start <= t <= start + single for t in ticks)
four = None
if mode == "auto":
    start = time.monotonic()
    jobs = [gevent.spawn(source.expirations, s) for s in ("ABBV", "AMZN", "BABA", "GOOG")]
    gevent.joinall(jobs, raise_error=True)
    four = time.monotonic() - start
watcher.kill()
print(json.dumps({"cooperative": session.cooperative, "single": single, "ticks": during,
                  "four": four}))
"""


@pytest.fixture(scope="module")
def yahoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YahooEmulator]:
    root = build_replay_dir(tmp_path_factory.mktemp("premarket"), "premarket")
    delayed = r"/v7/finance/options/(AAPL|ABBV|AMZN|BABA|GOOG)$"
    with YahooEmulator(root, latency=DELAY, latency_paths=delayed) as server:
        yield server


@pytest.mark.slow
def test_fetches_yield_to_other_greenlets_and_run_concurrently(
    yahoo: YahooEmulator, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Both children at once: each spends its time waiting on the emulator, not computing.
    children = {
        mode: subprocess.Popen(
            [
                sys.executable,
                str(script),
                yahoo.base_url,
                str(tmp_path / f"cache-{mode}"),
                mode,
                str(TICK),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for mode in ("auto", "plain")
    }
    results = {}
    for mode, child in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err[-3000:]
        results[mode] = json.loads(out.strip().splitlines()[-1])
    fixed, plain = results["auto"], results["plain"]
    print(f"gevent figures: {results}")

    # With the fix (detected automatically): the watcher ticks on through the 1.5 s wait...
    assert fixed["cooperative"] is True
    assert fixed["single"] >= DELAY
    assert fixed["ticks"] >= 8
    # ...and four symbols in four greenlets overlap: about one delay, not four.
    assert fixed["four"] < 2 * DELAY

    # Without it, libcurl blocks the whole process: the watcher stalls for the whole fetch.
    assert plain["cooperative"] is False
    assert plain["single"] >= DELAY
    assert plain["ticks"] <= 1
