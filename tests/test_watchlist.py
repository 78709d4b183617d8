"""Check the watchlist: validation, all-or-nothing batches, durability, two writers, upgrades.

Every test that stores something runs on SQLite and, when a server is reachable, PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from optscan.store.sql.database import SchemaTooNew, open_database
from optscan.store.watchlist import (
    DEFAULT_SYMBOLS,
    NOTE_MAX_CHARS,
    Entry,
    InvalidNote,
    InvalidSymbol,
    UnknownSymbol,
    Watchlist,
    normalize_symbol,
    normalize_symbols,
)
from tests.flaskrun import run_python

REPO_ROOT = Path(__file__).resolve().parents[1]
LEGACY_FILE = REPO_ROOT / "tests" / "fixtures" / "watchlist-v1.sqlite3"
FIXED = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    """Return a fixed instant."""
    return FIXED


@pytest.fixture
def wl(database: Path | str) -> Watchlist:
    """Return a fresh, seeded watchlist with a fixed clock."""
    return Watchlist(database, clock=fixed_clock)


def table_names(database: Path | str) -> list[str]:
    """Return the tables in `database` (none when a SQLite file does not exist)."""
    if isinstance(database, Path) and not database.exists():
        return []
    with open_database(database).read() as conn:
        return sorted(sa.inspect(conn).get_table_names())


# A child process gets the database as an argument: a SQLite file's path or a URL.
OPEN_ARGUMENT = """
    from pathlib import Path

    def target(argument: str):
        return argument if "://" in argument else Path(argument)
"""

READ_ENTRIES = (
    OPEN_ARGUMENT
    + """
    import json, sys
    from optscan.store.watchlist import Watchlist
    wl = Watchlist(target(sys.argv[1]))
    print(json.dumps([[e.symbol, e.active, e.note, e.added_at.isoformat()]
                      for e in wl.entries()]))
