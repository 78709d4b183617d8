"""`python -m bench --smoke`: every benchmark still runs and prints the rows it should.

Not a timing test: the smoke sizes are tiny. It checks the tables' shape and that the figures
are sane (positive times, the request counts a scan must make, agreeing analytics, every SSE
event delivered to every client over one subscription, pages served while scans run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.__main__ import main
from optscan.config import DEFAULTS

REPO = Path(__file__).resolve().parent.parent


def tables(output: str) -> dict[str, list[dict[str, str]]]:
    """Return each printed Markdown table as rows of {column: cell}, keyed by its title."""
    found: dict[str, list[dict[str, str]]] = {}
    title, columns = None, None
    for line in output.splitlines():
        if line.startswith("### "):
            title, columns = line[4:], None
        elif line.startswith("|") and title is not None:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if columns is None:
                columns = cells
                found[title] = []
            elif not set("".join(cells)) <= {"-"}:
                found[title].append(dict(zip(columns, cells, strict=True)))
    return found


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("x"))


def table(output: str, key: str) -> list[dict[str, str]]:
    """Return the rows of the table whose title starts with `key`, e.g. "(3)"."""
    return next(rows for title, rows in tables(output).items() if title.startswith(key))


@pytest.fixture(scope="module")
def smoke_output() -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    return run.stdout


@pytest.mark.slow
def test_the_scan_benchmark_prints_every_case_with_sane_figures(smoke_output: str) -> None:
    scan = next(rows for title, rows in tables(smoke_output).items() if title.startswith("(1)"))
    assert [row["case"] for row in scan] == [
        "sequential yfinance loop",
        "optscan, defaults (flask scan)",
        "optscan, no rate limit",
        "optscan, no rate limit, gevent",
        "optscan, no rate limit",
        "optscan via Cboe, defaults",
        "optscan via Cboe, no rate limit",
    ]
    workers = DEFAULTS["SCAN_CONCURRENCY"]
    assert [int(row["workers"]) for row in scan] == [
        1, workers, workers, workers, 2 * workers, workers, workers,
    ]  # fmt: skip
    yahoo, cboe = scan[:5], scan[5:]
    for row in scan:
        # Yahoo: 3 symbols x (first answer + 4 expirations), each fetched once; Cboe: one
        # document per symbol.
        assert int(row["data requests"]) == (3 if row in cboe else 15)
        assert number(row["wall s (median)"]) > 0
        assert number(row["lower bound s"]) > 0
        assert number(row["wall / bound"]) >= 0.9
    assert number(scan[0]["vs sequential"]) == 1.0
    # optscan fetched Yahoo's cookie and crumb once each; Cboe needs neither.
    assert {int(row["other requests"]) for row in yahoo[1:]} == {2}
    assert {int(row["other requests"]) for row in cboe} == {0}
    rate, burst = DEFAULTS["YAHOO_RATE_PER_SECOND"], DEFAULTS["YAHOO_BURST"]
    assert scan[1]["rate limit"] == f"{rate:g}/s, burst {burst}"
    rate, burst = DEFAULTS["CBOE_RATE_PER_SECOND"], DEFAULTS["CBOE_BURST"]
    assert cboe[0]["rate limit"] == f"{rate:g}/s, burst {burst}"


@pytest.mark.slow
def test_the_analytics_benchmark_agrees_with_its_reference(smoke_output: str) -> None:
    rows = next(rows for title, rows in tables(smoke_output).items() if title.startswith("(2)"))
    ours, reference = rows
    assert ours["implementation"].startswith("optscan")
    assert reference["implementation"].startswith("reference:")
    assert number(ours["contracts/s"]) > 0 and number(reference["contracts/s"]) > 0
    assert number(reference["vs reference"]) == 1.0
    assert number(ours["max abs(IV - reference IV)"]) < 1e-4
    assert number(ours["max abs(delta - reference delta)"]) < 1e-4
    assert number(ours["max abs(IV - true vol)"]) < 1e-6
    assert int(ours["unsolved"]) == 0


@pytest.mark.slow
def test_the_pipeline_benchmark_counts_every_put_and_compares_the_forward(
    smoke_output: str,
) -> None:
    rows = table(smoke_output, "(2b) Chain pipeline")
    assert all(row["case"].startswith("whole pipeline") for row in rows[:2])
    # 2 symbols x the ten recorded AAPL expirations: 544 puts each.
    assert {int(number(row["put contracts"])) for row in rows} == {2 * 544}
    assert all(number(row["contracts/s (CPU)"]) > 0 for row in rows)
    decoders = table(smoke_output, "(2b) Decoding")
    assert decoders[0]["decoder"].startswith("json") and number(decoders[0]["vs json"]) == 1.0
    near = table(smoke_output, "(2c)")[1]
    before = number(near["median abs(IV call - IV put) before"].split()[0])
    assert number(near["after"].split()[0]) < before


@pytest.mark.slow
def test_the_scale_benchmark_scans_every_symbol_both_ways(smoke_output: str) -> None:
    # 2 and 4 replayed symbols, each the AAPL recordings: 177 puts and 112 rows per symbol.
    for title in ("(5) Scan scale", "(5b) Scan scale"):
        rows = table(smoke_output, title)
        assert [int(number(r["symbols"])) for r in rows] == [2, 4]
        assert [int(number(r["contracts"])) for r in rows] == [354, 708]
        assert [int(number(r["matches"])) for r in rows] == [224, 448]
    for row in table(smoke_output, "(5) Scan scale"):
        assert number(row["Redis bytes written"]) > 0 and number(row["peak RSS MiB"]) > 0


@pytest.mark.slow
def test_the_sse_benchmark_delivers_every_event_over_one_subscription(smoke_output: str) -> None:
    (row,) = table(smoke_output, "(3)")
    assert int(row["clients"]) == 20
    # The smoke run publishes one simulated 3-symbol scan: scan-started, then symbol-done and
    # progress per symbol, then scan-finished; each of the 20 clients must get all of them.
    events = 1 + 2 * 3 + 1
    assert row["deliveries"] == f"{20 * events} of {20 * events}"
    p50, p99, worst = (number(row[c]) for c in ("p50 ms", "p99 ms", "max ms"))
    assert 0 < p50 <= p99 <= worst
    before, with_clients, peak = (
        int(n) for n in row["Redis conns before / with clients / peak"].split(" / ")
    )
    # One worker, one subscription, whatever the number of clients; the baseline is taken
    # once the warm-up's subscription is gone, so the clients' one adds a connection.
    assert int(row["pub/sub conns"]) == 1
    assert before < with_clients <= peak
    rss_before, rss_with = (
        float(m) for m in row["worker RSS MiB before / with clients"].split(" / ")
    )
    assert 0 < rss_before <= rss_with
    assert number(row["KiB per client"]) >= 0
    assert "1 subscription, 0 cut as too slow, 0 streams lost" in smoke_output


@pytest.mark.slow
def test_the_index_benchmark_serves_the_page_idle_and_during_scans(smoke_output: str) -> None:
    rows = table(smoke_output, "(4)")
    loads = ["4 clients x 1/s", "4 clients x 5/s", "4 clients back to back"]
    assert [(r["load"], r["scan"]) for r in rows] == [
        (load, scan) for load in loads for scan in ("none", "running")
    ]
    for row in rows:
        assert int(row["not 200"]) == 0
        served = int(number(row["requests"]))
        showing = int(number(row["pages showing the scan"]))
        assert showing == 0 if row["scan"] == "none" else showing <= served
        if served:  # a row is half a second: a stalled machine may send nothing in it
            assert number(row["requests/s"]) > 0
            p50, p99, worst = (number(row[c]) for c in ("p50 ms", "p99 ms", "max ms"))
            assert 0 < p50 <= p99 <= worst
    assert sum(int(number(r["requests"])) for r in rows) > 0
    # Pages served while scans ran back to back showed a scan (in one row or another: how
    # many fall between two scans depends on the machine).
    assert sum(int(number(r["pages showing the scan"])) for r in rows if r["scan"] != "none") > 0
    assert "each scanning every symbol" in smoke_output


@pytest.mark.slow
def test_benchmarks_not_written_yet_say_so(smoke_output: str) -> None:
    printed = tables(smoke_output)
    for _, module, title in BENCHMARKS[2:]:
        has_table = any(name.startswith(title.split(" ", 1)[0]) for name in printed)
        not_yet = re.search(rf"{re.escape(title)}: not yet available", smoke_output)
        assert has_table or not_yet, f"{module}: neither a table nor 'not yet available'"


def test_unknown_benchmarks_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--only", "scan,nope"])
    assert stopped.value.code == 2
    assert "unknown benchmark(s) nope" in capsys.readouterr().err
