"""GET /stream read by a real HTTP client against gunicorn's gevent worker (and Flask's server).

Events are published from this process through ScanEvents, as `flask scan` would. The stream is
decoded with an independent reading of the WHATWG server-sent events algorithm (``dispatch``).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from optscan.config import ConfigError
from optscan.store.events import ScanEvents, event_id_key
from optscan.web import sse, stream
from tests.conftest import private_prefix
from tests.servers import BaseURL, free_port, gunicorn_server

HEARTBEAT = 0.5  # seconds, OPTSCAN_SSE_HEARTBEAT_SECONDS of the servers under test
# Waits for what must come are hang guards only. Those for what the heartbeat drives stay well
# under the default heartbeat (15 s), so that they still tell the configured one is in force.
GUARD_S = 30.0
HEARTBEAT_GUARD_S = 10.0
OPENING = ["retry: 3000", ": optscan scan events"]


def dispatch(text: str) -> list[dict]:
    """Return the events a browser dispatches for this stream text, and the settings it takes."""
    found: list[dict] = []
    data, kind, last_id = "", "", ""
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                found.append({"type": kind or "message", "data": data[:-1], "id": last_id})
            data, kind = "", ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "data":
            data += value + "\n"
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and re.fullmatch(r"[0-9]+", value):
            found.append({"retry": int(value)})
    return found


class SSEClient:
    """Read a text/event-stream over http.client, block by block."""

    def __init__(
        self,
        base: BaseURL,
        target: str = "/stream",
        headers: dict[str, str] | None = None,
        timeout: float = GUARD_S,
    ):
        self.connection = http.client.HTTPConnection(base.host, base.port, timeout=timeout)
        self.connection.request(
            "GET", target, headers={"Accept": "text/event-stream", **(headers or {})}
        )
        self.sock = self.connection.sock
        self.response = self.connection.getresponse()

    def block(self, timeout: float = GUARD_S) -> list[str]:
        """Return the lines of the next block, up to its blank line."""
        self.sock.settimeout(timeout)
        lines: list[str] = []
        while True:
            raw = self.response.readline()
            if not raw:
                raise EOFError(f"stream ended after {lines!r}")
            line = raw.decode()
            line = line[:-1] if line.endswith("\n") else line
            if line == "":
                if lines:
                    return lines
                continue
            lines.append(line)

    def event(self, timeout: float = GUARD_S) -> dict:
        """Return the next dispatched event, skipping comment-only blocks (heartbeats)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.block(max(deadline - time.monotonic(), 0.01))
            if all(line.startswith(":") for line in lines):
                continue
            found = dispatch("\n".join(lines) + "\n\n")
            assert len(found) == 1, f"one block, one event: {lines!r}"
            return found[0]

    def close(self) -> None:
        """Close the connection, as a browser closing the tab."""
        self.response.close()
        self.connection.close()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def _stats(base: BaseURL) -> dict:
    connection = http.client.HTTPConnection(base.host, base.port, timeout=GUARD_S)
    try:
        connection.request("GET", "/stream/stats")
        response = connection.getresponse()
        assert response.status == 200, "is optscan.web.stream.bp registered in create_app?"
        return json.loads(response.read())
    finally:
        connection.close()


def _numsub(client: redis.Redis, channel: str) -> int:
    return dict(client.pubsub_numsub(channel))[channel]


@pytest.fixture(scope="module")
def stream_prefix(redis_url: str) -> Iterator[str]:
    """Yield a key prefix shared by this module's server and tests, deleted afterwards."""
    with private_prefix(redis_url) as prefix:
        yield prefix


@pytest.fixture(scope="module")
def server(redis_url: str, stream_prefix: str) -> Iterator[BaseURL]:
    """Serve wsgi:app under gunicorn, one gevent worker, with a short heartbeat."""
    instance = Path(tempfile.mkdtemp(prefix="optscan-inst-"))
    env = {
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": stream_prefix,
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "OPTSCAN_SSE_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "OPTSCAN_TESTING": "true",  # exposes /stream/stats
    }
    try:
        with gunicorn_server(env, workers=1) as base:
            assert _stats(base)["clients"] == 0
            yield base
            # Whatever happened to the streams, no exception reached the server's log.
            assert "Traceback" not in base.log()
    finally:
        shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture(scope="module")
