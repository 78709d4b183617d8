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

from bench.scan import fetch_policy, scan_env  # noqa: E402
from optscan.core.scan import perform_scan  # noqa: E402
from optscan.sources.yahoo import YahooSource  # noqa: E402


def main() -> None:
    """Scan the given symbols against the given emulator and print the figures."""
    base_url, work, workers, symbols = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    source = YahooSource(work / "cache", base_url=base_url, policy=fetch_policy(None))
    env = scan_env(source, work, int(workers))
    started = time.perf_counter()
    result = perform_scan(symbols.split(","), force=True, env=env)
    elapsed = time.perf_counter() - started
    figures = {"elapsed": elapsed, "scanned": result.counts()["scanned"]}
    print(json.dumps({**figures, "matches": len(result.matches)}))


if __name__ == "__main__":
    main()
