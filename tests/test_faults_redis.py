"""Restart Redis mid-scan and mid-stream, on a Redis server of this test's own.

The scan must end cleanly (completed, or failed/interrupted with a plain message), pages during
the outage say in words that Redis is down, browsers following /stream get events again soon
after Redis is back (reconnecting as EventSource does when the stream ends), and the watchlist,
which lives in sqlite, is untouched. Two restarts: with the append-only file the embedded
server uses (data survives) and without persistence (Redis comes back empty).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from optscan.store.events import ScanEvents, event_id_key
from optscan.store.watchlist import Watchlist
from tests.faults import (
    FETCH,
    BrowserStream,
    RedisServer,
    alias_names,
    answers,
    post_scan,
    request,
    scan_status,
    server_env,
    session_and_token,
    wait_for,
)
from tests.replaydirs import build_replay_dir
from tests.servers import gunicorn_server
from tests.yahoo_emulator import YahooEmulator

pytestmark = pytest.mark.slow

SYMBOLS = alias_names("R", 12)
PREFIX = "optscan:"
LATENCY_S = 0.1  # per Yahoo answer: 5 answers per symbol, one at a time -> >= 0.5 s per symbol
HELD_TAIL = r"/R(09|10|11)$"  # the last symbols wait at Yahoo until Redis is back
OUTAGE_S = 3.0  # at the least: longer if the page opened during the outage is slow to be told
# Browsers must see events again after Redis is back: they reconnect 3 s after a stream ends.
RECONNECT_GUARD_S = 30.0
HANG_GUARD_S = 120.0  # for what must happen: only a hang guard
MESSAGE = re.compile(
    r"^(Scanned \d+ of \d+ symbols in|Scan interrupted after \d+ of \d+ symbols|Scan failed: )"
)


def _ended(base, before: str | None) -> dict | None:
    found = answers(base)
    if found is None or found.status != 200:
        return None
    status = found.json()
    attempt = status["last_attempt"]["put"]
    if status["running"] or attempt is None or attempt["finished_at"] == before:
        return None
    return status


@pytest.mark.parametrize("persist", [True, False], ids=["aof", "empty"])
def test_redis_restart_mid_scan_and_mid_stream(
    tmp_path: Path, instance_path: Path, persist: bool
) -> None:
    recordings = build_replay_dir(tmp_path / "replay", "aapl")
    watchlist = Watchlist(instance_path / "watchlist.sqlite3", seed=SYMBOLS)
    watchlist_before = watchlist.entries()
    figures: dict[str, object] = {"persist": persist}
    with (
        RedisServer(persist=persist) as server,
        YahooEmulator(recordings, aliases=dict.fromkeys(SYMBOLS, "AAPL")) as yahoo,
    ):
        env = server_env(
            OPTSCAN_INSTANCE_PATH=str(instance_path),
            REDIS_URL=server.url,
            OPTSCAN_REDIS_PREFIX=PREFIX,
            OPTSCAN_SOURCE=f"yahoo:{yahoo.base_url}",
            OPTSCAN_SCAN_CONCURRENCY="1",
            OPTSCAN_SSE_HEARTBEAT_SECONDS="1",
            # Renewed every 10/3 s: a lock lost with the data is noticed within that.
            OPTSCAN_LOCK_TTL_SECONDS="10",
            OPTSCAN_FETCH_TIMEOUT_SECONDS="120",  # held answers must not time out
        )
        with gunicorn_server(env, workers=1) as url:
            assert post_scan(url).status == 202
            good = wait_for(lambda: _ended(url, None), HANG_GUARD_S, "the first scan to complete")
            good_finished = good["last"]["put"]["finished_at"]
            cookie, token = session_and_token(url)

            streams = [BrowserStream(url), BrowserStream(url)]
            for stream in streams:
                stream.start()
            wait_for(lambda: all(s.bytes_at for s in streams), HANG_GUARD_S, "the streams to open")

            # The scan goes on during the outage, but cannot end before Redis is back.
            yahoo.latency = LATENCY_S
            tail = yahoo.hold(HELD_TAIL)
            assert post_scan(url).status == 202
            wait_for(
                lambda: ((scan_status(url)["progress"] or {}).get("index") or 0) >= 3,
                HANG_GUARD_S,
                "three symbols of the slow scan",
            )

            # Redis goes away mid-scan, with two streams open.
            server.stop()
            down_at = time.monotonic()
            # A page opened during the outage; it retries once Redis is back and the marker
            # below is in the log.
            redis_back = threading.Event()
            late = BrowserStream(url, reconnect_gate=redis_back)
            late.start()
            during = {
                "page": request(url, "GET", "/"),
                "status": request(url, "GET", "/scan/status"),
                "scan": request(
                    url,
                    "POST",
                    "/scan",
                    body=urlencode({"side": "put", "force": "1", "csrf_token": token}),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Cookie": cookie,
                        **FETCH,
                    },
                ),
            }
            # The late page was told while Redis was still down (and will retry).
            wait_for(
                lambda: late.connections and late.connections[0].ended_at is not None,
                HANG_GUARD_S,
                "the page opened during the outage to be answered",
            )
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            server.start()
            back_at = time.monotonic()
            # Another publisher (a `flask scan` elsewhere) speaks first, before this server's
            # subscription is back: the open streams must still get it, from the log.
            marker = ScanEvents(server.client(), PREFIX).publish("progress", {"marker": "back"})
            redis_back.set()
            tail.release()
            figures["outage_s"] = back_at - down_at
            streams.append(late)

            ended = wait_for(lambda: _ended(url, good_finished), HANG_GUARD_S, "the scan to end")
            ended_at = time.monotonic()
            log_now = ScanEvents(server.client(), PREFIX)
            wait_for(
                lambda: all(
                    log_now.logged()[-1].id in {e.id for e in stream.events} for stream in streams
                ),
                HANG_GUARD_S,
                "the last event to reach every stream",
            )
            for stream in streams:
                stream.stop()
            final_page = request(url, "GET", "/")

            # A scan can start again once Redis is back.
            yahoo.latency = 0.0
            again = post_scan(url)
            assert again.status == 202, again.text[:1000]
            previous = ended["last_attempt"]["put"]["finished_at"]
            wait_for(lambda: _ended(url, previous), HANG_GUARD_S, "a scan after the restart")
            events = ScanEvents(server.client(), PREFIX).logged()
            log = url.log()

    # During the outage: plain words and the right status, never a traceback.
    assert during["page"].status == 503 and "Redis is unavailable" in during["page"].text
    assert during["status"].status == 503
    assert "Redis is unavailable" in during["status"].json()["error"]
    assert during["scan"].status == 503 and "Redis is unavailable" in during["scan"].text
    for answer in (*during.values(), final_page):
        assert "Traceback" not in answer.text and "redis.exceptions" not in answer.text

    # The scan ended with a plain message, stored as the last attempt.
    attempt = ended["last_attempt"]["put"]
    assert MESSAGE.match(attempt["message"]), attempt["message"]
    assert final_page.status == 200
    if not attempt["success"]:
        assert "a later attempt" in final_page.text or "was interrupted" in final_page.text
    figures["scan_outcome"] = attempt["message"]
    figures["scan_ended_after_back_s"] = ended_at - back_at

    # Every stream answered as a browser expects and got events again soon after Redis was back.
    missed: dict[int, list[tuple[str, str]]] = {}
    for n, stream in enumerate(streams):
        assert stream.failed is None, (n, stream.failed)
        assert all(c.status == 200 for c in stream.connections), (n, stream.connections)
        after = stream.events_after(back_at)
        assert after, f"stream {n} got no event after Redis came back"
        first = after[0].at - back_at
        assert first <= RECONNECT_GUARD_S, (n, first)
        figures[f"stream{n}_first_event_after_back_s"] = first
        figures[f"stream{n}_connections"] = len(stream.connections)
        # Nothing the log holds from the stream's first event on (up to the later scan, when
        # the streams were closed) was missed.
        received = {e.id for e in stream.events if e.id}
        if received:
            first_seen = min(received, key=event_id_key)
            later = [e.id for e in events if e.type == "scan-started"][-1]
            missed[n] = [
                (e.id, e.type)
                for e in events
                if event_id_key(first_seen) < event_id_key(e.id) < event_id_key(later)
                and e.id not in received
            ]
    # The page opened during the outage was told to retry, and did.
    assert len(late.connections) >= 2
    assert late.connections[0].ended_by == "eof"

    # The watchlist lives in sqlite: untouched by the outage.
    assert Watchlist(instance_path / "watchlist.sqlite3", seed=()).entries() == watchlist_before
    figures["log_tracebacks"] = log.count("Traceback")
    figures["log_redis_warnings"] = len(re.findall(r"(?i)redis", log))
    figures["missed_events"] = {n: len(found) for n, found in missed.items()}
    figures["marker_received"] = [any(e.id == marker for e in s.events) for s in streams]
    shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print("\nRedis restart:", json.dumps(shown))
    # A stream that stayed open is replayed what it missed once its subscription is back.
    assert not any(missed.values()), f"events in the log a stream never got: {missed}"
    assert figures["marker_received"][:2] == [True, True]
    # Last, so that everything above is checked first: a scan refused for want of Redis says
    # so in the words of POST /scan, not those of a page that cannot be shown.
    assert "no scan can start" in during["scan"].text, during["scan"].text
