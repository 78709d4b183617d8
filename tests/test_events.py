"""ScanEvents against a real Redis server: publish, replay after an id, snapshot of the scan."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from optscan.store.events import EVENT_TYPES, Event, ScanEvents, event_id_key, is_event_id

HANG_GUARD_S = 30.0  # how long to wait for what must come: only a hang guard


@pytest.fixture
def events(redis_client: redis.Redis, redis_prefix: str) -> ScanEvents:
    """Return ScanEvents on the test Redis under the test's private prefix."""
    return ScanEvents(redis_client, redis_prefix)


def _listen(redis_client: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel)
    # Wait for the confirmation so nothing published afterwards can be missed.
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "subscribe":
            return pubsub
        assert time.monotonic() < deadline, "no subscribe confirmation"


def _received(pubsub: redis.client.PubSub, count: int, timeout: float = HANG_GUARD_S) -> list[dict]:
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


def test_channel_and_keys_live_under_the_prefix(events: ScanEvents, redis_prefix: str) -> None:
    assert events.channel == f"{redis_prefix}sse:scan"
    assert events.log_key.startswith(redis_prefix)
    assert events.state_key.startswith(redis_prefix)
    assert len({events.channel, events.log_key, events.state_key}) == 3


def test_publish_returns_increasing_ids_and_replays_in_order(events: ScanEvents) -> None:
    published = []
    for index, kind in enumerate(EVENT_TYPES):
        data = {"index": index, "symbol": f"SYM{index}", "note": "línea\nnext"}
        published.append((events.publish(kind, data), kind, data))
    ids = [event_id for event_id, _, _ in published]
    assert all(is_event_id(event_id) for event_id in ids)
    keys = [event_id_key(event_id) for event_id in ids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)

    replay = events.since(ids[0])
    assert replay == [Event(id=i, type=t, data=d) for i, t, d in published[1:]]
    assert events.since(ids[2]) == [Event(id=i, type=t, data=d) for i, t, d in published[3:]]
    assert events.since(ids[-1]) == []
    assert events.last_id() == ids[-1]


def test_publish_puts_flask_sse_wire_format_on_the_channel(
    events: ScanEvents, redis_client: redis.Redis
) -> None:
    pubsub = _listen(redis_client, events.channel)
    try:
        data = {"index": 3, "total": 26, "symbol": "AAPL", "ratio": 0.125, "nested": {"a": [1]}}
        first = events.publish("progress", data)
        second = events.publish("scan-finished", {})
        messages = _received(pubsub, 2)
    finally:
        pubsub.close()
    # The payload flask-sse's Message(**payload) accepts, with the id the log assigned.
    assert messages == [
        {"data": data, "type": "progress", "id": first},
        {"data": {}, "type": "scan-finished", "id": second},
    ]


GARBAGE_IDS = [
    *["abc", "123", "1-2-3", "1-x", "-1", "1-", "-", "+", "$", "0x1-1", "1.5-2", "١-١"],
    "",
    " 1-1",
    "1-1\n",
    None,
    5,
]


@pytest.mark.parametrize("garbage", GARBAGE_IDS)
def test_since_garbage_id_is_empty(events: ScanEvents, garbage: object) -> None:
    events.publish("scan-started", {"trigger": "web"})
    events.publish("progress", {"index": 1})
    assert events.since(garbage) == []  # type: ignore[arg-type]


def test_since_unknown_but_well_formed_id_is_empty(events: ScanEvents) -> None:
    first = events.publish("scan-started", {})
    events.publish("progress", {"index": 1})
    millis, seq = event_id_key(first)
    # Ids that were never issued: before the first, between two, and in the future.
    assert events.since("0-0") == []
    assert events.since("1-0") == []
    assert events.since(f"{millis}-{seq + 100_000}") == []
    assert events.since(f"{millis + 10**9}-0") == []
    assert len(events.since(first)) == 1


def test_since_on_an_empty_log(events: ScanEvents) -> None:
    assert events.since("1-0") == []
    assert events.last_id() is None


