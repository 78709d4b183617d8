"""The systemd units: they verify, and the timer fires every 15 minutes of New York market hours."""

from __future__ import annotations

import configparser
import itertools
import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from optscan.cli import EXIT_BUSY, EXIT_MARKET_CLOSED
from optscan.core.market import MarketCalendar

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.fail("systemd-analyze is missing: run `just system-deps` (Debian package systemd)")
    return found


def read_unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.slow
def test_units_verify_cleanly(systemd_analyze: str, tmp_path: Path) -> None:
    # The units name /opt/optscan; verify checks that ExecStart binaries exist, so point
    # them at this checkout's virtualenv.
    venv_bin = Path(sys.executable).parent
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/optscan/.venv/bin", str(venv_bin))
        (tmp_path / unit.name).write_text(text.replace("/opt/optscan", str(ROOT)))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["optscan-scan.service", "optscan-scan.timer", "optscan-web.service"]
    proc = subprocess.run(
        [systemd_analyze, "verify", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # verify exits 0 even for values it ignores, so any output at all is a failure.
    assert proc.returncode == 0 and proc.stderr.strip() == "" and proc.stdout.strip() == "", (
        proc.stdout + proc.stderr
    )


def test_scan_unit_treats_closed_and_busy_as_success() -> None:
    unit = read_unit("optscan-scan.service")
    codes = {int(c) for c in unit.get("Service", "SuccessExitStatus").split()}
    assert codes == {EXIT_MARKET_CLOSED, EXIT_BUSY}
    assert unit.get("Service", "Type") == "oneshot"
    assert unit.get("Service", "ExecStart").endswith("flask --app optscan scan --trigger timer")


def test_services_are_sandboxed() -> None:
    for name in ("optscan-web.service", "optscan-scan.service"):
        service = read_unit(name)["Service"]
        assert service["User"] == "optscan"
        assert service["NoNewPrivileges"] == "yes"
        assert service["ProtectSystem"] == "strict"
        assert service["ReadWritePaths"] == "/var/lib/optscan"
        assert service["EnvironmentFile"] == "/etc/optscan/optscan.env"
    web = read_unit("optscan-web.service")["Service"]
    assert web["Restart"] == "on-failure"
    assert "gunicorn -c /opt/optscan/gunicorn.conf.py wsgi:app" in web["ExecStart"]


def timer_fires(systemd_analyze: str, base: str, iterations: int) -> list[datetime]:
    text = (UNITS / "optscan-scan.timer").read_text()
    expressions = re.findall(r"^OnCalendar=(.+)$", text, flags=re.M)
    assert len(expressions) == 2
    fires: set[datetime] = set()
    for expression in expressions:
        proc = subprocess.run(
            [
                systemd_analyze,
                "calendar",
                f"--iterations={iterations}",
                f"--base-time={base}",
                expression,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\S+ \S+) UTC", proc.stdout):
            fires.add(datetime.fromisoformat(stamp))
    return sorted(fires)


@pytest.mark.parametrize(
    ("base", "day", "first", "last"),
    [
        # Winter (EST, UTC-5): 09:30 ET is 14:30 UTC, 15:45 ET is 20:45 UTC.
        ("2026-11-30 00:00:00 UTC", "2026-11-30", "14:30", "20:45"),
        # Summer (EDT, UTC-4): 09:30 ET is 13:30 UTC, 15:45 ET is 19:45 UTC.
        ("2026-07-06 00:00:00 UTC", "2026-07-06", "13:30", "19:45"),
    ],
)
@pytest.mark.slow
def test_timer_fires_every_15_minutes_of_market_hours_in_new_york(
    systemd_analyze: str, base: str, day: str, first: str, last: str
) -> None:
    fires = [f for f in timer_fires(systemd_analyze, base, 40) if f.date().isoformat() == day]
    # 09:30 to 15:45 inclusive, every 15 minutes: never 16:00, when the market has closed.
    assert len(fires) == 26, fires
    assert fires[0].strftime("%H:%M") == first and fires[-1].strftime("%H:%M") == last
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires)}
    assert gaps == {900.0}


@pytest.mark.slow
def test_every_timer_run_on_a_regular_day_finds_the_market_open(systemd_analyze: str) -> None:
    # A winter and a summer week of regular sessions: no run may land on "closed" (exit 3).
    calendar = MarketCalendar(start=date(2026, 6, 1), end=date(2026, 12, 31))
    for monday in (date(2026, 11, 30), date(2026, 7, 6)):
        week = {monday + timedelta(days=n) for n in range(5)}
        fires = [
            f
            for f in timer_fires(systemd_analyze, f"{monday} 00:00:00 UTC", 26 * 5)
            if f.date() in week
        ]
        closed = [f for f in fires if not calendar.is_market_open(f.replace(tzinfo=UTC))]
        assert len(fires) == 26 * 5 and closed == [], closed


@pytest.mark.slow
def test_timer_is_silent_on_weekends(systemd_analyze: str) -> None:
    fires = timer_fires(systemd_analyze, "2026-11-27 22:00:00 UTC", 30)  # Friday after the close
    assert fires and fires[0].date().isoformat() == "2026-11-30"  # next fire is Monday
    assert all(f.weekday() < 5 for f in fires)