def quiet_server(redis_url: str, stream_prefix: str) -> Iterator[BaseURL]:
    """Serve wsgi:app like `server`, but with the longest heartbeat the settings allow."""
    instance = Path(tempfile.mkdtemp(prefix="optscan-inst-"))
    env = {
        "REDIS_URL": redis_url,
        "OPTSCAN_REDIS_PREFIX": stream_prefix,
        "OPTSCAN_INSTANCE_PATH": str(instance),
        "OPTSCAN_SSE_HEARTBEAT_SECONDS": "300",
    }
    try:
        with gunicorn_server(env, workers=1) as base:
            yield base
    finally:
        shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture
def events(redis_client: redis.Redis, stream_prefix: str) -> ScanEvents:
    """Return a publisher on the server's prefix, as `flask scan` would build it."""
    return ScanEvents(redis_client, stream_prefix)


@pytest.fixture
def clients(server: BaseURL) -> Iterator[Callable[..., SSEClient]]:
    """Return a factory of stream clients, all closed after the test."""
    opened: list[SSEClient] = []

    def open_client(target: str = "/stream", headers: dict[str, str] | None = None) -> SSEClient:
        client = SSEClient(server, target, headers)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


# --- gunicorn, gevent worker ------------------------------------------------------------------


@pytest.mark.slow
def test_headers_and_opening_arrive_before_any_event(quiet_server: BaseURL) -> None:
    # Nothing is published and the next heartbeat is 300 s away: headers and opening must
    # come on their own, not with an event or a heartbeat (the client's timeout is 30 s).
    client = SSEClient(quiet_server)
    try:
        opening = client.block()
        assert client.response.status == 200
        assert client.response.getheader("Content-Type").startswith("text/event-stream")
        assert client.response.getheader("Cache-Control") == "no-cache"
        assert client.response.getheader("X-Accel-Buffering") == "no"
        assert opening == OPENING
        assert dispatch("\n".join(opening) + "\n\n") == [{"retry": 3000}]
    finally:
        client.close()


@pytest.mark.slow
def test_heartbeats_arrive_at_the_configured_interval(server: BaseURL) -> None:
    opened = time.monotonic()
    client = SSEClient(server)
    try:
        assert client.block() == OPENING
        arrivals = []
        for _ in range(4):
            # Each within the guard, far sooner than the default heartbeat would come.
            assert client.block(timeout=HEARTBEAT_GUARD_S) == [": heartbeat"]
            arrivals.append(time.monotonic())
    finally:
        client.close()
    # The k-th heartbeat leaves k intervals after the stream opened, at the earliest: never
    # more often than configured, however late this client read them.
    for k, arrived in enumerate(arrivals, start=1):
        assert arrived - opened >= k * HEARTBEAT * 0.97, (k, arrived - opened)


@pytest.mark.slow
def test_published_events_arrive_in_order_with_their_ids(clients, events: ScanEvents) -> None:
    client = clients()
    assert client.block() == OPENING
    published = [
        ("scan-started", {"trigger": "cli", "side": "puts", "total": 3}),
        ("progress", {"index": 1, "total": 3, "symbol": "AAPL"}),
        ("symbol-done", {"symbol": "AAPL", "status": "ok", "matches": 2}),
        ("progress", {"index": 2, "total": 3, "symbol": "ÅÄÖ", "note": "a\nb"}),
        ("scan-finished", {"success": True, "matches": 2}),
    ]
    ids = [events.publish(kind, data) for kind, data in published]
    received = [client.event() for _ in published]
    assert received == [
        {"type": kind, "data": json.dumps(data, separators=(",", ":")), "id": event_id}
        for (kind, data), event_id in zip(published, ids, strict=True)
    ]
    assert [json.loads(event["data"]) for event in received] == [data for _, data in published]


