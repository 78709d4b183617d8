"""`python -m bench --smoke`: every benchmark still runs and prints the rows it should.

Not a timing test: the smoke sizes are tiny. It checks the tables' shape and that the figures
are sane (positive times, the request counts a scan must make, agreeing analytics).
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
    ]
    assert [int(row["workers"]) for row in scan] == [1, 8, 8, 8, 16]
    for row in scan:
        # 3 symbols x (first answer + 4 expirations), each fetched once.
        assert int(row["v7 requests"]) == 15
        assert number(row["wall s (median)"]) > 0
        assert number(row["lower bound s"]) > 0
        assert number(row["wall / bound"]) >= 0.9
    assert number(scan[0]["vs sequential"]) == 1.0
    # optscan fetched the cookie and the crumb once each.
    assert {int(row["other requests"]) for row in scan[1:]} == {2}
    assert scan[1]["rate limit"] == "10/s, burst 20"


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
