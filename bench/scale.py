"""(5) Scan scale: `flask scan` over N replayed symbols, every contract passing the rules.

Each symbol is a copy of the ten recorded AAPL expirations (the symbol renamed inside the
bodies), replayed from disk: no network, so the figures are the scan's own work (parsing,
analytics, rows, live events, the stored result) as `flask scan --json` does it, with
`--min-return 0 --max-delta 1` so that every valid contract is a row. Each size runs in a fresh
process against one embedded Redis; one run per size, sizes from small to large.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench.report import Table, count, median, ratio, seconds
from optscan.config import DEFAULTS
from optscan.core.market import MarketCalendar
from optscan.core.rules import Rules
from optscan.core.scan import ScanEnv, perform_scan
from optscan.sources.replay import ReplaySource
from optscan.store.redisserver import EmbeddedRedis
from optscan.store.watchlist import Watchlist
from tests.replaydirs import build_replay_dir

REPO = Path(__file__).resolve().parent.parent
RECORDED = "AAPL"
SIZES = (20, 50, 100, 200, 500)
SMOKE_SIZES = (2, 4)
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # the scans are forced; this only stamps them
# `python -m flask ...` that reports its own peak RSS (KiB) on stderr as it exits.
_REPORTING_FLASK = (
    "import atexit, resource, runpy, sys;"
    " atexit.register(lambda: print('PEAK_RSS', resource.getrusage(resource.RUSAGE_SELF)"
    ".ru_maxrss, file=sys.stderr));"
    " sys.argv[0] = 'flask'; runpy.run_module('flask', run_name='__main__', alter_sys=True)"
)


def symbol_names(n: int) -> list[str]:
    """Return n distinct letter-only symbols: AAA, AAB, ..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["".join(p) for p in itertools.islice(itertools.product(letters, repeat=3), n)]


def build_symbols(root: Path, recorded: Path, symbols: list[str]) -> None:
    """Write each symbol's copy of the recorded AAPL answers, the symbol renamed inside."""
    bodies = {p.name: p.read_bytes() for p in (recorded / RECORDED).iterdir()}
    for symbol in symbols:
        folder = root / symbol
        folder.mkdir(parents=True)
        for name, body in bodies.items():
            # underlyingSymbol, quote.symbol and every OCC contract symbol start with "AAPL.
            (folder / name).write_bytes(body.replace(b'"AAPL', b'"' + symbol.encode()))


def scan_once(
    root: Path, symbols: list[str], tmp: Path, redis_url: str
) -> tuple[dict, float, float, int]:
    """Return (the JSON result, process wall s, peak RSS MiB, Redis bytes written) of one scan."""
    instance = tmp / f"instance-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": f"optscan-bench-scale:{uuid.uuid4().hex[:8]}:",
        "OPTSCAN_SOURCE": f"replay:{root}",
        "OPTSCAN_SECRET_KEY": "bench-scale-secret-key-0123456789abcdef",
    }
    command = [sys.executable, "-c", _REPORTING_FLASK, "--app", "optscan", "scan", "--force"]
    command += ["--json"]
    command += ["--min-return", "0", "--max-delta", "1", "--symbols", ",".join(symbols)]
    probe = redis.Redis.from_url(redis_url)
    received = int(probe.info("stats")["total_net_input_bytes"])
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = child.communicate(timeout=1800)
    wall = time.perf_counter() - started
    written = int(probe.info("stats")["total_net_input_bytes"]) - received
    probe.close()
    if child.returncode != 0:
        raise RuntimeError(f"flask scan failed ({child.returncode}): {err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    peak_kib = next(
        int(line.split()[1]) for line in err.decode().splitlines() if line.startswith("PEAK_RSS")
    )
    return result, wall, peak_kib / 1024, written


def scan_in_process(root: Path, symbols: list[str], tmp: Path) -> tuple[float, float, dict]:
    """Return (wall s, CPU s, counts) of perform_scan alone: no live events, nothing stored."""
    env = ScanEnv(
        source=ReplaySource(root),
        watchlist=Watchlist(tmp / f"watchlist-{uuid.uuid4().hex[:8]}.sqlite3", seed=()),
        calendar=MarketCalendar(),
        rules=Rules().overridden("put", min_return_pct=0, max_delta=1),
        risk_free_rate=DEFAULTS["RISK_FREE_RATE_PCT"] / 100,
        wide_spread_pct=DEFAULTS["WIDE_SPREAD_PCT"],
        clock=lambda: NOW,
        concurrency=DEFAULTS["SCAN_CONCURRENCY"],
    )
    started, cpu = time.perf_counter(), time.process_time()
    result = perform_scan(symbols, force=True, env=env)
    return time.perf_counter() - started, time.process_time() - cpu, dict(result.counts())