@pytest.mark.slow
def test_channel_parameter_is_ignored(
    server: BaseURL, clients, events: ScanEvents, redis_client: redis.Redis
) -> None:
    client = clients("/stream?channel=other")
    assert client.block() == OPENING
    leaked = json.dumps({"data": "leaked", "type": "progress"})
    for channel in ("other", "sse", f"{events.prefix}other"):
        redis_client.publish(channel, leaked)
    event_id = events.publish("progress", {"index": 1})
    # The first event is the scan channel's: nothing from the asked-for channels came before.
    assert client.event() == {"type": "progress", "data": '{"index":1}', "id": event_id}
    assert _numsub(redis_client, "other") == 0
    assert _numsub(redis_client, "sse") == 0
    assert _numsub(redis_client, events.channel) == 1


@pytest.mark.slow
def test_newlines_in_type_id_or_data_cannot_inject_lines(
    clients, events: ScanEvents, redis_client: redis.Redis
) -> None:
    client = clients()
    assert client.block() == OPENING
    # Straight onto the channel: ScanEvents refuses such types, a foreign publisher might not.
    hostile = {
        "data": "line1\nline2\r\nline3\rline4\n\nevent: evil\ndata: x",
        "type": "progress\r\ndata: injected\n\nevent: evil",
        "id": "1-1\nevent: evil\rretry: 1",
    }
    redis_client.publish(events.channel, json.dumps(hostile))
    lines = client.block()
    text = "\n".join(lines) + "\n\n"
    assert "\r" not in text
    assert dispatch(text) == [
        {
            "type": "progressdata: injectedevent: evil",
            "data": "line1\nline2\nline3\nline4\n\nevent: evil\ndata: x",
            "id": "1-1event: evilretry: 1",
        }
    ]
    # Data that starts with a space or holds Unicode line separators survives as it was.
    spaced = {"data": " leading\u2028inside\u0085next ", "type": "progress"}
    redis_client.publish(events.channel, json.dumps(spaced))
    assert client.event()["data"] == spaced["data"]
    # The stream is still in step: a real event arrives whole.
    event_id = events.publish("scan-finished", {"success": True})
    assert client.event() == {"type": "scan-finished", "data": '{"success":true}', "id": event_id}


@pytest.mark.slow
def test_last_event_id_replays_missed_events(clients, events: ScanEvents) -> None:
    ids = [events.publish("progress", {"index": i}) for i in range(5)]

    by_header = clients(headers={"Last-Event-ID": ids[1]})
    assert by_header.block() == OPENING
    assert [by_header.event()["id"] for _ in range(3)] == ids[2:]

    by_query = clients(f"/stream?lastEventId={ids[3]}")
    assert by_query.block() == OPENING
    assert by_query.event()["id"] == ids[4]

    # On a reconnect the browser sends the header and repeats the first URL: the header wins.
    both = clients(f"/stream?lastEventId={ids[0]}", headers={"Last-Event-ID": ids[3]})
    assert both.block() == OPENING
    assert both.event()["id"] == ids[4]

    garbage = clients(headers={"Last-Event-ID": "1-1' OR 1=1"})
    assert garbage.block() == OPENING

    live = events.publish("scan-finished", {"success": True})
    for client in (by_header, by_query, both, garbage):
        assert client.event() == {"type": "scan-finished", "data": '{"success":true}', "id": live}


@pytest.mark.slow
def test_a_reconnecting_page_does_not_lose_scan_finished(clients, events: ScanEvents) -> None:
    first = clients()
    assert first.block() == OPENING
    progress = events.publish("progress", {"index": 26, "total": 26})
    seen = first.event()["id"]
    assert seen == progress
    first.close()  # the network drops; meanwhile the scan finishes
    finished = events.publish("scan-finished", {"success": True, "matches": 4})

    again = clients(headers={"Last-Event-ID": seen})
    assert again.block() == OPENING
    assert again.event() == {
        "type": "scan-finished",
        "data": '{"success":true,"matches":4}',
        "id": finished,
    }


