"""Yahoo unreachable (no DNS, connection refused, a TLS handshake that fails): a scan gives up
after a few connection attempts, reports every symbol `unreachable`, and says why once, in the
scan's message, on the CLI and in the server log, without a traceback.

Counts, never durations: how many connections reached a server that breaks every TLS handshake,
how many requests the source refused without touching the network, and the statuses.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from optscan.core.scan import perform_scan
from optscan.sources.policy import UNREACHABLE_AFTER, FetchPolicy
from optscan.sources.yahoo import YahooSource
from optscan.store.watchlist import Watchlist
from tests.faults import SECRET_KEY, alias_names, post_scan, scan_status, server_env, wait_for
from tests.scanenv import make_scan_env
from tests.servers import free_port, gunicorn_server

SYMBOLS = alias_names("U", 26)
CONCURRENCY = 4
RETRIES = 3  # so each symbol alone would be tried 4 times
QUICK_POLICY = {"max_retries": RETRIES, "backoff_base": 0.01, "backoff_cap": 0.02}


class BrokenTLS:
    """A TCP server that answers every TLS handshake with plain text; counts connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> BrokenTLS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with suppress(OSError), connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def scan(source: YahooSource, tmp_path: Path, concurrency: int) -> dict:
    env = make_scan_env(source, tmp_path / "watchlist.sqlite3", concurrency)
    return perform_scan(SYMBOLS, force=True, env=env).to_dict()


def assert_said_once(result: dict, cause: str) -> None:
    sentence = f"Yahoo Finance could not be reached: {cause}"
    assert {r["status"] for r in result["symbols"].values()} == {"unreachable"}
    assert {r["error"] for r in result["symbols"].values()} == {sentence}
    assert result["success"] is False and result["counts"]["failed"] == len(SYMBOLS)
    assert result["message"].count(sentence) == 1, result["message"]


def test_a_failing_tls_handshake_stops_the_scan_after_a_few_connections(tmp_path: Path) -> None:
    with (
        BrokenTLS() as server,
        YahooSource(
            tmp_path / "cache",
            base_url=f"https://127.0.0.1:{server.port}",
            policy=FetchPolicy(**QUICK_POLICY),  # type: ignore[arg-type]
        ) as source,
    ):
        result = scan(source, tmp_path, CONCURRENCY)
    assert_said_once(result, "TLS handshake with 127.0.0.1 failed")
    # yfinance sends up to 3 requests per attempt (cookie page, consent page, the answer);
    # attempts stop once UNREACHABLE_AFTER failed in a row, the ones under way aside. Asking
    # every symbol with its retries would take 26 x 4 attempts.
    assert 0 < server.connections <= 3 * (UNREACHABLE_AFTER + CONCURRENCY - 1)
    assert source.reachability.failures >= UNREACHABLE_AFTER
    print(f"\nTLS failing: {server.connections} connections for {len(SYMBOLS)} symbols")


def test_a_refused_connection_is_counted_and_the_rest_refused_at_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with YahooSource(
        tmp_path / "cache",
        base_url=f"http://127.0.0.1:{port}",
        policy=FetchPolicy(**QUICK_POLICY),  # type: ignore[arg-type]
    ) as source:
        result = scan(source, tmp_path, 1)
    assert_said_once(result, f"could not connect to 127.0.0.1 port {port}")
    # One symbol at a time: the first one's attempts fail UNREACHABLE_AFTER times, and each
    # further symbol is refused at its first request, before it is paced or sent.
    assert source.reachability.failures == UNREACHABLE_AFTER
    assert source.reachability.refused == len(SYMBOLS) - 1


def test_the_cli_names_the_cause_once_on_stderr(make_app) -> None:
    app = make_app(
        SOURCE="yahoo:http://nonexistent.invalid",
        SECRET_KEY=SECRET_KEY,
        YAHOO_BACKOFF_BASE_SECONDS=0.01,
        YAHOO_BACKOFF_CAP_SECONDS=0.02,
    )
    runner = app.test_cli_runner()
    symbols = ",".join(SYMBOLS)
    result = runner.invoke(args=["scan", "--force", "--symbols", symbols])
    assert result.exit_code == 1, result.output
    cause = "Yahoo Finance could not be reached: DNS lookup of nonexistent.invalid failed"
    assert result.stderr.count(cause) == 1, result.stderr
    assert "unreachable" not in result.stderr  # no line per symbol
    assert "Traceback" not in result.stderr
    # yfinance's own lines are folded into the scan's line, never written one per request.
    assert result.stderr.count("continuing without") <= 1

    as_json = runner.invoke(args=["scan", "--force", "--json", "--symbols", symbols])
    assert_said_once(json.loads(as_json.stdout), "DNS lookup of nonexistent.invalid failed")


@pytest.fixture
def unreachable_server(instance_path: Path, redis_url: str, redis_prefix: str) -> Iterator:
    Watchlist(instance_path / "watchlist.sqlite3", seed=()).add(SYMBOLS)
    port = free_port()
    env = server_env(
        OPTSCAN_INSTANCE_PATH=str(instance_path),
        REDIS_URL=redis_url,
        OPTSCAN_REDIS_PREFIX=redis_prefix,
        OPTSCAN_SOURCE=f"yahoo:http://127.0.0.1:{port}",
    )
    with gunicorn_server(env) as base:
        yield base, port


@pytest.mark.slow
def test_the_web_scan_fails_once_in_the_page_message_and_the_log(unreachable_server) -> None:
    base, port = unreachable_server
    answer = post_scan(base)
    assert answer.status == 202, answer.text[:500]
    status = wait_for(lambda: (s := scan_status(base))["last_attempt"]["put"] and s, 60, "scan")
    message = status["last_attempt"]["put"]["message"]
    cause = f"Yahoo Finance could not be reached: could not connect to 127.0.0.1 port {port}"
    assert message.count(cause) == 1, message

    def ended() -> str | None:
        # The scan's line is written just after its result is stored.
        text = base.log()
        return text if " failed (" in text else None

    log = wait_for(ended, 10, "the scan's last log line")
    lines = log.splitlines()
    assert sum(" started: 26 symbols, puts, by web" in line for line in lines) == 1
    failed = [line for line in lines if " failed (" in line]
    assert len(failed) == 1 and "0 of 26 symbols scanned, 26 failed" in failed[0]
    assert log.count(cause) == 1
    assert "Traceback" not in log
    assert sum("continuing without" in line for line in lines) <= 1
