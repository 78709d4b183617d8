"""Run one optscan scan in a gevent-patched process, as a web worker does; print its figures.

`python -m bench.gevent_scan BASE_URL WORK_DIR WORKERS SYMBOL,...` (no rate limit), used by
bench.scan; prints one JSON line: elapsed seconds, symbols scanned, matches.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - gevent must patch before anything else is imported
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.scan import NOW, fetch_policy  # noqa: E402
from optscan.config import DEFAULTS  # noqa: E402
from optscan.core.market import MarketCalendar  # noqa: E402
from optscan.core.rules import Rules  # noqa: E402
from optscan.core.scan import ScanEnv, perform_scan  # noqa: E402
from optscan.sources.yahoo import YahooSource  # noqa: E402
from optscan.store.watchlist import Watchlist  # noqa: E402


def main() -> None:
    """Scan the given symbols against the given emulator and print the figures."""
    base_url, work, workers, symbols = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    source = YahooSource(work / "cache", base_url=base_url, policy=fetch_policy(None))
    env = ScanEnv(
        source=source,
        watchlist=Watchlist(work / "watchlist.sqlite3", seed=()),
        calendar=MarketCalendar(clock=lambda: NOW),
        rules=Rules(),
        risk_free_rate=DEFAULTS["RISK_FREE_RATE_PCT"] / 100,
        wide_spread_pct=DEFAULTS["WIDE_SPREAD_PCT"],
        clock=lambda: NOW,
        concurrency=int(workers),
    )
    started = time.perf_counter()
    result = perform_scan(symbols.split(","), force=True, env=env)
    elapsed = time.perf_counter() - started
    figures = {"elapsed": elapsed, "scanned": result.counts()["scanned"]}
    print(json.dumps({**figures, "matches": len(result.matches)}))


if __name__ == "__main__":
    main()
