"""Logging: one line per scan start and end (counts, duration, cause) under `flask scan` and in
the app, each written once; yfinance's lines folded into the scan's own line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from optscan.applog import configure_logging, take_noise
from tests.flaskrun import run_flask, scan_env
from tests.replaydirs import build_replay_dir


def test_configuring_twice_keeps_one_handler(make_app) -> None:
    make_app()
    app = make_app()
    app.logger.info("Flask adds its own handler here unless one already takes the line")
    root = logging.getLogger()
    mine = [h for h in root.handlers if type(h).__name__ == "_StderrHandler"]
    assert len(mine) == 1
    assert logging.getLogger("optscan").handlers == []  # Flask's default handler is off
    assert logging.getLogger("optscan").getEffectiveLevel() == logging.INFO


def test_yfinance_lines_are_counted_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    take_noise()
    yf_log = logging.getLogger("yfinance")
    for _ in range(40):
        yf_log.warning("Cookie/crumb fetch failed (%s), continuing without crumb", "DNSError")
    yf_log.error("Failed to get ticker 'X' reason: %s", "boom")
    logging.getLogger("curl_cffi").warning("a curl_cffi warning")
    assert "continuing without crumb" not in capsys.readouterr().err
    summary = take_noise()
    assert summary == (
        'yfinance logged "Cookie/crumb fetch failed (DNSError), continuing without crumb"'
        " 40 times and 2 other lines"
    )
    assert take_noise() is None


def test_flask_scan_logs_its_start_and_end_once(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    source = f"replay:{build_replay_dir(tmp_path / 'replay', 'aapl')}"
    env = scan_env(source, redis_url, redis_prefix, tmp_path / "instance")
    proc = run_flask("scan", "--force", "--symbols", "AAPL,NOPE", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    started = [line for line in lines if "optscan.jobs.scanjob" in line and " started: " in line]
    finished = [line for line in lines if "optscan.jobs.scanjob" in line and " finished (" in line]
    assert len(started) == 1 and "2 symbols, puts, by cli" in started[0]
    assert len(finished) == 1
    assert re.search(r"1 of 2 symbols scanned, 1 failed, \d+ matches in \d+\.\d s", finished[0])
    assert "Scanned 1 of 2 symbols" in finished[0]  # the scan's message, said once
    assert proc.stderr.count("Scanned 1 of 2 symbols") == 1