def test_history_is_capped(redis_client: redis.Redis, redis_prefix: str) -> None:
    history = 10
    events = ScanEvents(redis_client, redis_prefix, history=history)
    # "MAXLEN ~" trims whole stream nodes only, so the log can exceed the cap by one node.
    node_size = int(redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    ids = [events.publish("progress", {"index": i}) for i in range(3 * node_size + 50)]
    length = redis_client.xlen(events.log_key)
    assert history <= length <= history + node_size
    # The oldest ids were trimmed away: they are unknown now, so nothing is replayed for them.
    assert events.since(ids[0]) == []
    # A retained id still replays everything after it, in order.
    kept = ids[-history]
    assert [e.data["index"] for e in events.since(kept)] == list(
        range(len(ids) - history + 1, len(ids))
    )


def test_invalid_events_are_refused_and_not_logged(
    events: ScanEvents, redis_client: redis.Redis
) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        events.publish("progress\ndata: injected", {})
    with pytest.raises(ValueError, match="unknown event type"):
        events.publish("message", {})
    with pytest.raises(TypeError):
        events.publish("progress", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert redis_client.xlen(events.log_key) == 0


def test_a_missing_number_is_published_as_null(events: ScanEvents, redis_client) -> None:
    # Browsers' JSON.parse rejects NaN: the log and the channel carry null instead.
    event_id = events.publish("progress", {"iv": float("nan"), "delta": -0.2})
    (logged,) = redis_client.xrange(events.log_key)
    assert logged[0] == event_id
    assert json.loads(logged[1]["data"], parse_constant=_refuse) == {"iv": None, "delta": -0.2}


def _refuse(name: str) -> None:
    raise AssertionError(f"{name} is not JSON a browser can parse")


def test_concurrent_publishers_reach_subscribers_in_id_order(
    events: ScanEvents, redis_client: redis.Redis, redis_url: str
) -> None:
    pubsub = _listen(redis_client, events.channel)
    returned: list[str] = []
    lock = threading.Lock()

    def publisher(worker: int) -> None:
        # Each thread its own client, as separate processes (web, CLI, timer) would have.
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        mine = ScanEvents(client, events.prefix)
        try:
            for index in range(40):
                event_id = mine.publish("progress", {"worker": worker, "index": index})
                with lock:
                    returned.append(event_id)
        finally:
            client.close()

    threads = [threading.Thread(target=publisher, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        messages = _received(pubsub, len(returned))
    finally:
        pubsub.close()
    received_ids = [m["id"] for m in messages]
    assert len(received_ids) == 160
    assert sorted(received_ids, key=event_id_key) == received_ids
    assert set(received_ids) == set(returned)
    # Each worker's own events stay in its order.
    for worker in range(4):
        indexes = [m["data"]["index"] for m in messages if m["data"]["worker"] == worker]
        assert indexes == list(range(40))


def test_prefixes_do_not_see_each_other(
    redis_client: redis.Redis, redis_prefix: str, events: ScanEvents
) -> None:
    other = ScanEvents(redis_client, redis_prefix + "other:")
    mine = events.publish("scan-started", {"owner": "mine"})
    theirs = other.publish("scan-started", {"owner": "theirs"})
    events.publish("progress", {"owner": "mine"})
    other.publish("progress", {"owner": "theirs"})
    assert other.channel != events.channel
    assert [e.data for e in events.since(mine)] == [{"owner": "mine"}]
    assert [e.data for e in other.since(theirs)] == [{"owner": "theirs"}]


def test_state_snapshot_round_trip_and_expiry(
    events: ScanEvents, redis_client: redis.Redis
) -> None:
    assert events.get_state() is None
    state = {
        "index": 4,
        "total": 26,
        "symbol": "AMZN",
        "matches": 7,
        "rows": 1234,
        "started_at": "2026-11-23T16:00:00+00:00",
        "trigger": "cli",
        "side": "puts",
    }
    events.set_state(state)
    assert events.get_state() == state
    ttl = redis_client.ttl(events.state_key)
    assert 0 < ttl <= events.state_ttl_seconds
    events.set_state({**state, "index": 5})
    assert events.get_state()["index"] == 5
    events.clear_state()
    assert events.get_state() is None


def test_state_expires_when_not_refreshed(redis_client: redis.Redis, redis_prefix: str) -> None:
    events = ScanEvents(redis_client, redis_prefix, state_ttl_seconds=1)
    events.set_state({"index": 1})
    assert events.get_state() == {"index": 1}
    deadline = time.monotonic() + HANG_GUARD_S  # Redis expires it 1 s after it was set
    while events.get_state() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert events.get_state() is None


def test_corrupt_state_reads_as_none(events: ScanEvents, redis_client: redis.Redis) -> None:
    redis_client.set(events.state_key, "{not json")
    assert events.get_state() is None
    redis_client.set(events.state_key, "[1, 2]")
    assert events.get_state() is None


def test_constructor_refuses_nonsense(redis_client: redis.Redis, redis_prefix: str) -> None:
    with pytest.raises(ValueError, match="history"):
        ScanEvents(redis_client, redis_prefix, history=0)
    with pytest.raises(ValueError, match="state_ttl_seconds"):
        ScanEvents(redis_client, redis_prefix, state_ttl_seconds=0)


def test_event_id_helpers() -> None:
    assert event_id_key("1700000000000-2") == (1700000000000, 2)
    assert event_id_key("10-0") > event_id_key("9-5")  # numeric, not lexical, order
    with pytest.raises(ValueError, match="not an event id"):
        event_id_key("nope")