@pytest.mark.slow
def test_fifty_clients_share_one_redis_subscription(
    server: BaseURL, clients, events: ScanEvents, redis_client: redis.Redis
) -> None:
    _wait(lambda: _stats(server)["clients"] == 0, HEARTBEAT_GUARD_S, "earlier clients to go")
    connections_before = len(redis_client.client_list())
    many = [clients() for _ in range(50)]
    for client in many:
        assert client.block() == OPENING
    stats = _stats(server)
    assert stats["clients"] == 50
    assert _numsub(redis_client, events.channel) == 1
    subscribed = [c for c in redis_client.client_list() if int(c["sub"]) + int(c["psub"]) > 0]
    assert len(subscribed) == 1
    # flask-sse as shipped holds one connection per client: 50 more. The fan-out holds one.
    assert len(redis_client.client_list()) - connections_before <= 2

    event_id = events.publish("symbol-done", {"symbol": "MSFT", "status": "ok"})
    for client in many:
        assert client.event()["id"] == event_id


@pytest.mark.slow
def test_closed_clients_are_dropped_within_a_heartbeat(
    server: BaseURL, clients, events: ScanEvents, redis_client: redis.Redis
) -> None:
    _wait(lambda: _stats(server)["clients"] == 0, HEARTBEAT_GUARD_S, "earlier clients to go")
    trio = [clients() for _ in range(3)]
    for client in trio:
        assert client.block() == OPENING
    assert _stats(server)["clients"] == 3
    trio[0].close()
    # Found at a heartbeat after the close, with nothing published: the configured heartbeat
    # (0.5 s) does it, well before the default one (15 s) could.
    _wait(lambda: _stats(server)["clients"] == 2, HEARTBEAT_GUARD_S, "the drop")
    trio[1].close()
    trio[2].close()
    _wait(lambda: _stats(server)["clients"] == 0, HEARTBEAT_GUARD_S, "the last drops")
    # With no client left the process gives its subscription up (the reader looks every 1 s).
    _wait(lambda: _numsub(redis_client, events.channel) == 0, GUARD_S, "the unsubscribe")
    assert _stats(server)["reader_running"] is False

    # And the next client brings it back.
    client = clients()
    assert client.block() == OPENING
    assert _numsub(redis_client, events.channel) == 1
    event_id = events.publish("progress", {"index": 1})
    assert client.event()["id"] == event_id


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="kills pub/sub connections: private Redis only"
)
@pytest.mark.parametrize("history", ["delivered", "empty log"])
def test_stream_survives_a_killed_subscription(
    server: BaseURL, clients, events: ScanEvents, redis_client: redis.Redis, history: str
) -> None:
    if history == "empty log":
        # A new Redis, or one restarted empty: the stream has no id of its own to replay from.
        redis_client.delete(events.log_key)
    client = clients()
    assert client.block() == OPENING
    if history == "delivered":
        before = events.publish("progress", {"index": 1})
        assert client.event()["id"] == before
    subscriptions = _stats(server)["subscriptions"]
    # An event whose channel message is lost (as when it is published while the stream is not
    # subscribed): only the log has it. Logged before the kill, so that however soon the stream
    # re-subscribes, it can only learn of the event from the log.
    missed = redis_client.xadd(
        events.log_key, {"type": "scan-finished", "data": json.dumps({"success": True})}
    )
    assert redis_client.client_kill_filter(_type="pubsub") == 1
    # On re-subscribing, the stream looks in the log for what it missed.
    assert client.event()["id"] == missed
    after = events.publish("scan-started", {"trigger": "web"})
    assert client.event()["id"] == after
    assert _stats(server)["subscriptions"] == subscriptions + 1