"""
)


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("aapl", "AAPL"),
        ("  msft\n", "MSFT"),
        ("BRK.B", "BRK.B"),
        ("brk-b", "BRK-B"),
        ("V", "V"),
        ("0700", "0700"),
        ("ABCDEFGHIJ", "ABCDEFGHIJ"),  # exactly 10
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "TOOLONGSYMBOL1",
        "ABCDEFGHIJK",  # 11
        "A B",
        "AAPL;DROP",
        "$AAPL",
        "ÄPPL",
        "ßAPL",  # upper() would make this 'SSAPL', which is ASCII: checked before upper-casing
        "ﬀ",  # the ligature upper-cases to 'FF'
        "١٢٣",  # Arabic-Indic digits are digits to str.isdigit, not to us
        ".A",
        "-A",
        "AA\nPL",
        "AAPL'",
    ],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(InvalidSymbol) as info:
        normalize_symbol(raw)
    assert repr(raw) in str(info.value)
    assert "1-10 characters" in str(info.value)


def test_normalize_refuses_non_text() -> None:
    with pytest.raises(InvalidSymbol):
        normalize_symbol(None)  # type: ignore[arg-type]


def test_normalize_symbols_dedupes_in_order() -> None:
    assert normalize_symbols(["msft", "AAPL", " msft ", "brk.b"]) == ["MSFT", "AAPL", "BRK.B"]
    assert normalize_symbols("nvda") == ["NVDA"]  # a lone string is one symbol, not letters


def test_normalize_symbols_lists_every_invalid_one() -> None:
    with pytest.raises(InvalidSymbol) as info:
        normalize_symbols(["AAPL", "A B", "MSFT", "$X", ""])
    assert info.value.symbols == ["A B", "$X", ""]
    message = str(info.value)
    assert "'A B'" in message and "'$X'" in message and "''" in message
    assert "'AAPL'" not in message


# --- seeding --------------------------------------------------------------------------------


def test_seeds_defaults_on_creation(wl: Watchlist) -> None:
    assert wl.active_symbols() == sorted(DEFAULT_SYMBOLS)
    assert all(e.active and e.note == "" and e.added_at == FIXED for e in wl.entries())


def test_seeds_once_and_not_after_emptying(database: Path | str) -> None:
    first = Watchlist(database)
    assert first.remove(list(DEFAULT_SYMBOLS)) == list(DEFAULT_SYMBOLS)
    assert first.entries() == []
    again = Watchlist(database)
    assert again.entries() == []
    assert Watchlist(database, seed=["ZZZ"]).entries() == []  # a different seed is ignored too


def test_custom_seed_and_reopen_does_not_duplicate(database: Path | str) -> None:
    Watchlist(database, seed=["spy", "qqq", "SPY"])
    Watchlist(database, seed=["spy", "qqq"]).add(["IWM"])
    assert Watchlist(database).active_symbols() == ["IWM", "QQQ", "SPY"]


def test_invalid_seed_refused_and_creates_nothing(database: Path | str) -> None:
    with pytest.raises(InvalidSymbol):
        Watchlist(database, seed=["AAPL", "BAD SEED"])
    assert table_names(database) == []
    if isinstance(database, Path):
        assert not database.exists()


# --- editing --------------------------------------------------------------------------------


def test_add_returns_only_new_and_leaves_existing_untouched(wl: Watchlist) -> None:
    wl.set_note("AAPL", "core")
    wl.set_active(["AAPL"], False)
    assert wl.add(["aapl", "tsla", "brk.b", "TSLA"], note="  new  ") == ["TSLA", "BRK.B"]
    by_symbol = {e.symbol: e for e in wl.entries()}
    assert by_symbol["AAPL"] == Entry("AAPL", active=False, note="core", added_at=FIXED)
    assert by_symbol["TSLA"] == Entry("TSLA", active=True, note="new", added_at=FIXED)
    assert "BRK.B" in wl.active_symbols()
    assert [e.symbol for e in wl.entries()] == sorted(by_symbol)


def test_batch_with_one_bad_symbol_changes_nothing(wl: Watchlist) -> None:
    before = wl.entries()
    with pytest.raises(InvalidSymbol, match="AAPL;DROP"):
        wl.add(["TSLA", "AAPL;DROP", "AMD"])
    with pytest.raises(InvalidSymbol):
        wl.remove(["AAPL", "$AAPL"])
    with pytest.raises(InvalidSymbol):
        wl.set_active(["AAPL", "A B"], False)
    assert wl.entries() == before


def test_remove_unknown_changes_nothing(wl: Watchlist) -> None:
    before = wl.entries()
    with pytest.raises(UnknownSymbol) as info:
        wl.remove(["AAPL", "ZZZZ", "msft", "QQQQ"])
    assert isinstance(info.value, KeyError)
    assert info.value.symbols == ["ZZZZ", "QQQQ"]
    assert str(info.value) == "not on the watchlist: symbols ZZZZ, QQQQ"
    assert wl.entries() == before
    assert wl.remove(["aapl", "MSFT"]) == ["AAPL", "MSFT"]
    assert "AAPL" not in wl.active_symbols() and "MSFT" not in wl.active_symbols()


def test_set_active_unknown_changes_nothing(wl: Watchlist) -> None:
    with pytest.raises(UnknownSymbol, match="NOPE"):
        wl.set_active(["AAPL", "NOPE"], False)
    assert "AAPL" in wl.active_symbols()


def test_set_active_reports_changes(wl: Watchlist) -> None:
    assert wl.set_active(["AAPL", "MSFT"], False) == ["AAPL", "MSFT"]
    assert wl.set_active(["AAPL", "NVDA"], False) == ["NVDA"]  # AAPL was already inactive
    active = wl.active_symbols()
    assert not {"AAPL", "MSFT", "NVDA"} & set(active)
    assert len(active) == len(DEFAULT_SYMBOLS) - 3
    assert len(wl.entries()) == len(DEFAULT_SYMBOLS)
    assert wl.set_active("aapl", True) == ["AAPL"]


def test_notes(wl: Watchlist) -> None:
    wl.set_note("aapl", "  earnings 29 Jan  ")
    assert next(e for e in wl.entries() if e.symbol == "AAPL").note == "earnings 29 Jan"
    wl.set_note("AAPL", "x" * NOTE_MAX_CHARS)
    with pytest.raises(InvalidNote, match=f"limit is {NOTE_MAX_CHARS}"):
        wl.set_note("AAPL", "x" * (NOTE_MAX_CHARS + 1))
    with pytest.raises(InvalidNote):
        wl.set_note("AAPL", "two\nlines")
    with pytest.raises(InvalidNote):
        wl.add(["TSLA"], note="y" * (NOTE_MAX_CHARS + 1))
    assert "TSLA" not in wl.active_symbols()
    with pytest.raises(UnknownSymbol):
        wl.set_note("TSLA", "hi")
    assert next(e for e in wl.entries() if e.symbol == "AAPL").note == "x" * NOTE_MAX_CHARS


# --- durability and concurrency -------------------------------------------------------------


@pytest.mark.slow
def test_survives_a_new_process(database: Path | str) -> None:
    wl = Watchlist(database, clock=fixed_clock)
    wl.add(["TSLA"], note="added before restart")
    wl.set_active(["AAPL"], False)
    wl.remove(["V"])
    expected = [[e.symbol, e.active, e.note, e.added_at.isoformat()] for e in wl.entries()]
    out = run_python(READ_ENTRIES, str(database), check=True).stdout
    assert json.loads(out) == expected
    assert ["TSLA", True, "added before restart", FIXED.isoformat()] in expected
    assert not any(row[0] == "V" for row in expected)


def start_children(code: str, argvs: list[list[str]]) -> list[subprocess.Popen[str]]:
    """Start one fresh interpreter per argv running `code`, with optscan importable."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]


