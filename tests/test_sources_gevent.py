"""Under gevent, a Yahoo fetch must not freeze the worker's other greenlets.

libcurl's I/O (curl_cffi, under yfinance) is invisible to gevent's monkey patching. Each child
process below patches gevent first, then fetches from the emulator while a greenlet ticks
every 0.1 s, printing each tick. The emulator holds the fetched answers until the test has
seen the ticks it expects: nothing depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.childlines import ChildLines
from tests.replaydirs import build_replay_dir
from tests.yahoo_emulator import YahooEmulator

TICK = 0.1  # seconds between ticks of the watching greenlet
REPO = Path(__file__).resolve().parent.parent
# The symbol each child fetches while its answer is held (QQQ, never held, warms up).
HELD = {"auto": "AAPL", "plain": "PYPL"}
FOUR = ("ABBV", "AMZN", "BABA", "GOOG")

CHILD = """
from gevent import monkey

monkey.patch_all()

import json, sys, time
from pathlib import Path

import gevent

from optscan.sources.yahoo import YahooSession, YahooSource

base_url, cache, mode, every, held = sys.argv[1:6]
four = sys.argv[6].split(",")
# "auto": what the app does (detect gevent); "plain": curl_cffi without the fix.
session = YahooSession(base_url, timeout=120, cooperative=None if mode == "auto" else False)
source = YahooSource(cache, session=session)
source.fetch_raw("QQQ", None)  # cookie and crumb, outside the measurement (QQQ: not held)

ticks = []

def tick():
    while True:
        gevent.sleep(float(every))
        ticks.append(time.monotonic())
        print("tick", ticks[-1], flush=True)

watcher = gevent.spawn(tick)
gevent.sleep(0)
start = time.monotonic()
source.expirations(held)
end = time.monotonic()
during = sum(start <= t <= end for t in ticks)
if mode == "auto":
    jobs = [gevent.spawn(source.expirations, s) for s in four]
    gevent.joinall(jobs, raise_error=True)
watcher.kill()
print(json.dumps({"cooperative": session.cooperative, "ticks": during}), flush=True)
"""


@pytest.fixture(scope="module")
def yahoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YahooEmulator]:
    root = build_replay_dir(tmp_path_factory.mktemp("premarket"), "premarket")
    with YahooEmulator(root) as server:
        yield server


@pytest.mark.slow
def test_fetches_yield_to_other_greenlets_and_run_concurrently(
    yahoo: YahooEmulator, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holds = {mode: yahoo.hold(f"/v7/finance/options/{symbol}$") for mode, symbol in HELD.items()}
    # Released only once all four are asked: proof that they were under way at once.
    four = yahoo.hold(f"/v7/finance/options/({'|'.join(FOUR)})$", until=len(FOUR))
    children = {}
    for mode in HELD:
        argv = [sys.executable, str(script), yahoo.base_url, str(tmp_path / f"cache-{mode}"),
                mode, str(TICK), HELD[mode], ",".join(FOUR)]  # fmt: skip
        children[mode] = ChildLines(
            subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            )
        )
    results = {}
    try:
        for mode, hold in holds.items():
            hold.wait_for_arrivals(1, give_up=children[mode].exited)
        # Both fetches are held from here on. With the fix the watcher ticks on through the
        # wait; without it libcurl blocks the whole process, watcher included, meanwhile.
        both_held = time.monotonic()
        children["auto"].wait_for_ticks_after(both_held, 8, "while the fetch is held")
        for hold in holds.values():
            hold.release()
        for mode, child in children.items():
            lines, stderr = child.finish()
            assert child.process.returncode == 0, stderr[-3000:]
            results[mode] = json.loads(lines[-1])
    finally:
        for hold in (*holds.values(), four):
            hold.release()
    fixed, plain = results["auto"], results["plain"]
    print(f"gevent figures: {results}")

    assert fixed["cooperative"] is True
    assert fixed["ticks"] >= 8
    # Four symbols in four greenlets overlapped: the barrier let them go together.
    assert four.released and not four.timed_out and len(four.arrived) == len(FOUR)

    assert plain["cooperative"] is False
    assert plain["ticks"] <= 1
    assert not any(hold.timed_out for hold in holds.values())