def test_stats_are_hidden_unless_testing(make_app) -> None:
    app = make_app(TESTING=False)
    assert app.test_client().get("/stream/stats").status_code == 404


# --- in-process: Flask's threaded server, the fan-out and the blueprint API -----------------------


@pytest.fixture
def threaded_server(make_app) -> Iterator[tuple[BaseURL, object]]:
    """Serve the app with werkzeug's threaded development server, in this process."""
    app = make_app(SSE_HEARTBEAT_SECONDS=HEARTBEAT)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = BaseURL(f"http://127.0.0.1:{httpd.server_port}")
    try:
        yield base, app
    finally:
        fanout = app.extensions[stream.EXTENSION_KEY].fanout
        _wait(lambda: fanout.client_count == 0, HEARTBEAT_GUARD_S, "streams to end")
        _wait(lambda: not fanout.stats()["reader_running"], GUARD_S, "the reader to stop")
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_stream_under_the_threaded_dev_server(threaded_server, redis_client: redis.Redis) -> None:
    base, app = threaded_server
    publisher = ScanEvents(redis_client, app.config["REDIS_PREFIX"])
    missed = publisher.publish("scan-started", {"trigger": "timer"})
    later = publisher.publish("progress", {"index": 1})
    client = SSEClient(base, headers={"Last-Event-ID": missed})
    try:
        assert client.response.getheader("X-Accel-Buffering") == "no"
        assert client.block() == OPENING
        assert client.event()["id"] == later
        assert client.block(timeout=HEARTBEAT_GUARD_S) == [": heartbeat"]
        live = publisher.publish("scan-finished", {"success": True})
        assert client.event()["id"] == live
    finally:
        client.close()
    fanout = app.extensions[stream.EXTENSION_KEY].fanout
    _wait(lambda: fanout.client_count == 0, HEARTBEAT_GUARD_S, "the drop")


def test_without_redis_the_stream_ends_and_the_browser_retries(make_app) -> None:
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = SSEClient(BaseURL(f"http://127.0.0.1:{httpd.server_port}"))
    try:
        assert client.response.status == 200  # an error status would stop EventSource for good
        assert client.block() == OPENING
        with pytest.raises(EOFError):
            client.block()
    finally:
        client.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert app.extensions[stream.EXTENSION_KEY].fanout.client_count == 0


def test_close_streams_ends_open_and_new_streams(threaded_server) -> None:
    base, app = threaded_server
    client = SSEClient(base)
    try:
        assert client.block() == OPENING
        assert stream.bp.close_streams(app) == 1
        with pytest.raises(EOFError):
            client.block()
    finally:
        client.close()
    # A browser reconnecting to a process that is shutting down is sent on its way at once.
    late = SSEClient(base)
    try:
        assert late.block() == OPENING
        with pytest.raises(EOFError):
            late.block()
    finally:
        late.close()


def test_publish_without_an_app_context(make_app, redis_client: redis.Redis) -> None:
    app = make_app()
    results: queue.Queue[object] = queue.Queue()

    def bare_thread() -> None:  # like a scan's worker thread or greenlet: no app context
        try:
            results.put(stream.bp.publish({"index": 1, "total": 2}, type="progress"))
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            results.put(exc)

    worker = threading.Thread(target=bare_thread)
    worker.start()
    worker.join(GUARD_S)
    event_id = results.get_nowait()
    assert not isinstance(event_id, Exception), event_id
    log = ScanEvents(redis_client, app.config["REDIS_PREFIX"])
    assert log.last_id() == event_id
    entry = redis_client.xrange(log.log_key, min=event_id, max=event_id)
    assert entry[0][1] == {"type": "progress", "data": '{"index":1,"total":2}'}
    # flask-sse's `redis` property now returns the app's one client, not a new one per call.
    with app.app_context():
        assert stream.bp.redis is app.extensions["optscan"].redis