def finish_children(procs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    """Reap every child (killing any still running at the deadline); fail with their stderr."""
    deadline = time.monotonic() + timeout
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(f"child exited {proc.returncode}:\n{err}")
    assert not errors, "\n".join(errors)


# Children wait at barriers of marker files so that they really act at the same moment
# (interpreter start-up takes far longer than the work), and give up if a peer died.
BARRIER = """
    import sys, time
    from pathlib import Path

    def wait_for(test, what: str) -> None:
        deadline = time.monotonic() + 120  # a hang guard: a peer that died never arrives
        while not test():
            if time.monotonic() > deadline:
                sys.exit(f"gave up waiting for {what}")
            time.sleep(0.0005)

    def barrier(folder: Path, name: str, me: str, count: int) -> None:
        (folder / f"{name}-{me}").touch()
        wait_for(lambda: len(list(folder.glob(f"{name}-*"))) >= count, f"peers at {name}")
"""

OPENER = (
    BARRIER
    + OPEN_ARGUMENT
    + """
    from optscan.store.watchlist import Watchlist

    database, folder, me = target(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    (folder / f"ready-{me}").touch()
    go = folder / "go"
    wait_for(go.exists, "go")  # a single stat per poll, so all start within about 1 ms
    Watchlist(database).add([me])
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_processes_creating_the_same_new_file_at_once(
    database: Path | str, tmp_path: Path, attempt: int
) -> None:
    # Two processes switching the same new file to WAL can deadlock on its lock; sqlite then
    # answers "database is locked" at once, without waiting, so creation must retry. Without
    # the retry each attempt failed about one time in three (6 processes, 2 cores). On
    # PostgreSQL, concurrent CREATE TABLEs of one name fail unless migrations are serialised.
    names = [f"X{i}" for i in range(6)]
    procs = start_children(OPENER, [[str(database), str(tmp_path), name] for name in names])
    deadline = time.monotonic() + 120  # a hang guard
    while len(list(tmp_path.glob("ready-*"))) < len(names) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # let the last one reach its poll loop
    (tmp_path / "go").touch()
    finish_children(procs)
    assert {e.symbol for e in Watchlist(database).entries()} == set(DEFAULT_SYMBOLS) | set(names)


WRITER = (
    BARRIER
    + OPEN_ARGUMENT
    + """
    from optscan.store.watchlist import Watchlist

    database, folder = target(sys.argv[1]), Path(sys.argv[2])
    prefix, n = sys.argv[3], int(sys.argv[4])
    barrier(folder, "open", prefix, 2)  # both create the brand-new database at once
    wl = Watchlist(database)
    for i in range(n):
        if i % 10 == 0:  # then both edit at once, meeting every 10 edits
            barrier(folder, f"edit{i}", prefix, 2)
        symbol = f"{prefix}{i}"
        wl.add([symbol], note=f"{prefix} note {i}")
        if i % 3 == 0:
            wl.set_active([symbol], False)
        wl.set_active(["AAPL"], i % 2 == 0)  # a row both processes keep toggling
        # Pause as a real client would between edits: without it the writer holding the lock
        # re-takes it before the other wakes from sqlite's busy back-off, and runs in bursts.
        time.sleep(0.002)
"""
)


@pytest.mark.slow
def test_two_processes_editing_at_once_lose_nothing(database: Path | str, tmp_path: Path) -> None:
    # With a plain (deferred) BEGIN instead of BEGIN IMMEDIATE, or without a busy timeout, a
    # child dies here with "database is locked" (checked by hand on every run tried).
    n = 200
    argvs = [[str(database), str(tmp_path), prefix, str(n)] for prefix in ("PA", "PB")]
    finish_children(start_children(WRITER, argvs))

    entries = {e.symbol: e for e in Watchlist(database).entries()}
    added = {f"{p}{i}" for p in ("PA", "PB") for i in range(n)}
    assert set(entries) == set(DEFAULT_SYMBOLS) | added
    for prefix in ("PA", "PB"):
        for i in range(n):
            entry = entries[f"{prefix}{i}"]
            assert entry.note == f"{prefix} note {i}"
            assert entry.active == (i % 3 != 0), entry
    # Both ended on i = n - 1 (odd): AAPL deactivated.
    assert not entries["AAPL"].active
    # The writers really interleaved: added_at is stamped inside each write transaction, so
    # ordering by it replays the order the lock was granted. Two sequential runs would switch
    # owner once; meeting every 10 edits, both write in each of the 20 rounds, so the owner
    # switches at least once a round, however the machine schedules them (measured: 350-390).
    order = [e.symbol[:2] for e in sorted(entries.values(), key=lambda e: e.added_at)]
    order = [p for p in order if p in ("PA", "PB")]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches >= 20, f"writers ran mostly one after the other ({switches} switches)"


def test_a_lazy_watchlist_opens_on_first_use(database: Path | str) -> None:
    wl = Watchlist(database, seed=["SPY"], lazy=True)
    assert table_names(database) == []
    assert wl.active_symbols() == ["SPY"]
    assert "watchlist" in table_names(database)


def test_wal_mode_is_on(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    wl = Watchlist(tmp_path / "watchlist.sqlite3")
    assert wl.database.path == (tmp_path / "watchlist.sqlite3").resolve()
    with closing(sqlite3.connect(wl.database.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- schema versions ------------------------------------------------------------------------


def test_a_file_of_the_unversioned_sqlite3_code_is_upgraded_in_place(tmp_path: Path) -> None:
    # tests/fixtures/watchlist-v1.md says how the old code made this file.
    path = tmp_path / "watchlist.sqlite3"
    shutil.copyfile(LEGACY_FILE, path)
    seeded, later = "2026-11-20T14:31:00.123457+00:00", "2026-11-20T14:32:00.246914+00:00"
    expected = [
        [symbol, symbol != "AAPL", "earnings 28 Jan — watch" if symbol == "MSFT" else "", seeded]
        for symbol in DEFAULT_SYMBOLS
        if symbol not in ("V", "UBER")
    ] + [["TSLA", True, "added later", later], ["BRK.B", False, "added later", later]]

    def rows(wl: Watchlist) -> list[list[object]]:
        return [[e.symbol, e.active, e.note, e.added_at.isoformat()] for e in wl.entries()]

    wl = Watchlist(path, seed=["ZZZ"], clock=fixed_clock)
    assert rows(wl) == sorted(expected)  # nothing lost, and not seeded a second time
    assert table_names(path) == ["optscan_schema", "watchlist", "watchlist_meta"]
    with wl.database.read() as conn:
        meta = dict(conn.execute(sa.text("SELECT key, value FROM watchlist_meta")).all())
        versions = conn.execute(sa.text("SELECT component, version FROM optscan_schema")).all()
    assert meta == {"seeded_at": seeded}
    assert versions == [("watchlist", 1)]
    # It works as a new one does, in this process and the next.
    assert wl.remove(["aapl"]) == ["AAPL"]
    assert wl.add(["IBM"]) == ["IBM"]
    assert json.loads(run_python(READ_ENTRIES, str(path), check=True).stdout) == rows(wl)


def test_a_database_of_a_newer_optscan_is_refused_unchanged(database: Path | str) -> None:
    Watchlist(database, clock=fixed_clock).add(["IBM"])
    with open_database(database).write("test") as conn:
        conn.execute(sa.text("UPDATE optscan_schema SET version = 7 WHERE component = 'watchlist'"))
    with pytest.raises(SchemaTooNew, match="version 7 of the watchlist schema"):
        Watchlist(database)
    with open_database(database).read() as conn:
        assert conn.execute(sa.text("SELECT version FROM optscan_schema")).scalar() == 7
        assert conn.execute(sa.text("SELECT count(*) FROM watchlist")).scalar() == 27