def run(smoke: bool = False) -> list[Table]:
    """Scan each size in process (median of repeats) and once through `flask scan`."""
    sizes = SMOKE_SIZES if smoke else SIZES
    repeats = 1 if smoke else 3
    tmp = Path(tempfile.mkdtemp(prefix="optscan-bench-"))  # short: a unix socket lives here
    redis_server = EmbeddedRedis(tmp / "redis")
    rows = []
    core: dict[int, list[tuple[float, float, dict]]] = {n: [] for n in sizes}
    try:
        recorded = build_replay_dir(tmp / "recorded", "aapl")
        # One folder of the largest size; a smaller size scans its first symbols.
        root = tmp / "replay"
        everyone = symbol_names(max(sizes))
        build_symbols(root, recorded, everyone)
        for _ in range(repeats):  # interleaved, so that a busy spell hits every size alike
            for n in sizes:
                wall, cpu, counts = scan_in_process(root, everyone[:n], tmp)
                if counts["scanned"] != n:
                    raise RuntimeError(f"{n} symbols in process: scanned {counts['scanned']}")
                core[n].append((wall, cpu, counts))
        redis_url = redis_server.ensure_running()
        for n in sizes:
            result, process_wall, peak, written = scan_once(root, everyone[:n], tmp, redis_url)
            if result["counts"]["scanned"] != n:
                raise RuntimeError(f"{n} symbols: scanned {result['counts']['scanned']}")
            rows.append((n, result["counts"], result["duration_s"], process_wall, peak, written))
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    medians = [
        (n, runs[0][2], median([r[0] for r in runs]), median([r[1] for r in runs]), len(runs))
        for n, runs in core.items()
    ]
    return [_table(rows), _core_table(medians)]


def _core_table(rows: list[tuple[int, dict, float, float, int]]) -> Table:
    table = Table(
        "(5b) Scan scale, the scan alone: perform_scan in process, no live events, nothing"
        f" stored, median of {rows[0][4]}",
        [
            "symbols",
            "contracts",
            "matches",
            "wall s",
            "contracts/s",
            "CPU s",
            "wall vs the first row",
        ],
    )
    first = rows[0][2]
    for n, counts, wall, cpu, _ in rows:
        table.add(
            count(n),
            count(counts["contracts"]),
            count(counts["matches"]),
            seconds(wall),
            count(counts["contracts"] / wall),
            seconds(cpu),
            ratio(wall / first),
        )
    table.notes += [
        "The same replayed symbols and rules as (5), scanned by perform_scan in this process"
        " with the default workers and no result store or progress callback: fetching,"
        " parsing, analysis and rows, without the live events and the stored result that"
        " `flask scan` adds (the difference between the two tables is that path).",
    ]
    return table


def _table(rows: list[tuple[int, dict, float, float, float, int]]) -> Table:
    table = Table(
        "(5) Scan scale: flask scan --json over N replayed symbols, every contract passing",
        [
            "symbols",
            "contracts",
            "matches",
            "scan s (duration_s)",
            "contracts/s",
            "process wall s",
            "peak RSS MiB",
            "Redis bytes written",
            "scan s vs the first row",
        ],
    )
    first = rows[0]
    for n, counts, duration, wall, peak, written in rows:
        table.add(
            count(n),
            count(counts["contracts"]),
            count(counts["matches"]),
            seconds(duration),
            count(counts["contracts"] / duration) if duration else "-",
            seconds(wall),
            f"{peak:.0f}",
            count(written),
            ratio(duration / first[2]) if first[2] else "-",
        )
    table.notes += [
        "Each symbol is the ten recorded AAPL expirations (Aug-Oct 2025) renamed; the scan"
        " reads them from disk (replay), so no network time is in these figures.",
        "`flask scan --force --json --min-return 0 --max-delta 1 --symbols ...` in a fresh"
        " process per row (the default settings otherwise: 16 workers, live events and the"
        " stored result in Redis); contracts are the put contracts analysed, matches the rows.",
        "scan s is the result's duration_s (from the scan's start to its end, before the JSON"
        " is printed); process wall adds Python's start-up, the imports and printing.",
        "Redis bytes written: the growth of the server's total_net_input_bytes during the run"
        " (events, snapshot, lock, stored result).",
        f"Last column: scan s over the {first[0]}-symbol row's (linear would be the ratio of"
        " the symbol counts).",
    ]
    return table
