"""LiveScan against a real Redis: events, their order and payloads, the snapshot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from optscan.core.scan import ScanResult, SymbolReport, perform_scan
from optscan.jobs.live import STATUS_DONE, LiveScan
from optscan.store.events import ScanEvents
from tests.clocks import FrozenClock
from tests.replaydirs import build_replay_dir

T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


class Ticks:
    """A monotonic clock that returns the given readings in turn, then repeats the last."""

    def __init__(self, *readings: float):
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


@pytest.fixture
def events(redis_client: redis.Redis, redis_prefix: str) -> ScanEvents:
    return ScanEvents(redis_client, redis_prefix)


def all_events(events: ScanEvents, redis_client: redis.Redis) -> list:
    """Return every event in the log: the first read directly, the rest through since()."""
    first = redis_client.xrange(events.log_key, count=1)
    assert first, "nothing was published"
    first_id = first[0][0]
    head = {"id": first_id, "type": first[0][1]["type"]}
    return [head] + [{"id": e.id, "type": e.type, "data": e.data} for e in events.since(first_id)]


def make_live(events: ScanEvents, **kwargs) -> LiveScan:
    options = {
        "scan_id": "scan-1",
        "trigger": "web",
        "side": "put",
        "clock": FrozenClock(T0),
        "monotonic": Ticks(100.0),
    }
    options.update(kwargs)
    return LiveScan(events, **options)


def match(symbol: str, contract: str, annualized: float) -> dict:
    return {"symbol": symbol, "contract": contract, "annualized_return": annualized}


def test_started_publishes_and_snapshots_the_scan(events: ScanEvents) -> None:
    live = make_live(events)
    event_id = live.started(["AAPL", "MSFT", "NVDA"])
    assert event_id is not None and events.last_id() == event_id
    state = events.get_state()
    assert state["status"] == "running" and state["scan_id"] == "scan-1"
    assert state["symbols"] == ["AAPL", "MSFT", "NVDA"] and state["total"] == 3
    assert state["index"] == 0 and state["done"] == {} and state["last_event_id"] == event_id
    assert "rows" not in state  # rows live in their own events and on the board, once
    assert state["started_at"] == T0.isoformat()


def test_progress_order_payloads_and_eta(events: ScanEvents, redis_client: redis.Redis) -> None:
    # started at t=100 s; the first symbol ends at t=102 s, the second at t=106 s.
    live = make_live(events, monotonic=Ticks(100.0, 102.0, 106.0))
    live.started(["AAPL", "MSFT", "NVDA"])
    first = [match("AAPL", "AAPL1", 40.0), match("AAPL", "AAPL2", 35.0)]
    live.progress(1, 3, "AAPL", first, SymbolReport(status="ok", price=230.5, as_of="t1"))
    live.progress(2, 3, "MSFT", [], SymbolReport(status="rate_limited", error="HTTP 429"))

    log = all_events(events, redis_client)
    assert [e["type"] for e in log] == [
        "scan-started", "symbol-done", "progress", "symbol-done", "progress",
    ]  # fmt: skip
    done1, progress1, done2, progress2 = (e["data"] for e in log[1:])
    assert done1["symbol"] == "AAPL" and done1["status"] == "ok" and done1["count"] == 2
    assert "error" not in done1
    assert done1["rows"] == first and done1["spot"] == 230.5 and done1["as_of"] == "t1"
    assert done2 == {
        "symbol": "MSFT", "index": 2, "status": "rate_limited", "error": "HTTP 429",
        "count": 0, "rows": [], "spot": None, "as_of": None, "near_iv": None,
        "earnings_date": None, "shares": None, "cost_basis": None, "top": None, "side": "put",
    }  # fmt: skip
    # ETA: mean seconds per symbol so far times the symbols left.
    assert progress1 == {
        "index": 1, "total": 3, "symbol": "AAPL", "matches_so_far": 2, "failed_so_far": 0,
        "elapsed_s": 2.0, "eta_s": 2.0 / 1 * 2,
    }  # fmt: skip
    assert progress2["elapsed_s"] == 6.0 and progress2["eta_s"] == 6.0 / 2 * 1
    assert progress2["matches_so_far"] == 2 and progress2["failed_so_far"] == 1

    state = events.get_state()
    assert state["index"] == 2 and state["symbol"] == "MSFT"
    assert state["matches_so_far"] == 2 and state["failed_so_far"] == 1
    assert state["done"]["MSFT"] == {"index": 2, "status": "rate_limited", "error": "HTTP 429",
                                     "count": 0}  # fmt: skip
    # The snapshot names the last event it includes, so a page can follow on from there.
    assert state["last_event_id"] == log[-1]["id"] == events.last_id()


def test_a_progress_callback_without_report_says_done(events: ScanEvents, redis_client) -> None:
    live = make_live(events)
    live.started(["AAPL"])
    live.progress(1, 1, "AAPL", [])  # perform_scan's four-argument callback
    done = [e for e in all_events(events, redis_client) if e["type"] == "symbol-done"]
    assert done[0]["data"]["status"] == STATUS_DONE


def test_each_symbols_rows_are_encoded_once(events: ScanEvents, redis_client) -> None:
    # The snapshot stays the same size however many rows the scan finds: nothing is
    # re-encoded per symbol (a 200-symbol scan once rewrote every row after each symbol).
    live = make_live(events)
    live.started([f"S{i}" for i in range(30)])
    sizes = []
    for i in range(30):
        rows = [match(f"S{i}", f"S{i}C{n}", 40.0) for n in range(50)]
        live.progress(i + 1, 30, f"S{i}", rows, SymbolReport(status="ok"))
        sizes.append(len(redis_client.get(events.state_key)))
    assert sizes[-1] - sizes[0] < 30 * 60  # the "done" entries only, ~50 bytes a symbol
    done = [e for e in all_events(events, redis_client) if e["type"] == "symbol-done"]
    assert [len(e["data"]["rows"]) for e in done] == [50] * 30


def _result(success: bool, message: str, **kwargs) -> ScanResult:
    return ScanResult(
        success=success,
        message=message,
        side="put",
        trigger="web",
        started_at=T0,
        finished_at=T0,
        rules="r",
        **kwargs,
    )


def test_finished_publishes_the_summary_and_marks_the_snapshot(events, redis_client) -> None:
    live = make_live(events)
    live.started(["AAPL", "BAD"])
    result = _result(
        True,
        "Scanned 1 of 2 symbols",
        symbols={
            "AAPL": SymbolReport(status="ok", contracts=10, matches=1),
            "BAD": SymbolReport(status="no_options", error="no options listed"),
        },
        matches=[match("AAPL", "P1", 40.0)],
    )
    live.finished(result)
    last = all_events(events, redis_client)[-1]
    assert last["type"] == "scan-finished"
    assert last["data"]["success"] is True and last["data"]["message"] == "Scanned 1 of 2 symbols"
    assert last["data"]["counts"] == {
        "symbols": 2, "scanned": 1, "failed": 1, "contracts": 10, "matches": 1,
    }  # fmt: skip
    assert last["data"]["failed"] == {"BAD": "no options listed"}
    assert last["data"]["finished_at"] == T0.isoformat()
    state = events.get_state()
    assert state["status"] == "finished" and "rows" not in state
    assert state["last_event_id"] == last["id"]


def test_an_unsuccessful_result_is_a_scan_failed_event(events, redis_client) -> None:
    live = make_live(events)
    live.started(["ZZZZ"])
    message = "Scan failed: none of the 1 symbols could be scanned"
    live.finished(
        _result(False, message, symbols={"ZZZZ": SymbolReport(status="error", error="unknown")})
    )
    last = all_events(events, redis_client)[-1]
    assert last["type"] == "scan-failed" and last["data"]["reason"] == message
    assert last["data"]["interrupted"] is False
    assert events.get_state()["status"] == "failed"


def test_failed_publishes_the_reason(events, redis_client) -> None:
    live = make_live(events)
    live.started(["AAPL"])
    live.failed("The scan stopped because of an internal error.")
    last = all_events(events, redis_client)[-1]
    assert last["type"] == "scan-failed"
    assert last["data"]["reason"] == "The scan stopped because of an internal error."
    assert events.get_state()["status"] == "failed"


def test_a_dead_redis_never_stops_the_scan() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    live = make_live(ScanEvents(dead, "optscan-test:dead:"))
    assert live.started(["AAPL"]) is None
    live.progress(1, 1, "AAPL", [match("AAPL", "P1", 40.0)])
    live.failed("gone")
    assert live.publish_failures >= 4  # every publish and snapshot failed, none raised
    assert live.last_event_id is None


def test_a_real_scan_publishes_one_symbol_done_per_symbol(
    make_app, events, redis_client, tmp_path: Path
) -> None:
    root = build_replay_dir(tmp_path / "replay", "aapl")
    premarket = build_replay_dir(tmp_path / "premarket", "premarket")
    for symbol in ("GOOG", "BTC-USD"):  # GOOG scans with no match; BTC-USD lists no options
        (premarket / symbol).rename(root / symbol)
    app = make_app(SOURCE=f"replay:{root}", PUT_MIN_RETURN_PCT=5)
    env = app.extensions["optscan"].scan_env()
    live = make_live(events, monotonic=Ticks(0.0))
    symbols = ["AAPL", "BTC-USD", "GOOG"]
    live.started(symbols)
    result = perform_scan(symbols, "put", True, live.progress, env=env, trigger="web")
    live.finished(result)

    log = all_events(events, redis_client)
    kinds = [e["type"] for e in log]
    assert kinds == ["scan-started"] + ["symbol-done", "progress"] * 3 + ["scan-finished"]
    done = {e["data"]["symbol"]: e["data"] for e in log if e["type"] == "symbol-done"}
    assert sorted(done) == symbols  # in the order they finished
    by_symbol = {s: [m for m in result.matches if m["symbol"] == s] for s in symbols}
    assert len(by_symbol["AAPL"]) > 2
    for symbol in symbols:
        assert done[symbol]["count"] == len(by_symbol[symbol])
        assert done[symbol]["rows"] == by_symbol[symbol]
    progress = [e["data"] for e in log if e["type"] == "progress"]
    assert [p["index"] for p in progress] == [1, 2, 3] and {p["total"] for p in progress} == {3}
    assert progress[-1]["matches_so_far"] == len(result.matches)
    assert log[-1]["data"]["failed"] == {"BTC-USD": result.symbols["BTC-USD"].error}


def test_a_scan_completes_and_is_saved_while_events_cannot_be_published(
    make_app, tmp_path: Path
) -> None:
    root = build_replay_dir(tmp_path / "replay", "aapl")
    app = make_app(SOURCE=f"replay:{root}")
    svc = app.extensions["optscan"]
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    live = make_live(ScanEvents(dead, "optscan-test:dead:"))
    live.started(["AAPL"])
    result = perform_scan(["AAPL"], "put", True, live.progress, env=svc.scan_env(), trigger="web")
    live.finished(result)
    assert result.success and result.saved
    assert svc.store.results("put")["matches"] == result.matches
    assert live.publish_failures >= 3