def test_blueprint_publish_refuses_what_the_log_cannot_honour(make_app) -> None:
    app = make_app()
    with app.app_context():
        channel = stream.bp.events().channel
        with pytest.raises(ValueError, match="one channel"):
            stream.bp.publish({}, type="progress", channel="other")
        with pytest.raises(ValueError, match="assigned"):
            stream.bp.publish({}, type="progress", id="5-0")
        with pytest.raises(ValueError, match="retry"):
            stream.bp.publish({}, type="progress", retry=10)
        with pytest.raises(ValueError, match="type"):
            stream.bp.publish({})
        with pytest.raises(ValueError, match="unknown event type"):
            stream.bp.publish({}, type="progress\ndata: x")
        assert is_id(stream.bp.publish({}, type="scan-started", channel=channel))


def is_id(value: object) -> bool:
    """Return whether value is a stream id."""
    return isinstance(value, str) and event_id_key(value) > (0, 0)


def test_messages_yields_live_flask_sse_messages(make_app, redis_client: redis.Redis) -> None:
    app = make_app()
    with app.app_context():
        generator = stream.bp.messages()
        fanout = app.extensions[stream.EXTENSION_KEY].fanout
    got: queue.Queue[object] = queue.Queue()
    reader = threading.Thread(target=lambda: got.put(next(generator)), daemon=True)
    reader.start()
    _wait(lambda: fanout.stats()["subscribed"], GUARD_S, "the subscription")
    event_id = ScanEvents(redis_client, app.config["REDIS_PREFIX"]).publish("progress", {"i": 1})
    message = got.get(timeout=GUARD_S)
    reader.join(GUARD_S)
    generator.close()
    assert (message.data, message.type, message.id) == ({"i": 1}, "progress", event_id)
    assert str(message) == f'event: progress\ndata: {{"i":1}}\nid: {event_id}\n\n'
    assert fanout.client_count == 0
    _wait(lambda: not fanout.stats()["reader_running"], GUARD_S, "the reader to stop")


def test_a_client_that_stops_reading_is_cut_off(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    publisher = ScanEvents(redis_client, redis_prefix)
    fanout = sse.FanOut(redis_client, publisher.channel)
    stalled, reading = fanout.attach(), fanout.attach()
    total = sse.CLIENT_QUEUE_SIZE + 5
    drained: list[object] = []

    def drain() -> None:
        while len(drained) < total:
            drained.append(reading.queue.get(timeout=GUARD_S))

    drainer = threading.Thread(target=drain, daemon=True)
    try:
        assert fanout.wait_ready(GUARD_S)
        drainer.start()
        for index in range(total):
            publisher.publish("progress", {"index": index})
        drainer.join(GUARD_S)
        assert [message.data["index"] for message in drained] == list(range(total))
        assert stalled.overflowed and not reading.overflowed
        assert fanout.stats()["dropped_slow"] == 1
    finally:
        fanout.detach(stalled)
        fanout.detach(reading)
    _wait(lambda: not fanout.stats()["reader_running"], GUARD_S, "the reader to stop")


@pytest.mark.parametrize("bad", [0, -1, "abc", True, 10_000])
def test_heartbeat_setting_is_validated(make_app, bad: object) -> None:
    with pytest.raises(ConfigError, match="OPTSCAN_SSE_HEARTBEAT_SECONDS"):
        make_app(SSE_HEARTBEAT_SECONDS=bad)


def test_format_event_against_the_parser() -> None:
    text = sse.format_event({"a": "x\ny"}, type="progress", id="7-1")
    assert text == 'event: progress\ndata: {"a":"x\\ny"}\nid: 7-1\n\n'
    assert dispatch(text) == [{"type": "progress", "data": '{"a":"x\\ny"}', "id": "7-1"}]
    for data in ["", "\n", "a\r\n", "\r\rb", " two  spaces ", "trailing\n\n"]:
        parsed = dispatch(sse.format_event(data, type="t", id="1-0\x00"))
        expected = re.sub(r"\r\n|\r", "\n", data)
        assert parsed == [{"type": "t", "data": expected, "id": "1-0"}], repr(data)
