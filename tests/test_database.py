"""Check the SQL data layer: migrations, the database setting, and hosts sharing one database."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from optscan.config import ConfigError, default_config, load_settings
from optscan.store.sql.database import Migration, SchemaTooNew, open_database
from tests import faults
from tests.databases import database_target
from tests.servers import BaseURL, gunicorn_server

# --- migrations -----------------------------------------------------------------------------


def recording(log: list[str], name: str, statement: str) -> Migration:
    """Return a step that runs `statement` and notes that it ran."""

    def step(conn: Connection) -> None:
        log.append(name)
        conn.execute(sa.text(statement))

    return step


def tables(database: Path | str) -> list[str]:
    """Return the tables in `database`."""
    with open_database(database).read() as conn:
        return sorted(sa.inspect(conn).get_table_names())


def test_each_step_runs_once_in_order_and_later_steps_extend(database: Path | str) -> None:
    db = open_database(database)
    log: list[str] = []
    first = [
        recording(log, "v1", "CREATE TABLE things (name TEXT PRIMARY KEY)"),
        recording(log, "v2", "ALTER TABLE things ADD COLUMN size INTEGER"),
    ]
    db.migrate("things", first)
    db.migrate("things", first)
    assert log == ["v1", "v2"]
    with db.write("things") as conn:
        conn.execute(sa.text("INSERT INTO things (name, size) VALUES ('a', 1)"))
    # A later release adds a step: only it runs, on the data already there.
    db.migrate("things", [*first, recording(log, "v3", "UPDATE things SET size = size + 1")])
    assert log == ["v1", "v2", "v3"]
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT name, size FROM things")).all() == [("a", 2)]
        versions = conn.execute(sa.text("SELECT component, version FROM optscan_schema")).all()
    assert versions == [("things", 3)]


def test_a_failing_step_leaves_the_schema_as_it_was(database: Path | str) -> None:
    db = open_database(database)
    log: list[str] = []
    v1 = recording(log, "v1", "CREATE TABLE things (name TEXT PRIMARY KEY)")
    db.migrate("things", [v1])
    broken = [
        v1,
        recording(log, "v2", "CREATE TABLE more_things (name TEXT)"),
        recording(log, "v3", "ALTER TABLE no_such_table ADD COLUMN x INTEGER"),
    ]
    with pytest.raises(sa.exc.DBAPIError):
        db.migrate("things", broken)
    assert log == ["v1", "v2", "v3"]
    # v2's table is rolled back with v3 (DDL is transactional in SQLite and PostgreSQL).
    assert tables(database) == ["optscan_schema", "things"]
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT version FROM optscan_schema")).scalar() == 1


def test_components_keep_their_own_versions(database: Path | str) -> None:
    db = open_database(database)
    db.migrate("one", [recording([], "a", "CREATE TABLE one_t (x INTEGER)")])
    db.migrate("two", [recording([], "b", "CREATE TABLE two_t (x INTEGER)")])
    with pytest.raises(SchemaTooNew, match="version 1 of the one schema"):
        db.migrate("one", [])
    with db.read() as conn:
        rows = conn.execute(sa.text("SELECT component, version FROM optscan_schema")).all()
    assert sorted(rows) == [("one", 1), ("two", 1)]


# --- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("postgres://u:p@db.internal/optscan", "postgresql+psycopg://u:p@db.internal/optscan"),
        ("postgresql://db.internal:5433/optscan", "postgresql+psycopg://db.internal:5433/optscan"),
        (
            "postgresql+psycopg:///optscan?host=/run/pg",
            "postgresql+psycopg:///optscan?host=/run/pg",
        ),
        ("sqlite:////var/lib/optscan/all.sqlite3", "sqlite:////var/lib/optscan/all.sqlite3"),
    ],
)
def test_database_url_is_checked_and_names_the_driver(raw: str | None, expected: str) -> None:
    config = {**default_config(), "DATABASE_URL": raw}
    assert load_settings(config).database_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u:secret@h/db",
        "sqlite:///relative.sqlite3",
        "db.internal:5432",
        "postgresql+psycopg2://u:secret@h/d",
    ],
)
def test_a_bad_database_url_is_refused_without_echoing_it(raw: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL must be a postgresql://") as info:
        load_settings({**default_config(), "DATABASE_URL": raw})
    assert "secret" not in str(info.value)


def test_the_environment_names_the_database(
    monkeypatch: pytest.MonkeyPatch, instance_path: Path
) -> None:
    from optscan import create_app

    def chosen() -> Path | str:
        app = create_app({"INSTANCE_PATH": str(instance_path), "TESTING": True})
        return app.extensions["optscan"].database("watchlist")

    assert chosen() == instance_path / "watchlist.sqlite3"
    monkeypatch.setenv("DATABASE_URL", "postgres://general@db/optscan")
    assert chosen() == "postgresql+psycopg://general@db/optscan"
    monkeypatch.setenv("OPTSCAN_DATABASE_URL", "postgresql://specific@db/optscan")
    assert chosen() == "postgresql+psycopg://specific@db/optscan"


# --- several hosts --------------------------------------------------------------------------


def watchlist_symbols(host: BaseURL) -> set[str]:
    """Return the symbols the host's watchlist page lists."""
    answer = faults.request(host, "GET", "/watchlist")
    assert answer.status == 200
    return set(re.findall(r'<tr data-symbol="([^"]+)"', answer.text))


def edit(host: BaseURL, action: str, **form: str) -> None:
    """Post one watchlist form to the host as its page would."""
    cookie, token = faults.session_and_token(host)
    body = urlencode({**form, "csrf_token": token})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    answer = faults.request(host, "POST", f"/watchlist/{action}", body=body, headers=headers)
    assert answer.status == 303, answer.text


@pytest.mark.slow
def test_two_web_hosts_on_one_redis_and_one_postgresql_share_the_watchlist(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    database = database_target("postgresql", tmp_path, request)
    shared = {
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": database,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        gunicorn_server({**shared, "OPTSCAN_INSTANCE_PATH": str(tmp_path / "a")}) as host_a,
        gunicorn_server({**shared, "OPTSCAN_INSTANCE_PATH": str(tmp_path / "b")}) as host_b,
    ):
        seeded = watchlist_symbols(host_a)
        assert len(seeded) == 26
        assert watchlist_symbols(host_b) == seeded  # seeded once, by whichever came first
        edit(host_a, "add", symbols="IBM, BRK.B", note="from host a")
        assert watchlist_symbols(host_b) == seeded | {"IBM", "BRK.B"}
        edit(host_b, "remove", symbol="IBM")
        assert watchlist_symbols(host_a) == seeded | {"BRK.B"}
    # Neither host wrote a watchlist file of its own.
    assert not list(tmp_path.glob("*/watchlist.sqlite3"))
