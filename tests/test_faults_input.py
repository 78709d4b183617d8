"""Bad input, fuzzed with hypothesis through Flask's test client and the CLI runner.

Symbols (watchlist forms and `flask watchlist`), the fields of POST /scan, query parameters of
the pages, downloads, status and stream, oversized bodies and wrong methods: the answer is a
4xx in plain words (never a 5xx, never a traceback), nothing user-supplied comes back as
markup, and the watchlist and everything in Redis are exactly as before. Input that is valid
does what it says, checked against the rules the README states, and is then undone.
"""

from __future__ import annotations

import io
import random
import re
import string
import warnings
from collections import Counter
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from optscan.core.scan import perform_scan
from tests.faults import SECRET_KEY
from tests.replaydirs import build_replay_dir

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the project; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FETCH = {"X-Requested-With": "fetch"}
MARK = "<x-fuzz>"  # markup that must never come back unescaped
# The README's symbol rule: 1-10 ASCII letters, digits, '.' or '-', starting with a letter or
# digit, upper-cased; whitespace around it is ignored.
SYMBOL_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,9}")
NOTE_MAX = 200
TRUE_WORDS = {"1", "true", "on", "yes", "y"}
FALSE_WORDS = {"", "0", "false", "off", "no", "n"}
CSRF_WORDS = "did not come from an optscan page, so nothing was done"
REFUSED_WORDS = "Nothing was changed."

texts = st.text(max_size=40)
marked = st.builds(lambda tail: MARK + tail, st.text(max_size=10))
# Strings near the valid ones (case, spaces, punctuation), arbitrary text, and markup.
symbolish = st.one_of(
    st.sampled_from(["AAPL", "aapl", " msft ", "BRK.B", "brk-b", "ZZZZ", "A" * 11, "", " ", "-X"]),
    st.from_regex(r"[A-Za-z0-9.\-]{1,12}", fullmatch=True),
    texts,
    marked,
)
scan_words = st.one_of(
    st.none(),
    st.sampled_from(["put", "call", " PUT ", "Call", "puts", "1", "0", "on", "off", "yes", "no"]),
    texts,
    marked,
)


def valid_symbol(raw: str) -> bool:
    """Return whether one symbol passes the README's rule."""
    return SYMBOL_RULE.fullmatch(raw.strip()) is not None


def valid_note(raw: str) -> bool:
    """Return whether a note is at most 200 characters on one line, without control characters."""
    note = raw.strip()
    return len(note) <= NOTE_MAX and not any(ord(c) < 32 or ord(c) == 127 for c in note)


pytestmark = pytest.mark.usefixtures("no_scan_left_running")


@pytest.fixture
def app(make_app, tmp_path: Path):
    """Return the app on a replay of AAPL, with stored put results and CSRF switched on."""
    replay = build_replay_dir(tmp_path / "replay", "aapl")
    app = make_app(SOURCE=f"replay:{replay}", SECRET_KEY=SECRET_KEY)
    svc = app.extensions["optscan"]
    result = perform_scan(["AAPL"], "put", True, env=svc.scan_env())
    assert result.success and result.matches
    return app


@pytest.fixture
def client(app):
    """Return a test client of the app (it keeps its session cookie between requests)."""
    return app.test_client()


def csrf_token(client) -> str:
    """Return the CSRF token of the client's session, from the page's form."""
    page = client.get("/")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def snapshot(app) -> tuple:
    """Return everything a request could change: the watchlist and every key of the app."""
    svc = app.extensions["optscan"]
    prefix = svc.settings.redis_prefix
    keys = sorted(svc.redis.scan_iter(match=f"{prefix}*", count=1000))
    return (
        svc.watchlist.entries(),
        {key: (svc.redis.type(key), svc.redis.dump(key)) for key in keys},
    )


def assert_plain_refusal(response, *words: str) -> None:
    """Check a 4xx: plain words (one of `words` when given), no traceback, no echoed markup."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert_no_markup(response)
    if words:
        assert any(w in text for w in words), (response.status_code, text[:2000])


def assert_no_markup(response) -> None:
    """Check that an HTML answer carries none of the fuzzer's markup unescaped."""
    if response.mimetype == "text/html":
        text = response.get_data(as_text=True)
        assert MARK not in text and MARK.upper() not in text, text[:2000]


def deactivate_all(app) -> None:
    """Make the active watchlist empty, so that no request can start a scan."""
    watchlist = app.extensions["optscan"].watchlist
    watchlist.set_active([e.symbol for e in watchlist.entries()], False)


# -- POST /scan ----------------------------------------------------------------------------


def test_fuzzed_scan_forms_are_refused_and_change_nothing(app, client) -> None:
    deactivate_all(app)  # a request that passes every check gets "nothing to scan"
    token = csrf_token(client)
    before = snapshot(app)
    seen: Counter[int] = Counter()

    @FUZZ
    @example(side="put", force="1", csrf="valid", fetch=True)
    @example(side=" CALL ", force=None, csrf="valid", fetch=False)
    @example(side="puts", force="1", csrf="valid", fetch=True)
    @example(side="put", force="maybe", csrf="valid", fetch=False)
    @example(side="put", force="1", csrf=None, fetch=True)
    @given(
        side=scan_words,
        force=scan_words,
        csrf=st.one_of(st.none(), st.just("valid"), texts, marked),
        fetch=st.booleans(),
    )
    def check(side, force, csrf, fetch) -> None:
        form = {"side": side, "force": force, "csrf_token": token if csrf == "valid" else csrf}
        data = {k: v for k, v in form.items() if v is not None}
        response = client.post("/scan", data=data, headers=FETCH if fetch else {})
        if csrf != "valid":
            assert_plain_refusal(response, CSRF_WORDS)
            assert response.status_code == 400
        elif side not in (None, "") and side.strip().lower() not in ("put", "call"):
            assert_plain_refusal(response, "The side must be put or call")
            assert response.status_code == 400
        elif (force or "").strip().lower() not in TRUE_WORDS | FALSE_WORDS:
            assert_plain_refusal(response, "The force option must be on or off")
            assert response.status_code == 400
        else:
            assert_plain_refusal(response, "There is nothing to scan")
            assert response.status_code == 409
        assert ("<html" in response.text) is not fetch
        assert snapshot(app) == before
        seen[response.status_code] += 1

    check()
    assert set(seen) == {400, 409}, seen


# -- the watchlist: forms and CLI ------------------------------------------------------------


def test_fuzzed_watchlist_forms_refuse_bad_input_and_do_exactly_the_rest(app, client) -> None:
    watchlist = app.extensions["optscan"].watchlist
    token = csrf_token(client)
    before = snapshot(app)
    seen: Counter[tuple[str, int]] = Counter()

    @FUZZ
    @example(action="add", symbols=["ibm", " brk.b"], separator=",", note=" a note ")
    @example(action="add", symbols=["IBM", "BAD$"], separator=" ", note="")
    @example(action="add", symbols=["IBM"], separator=" ", note="two\nlines")
    @example(action="deactivate", symbols=[" aapl "], separator=" ", note="")
    @example(action="activate", symbols=["ZZZZ"], separator=" ", note="")
    @example(action="remove", symbols=["ZZZZ"], separator=" ", note="")
    @example(action="remove", symbols=[], separator=" ", note="")
    @given(
        action=st.sampled_from(["add", "remove", "activate", "deactivate"]),
        symbols=st.lists(symbolish, max_size=4),
        separator=st.sampled_from([" ", ",", ", ", "\t", "\n"]),
        note=st.one_of(st.just(""), texts, st.just("n" * (NOTE_MAX + 1)), marked),
    )
    def check(action, symbols, separator, note) -> None:
        known = {e.symbol for e in watchlist.entries()}
        if action == "add":
            raw = separator.join(symbols)
            data = {"symbols": raw, "note": note, "csrf_token": token}
            tokens = [t for t in re.split(r"[\s,]+", raw) if t]
            valid = bool(tokens) and all(map(valid_symbol, tokens)) and valid_note(note)
        else:
            raw = symbols[0] if symbols else ""
            data = {"symbol": raw, "csrf_token": token}
            tokens = [raw]
            valid = valid_symbol(raw) and raw.strip().upper() in known
        # Removing a symbol would lose its note and date: the refusals are what is fuzzed.
        assume(not (action == "remove" and valid))
        response = client.post(f"/watchlist/{action}", data=data)
        seen[action, response.status_code] += 1
        if not valid:
            assert_plain_refusal(response, REFUSED_WORDS)
            assert response.status_code == 400
            assert snapshot(app) == before
            return
        assert response.status_code == 303 and response.location.endswith("/watchlist")
        wanted = {t.strip().upper() for t in tokens}
        entries = {e.symbol: e for e in watchlist.entries()}
        # Undo what the valid request did, leaving the store exactly as before.
        if action == "add":
            added = wanted - known
            assert set(entries) == known | wanted
            assert all(entries[s].note == note.strip() and entries[s].active for s in added)
            if added:
                watchlist.remove(sorted(added))
        else:
            assert all(entries[s].active is (action == "activate") for s in wanted)
            watchlist.set_active(sorted(wanted), True)  # every symbol starts active
        assert snapshot(app) == before

    check()
    assert {("add", 303), ("add", 400), ("deactivate", 303), ("remove", 400)} <= set(seen), seen


def test_fuzzed_watchlist_commands_refuse_bad_symbols_with_exit_2(app) -> None:
    watchlist = app.extensions["optscan"].watchlist
    runner = app.test_cli_runner()
    before = snapshot(app)
    seen: Counter[tuple[str, int]] = Counter()

    @FUZZ
    @example(command="add", symbols=["ibm", "brk-b"], note="ok")
    @example(command="add", symbols=["ibm", "-x"], note="")
    @example(command="add", symbols=["IBM"], note="bad\x07")
    @example(command="add", symbols=[], note="")
    @example(command="deactivate", symbols=["aapl", "MSFT"], note="")
    @example(command="remove", symbols=["aapl", "ZZZZ"], note="")
    @example(command="activate", symbols=["--"], note="")
    @given(
        command=st.sampled_from(["add", "remove", "activate", "deactivate"]),
        symbols=st.lists(symbolish, max_size=4),
        note=st.one_of(st.just(""), texts),
    )
    def check(command, symbols, note) -> None:
        known = {e.symbol for e in watchlist.entries()}
        normalized = {s.strip().upper() for s in symbols}
        valid = bool(symbols) and all(map(valid_symbol, symbols))
        if command == "add":
            valid = valid and valid_note(note)
            args = ["watchlist", "add", f"--note={note}", "--", *symbols]
        else:
            valid = valid and normalized <= known
            args = ["watchlist", command, "--", *symbols]
        assume(not (command == "remove" and valid))  # as for the form: refusals only
        result = runner.invoke(args=args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        seen[command, result.exit_code] += 1
        if not valid:
            assert result.exit_code == 2, (args, result.output)
            assert REFUSED_WORDS in result.output or "Missing argument" in result.output
            assert snapshot(app) == before
            return
        assert result.exit_code == 0, (args, result.output)
        if command == "add":
            if normalized - known:
                watchlist.remove(sorted(normalized - known))
        else:
            watchlist.set_active(sorted(normalized), True)
        assert snapshot(app) == before

    check()
    assert {("add", 0), ("add", 2), ("deactivate", 0), ("remove", 2)} <= set(seen), seen


# -- query parameters ----------------------------------------------------------------------

PARAMETERS = st.sampled_from(["side", "symbol", "channel", "lastEventId", "format", "page"])
query_values = st.one_of(scan_words, marked).map(lambda value: value or "")
event_ids = st.from_regex(r"[0-9]{1,20}-[0-9]{1,20}", fullmatch=True)
header_texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


def encode_query(pairs: list[tuple[bytes, bytes]]) -> str:
    """Return a query string of percent-encoded pairs (any bytes, UTF-8 or not)."""
    return "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)


@pytest.mark.parametrize(
    "path", ["/", "/results", "/results.csv", "/results.json", "/scan/status", "/watchlist"]
)
def test_fuzzed_query_parameters_never_fail_and_change_nothing(app, client, path: str) -> None:
    before = snapshot(app)
    takes_side = path in ("/", "/results", "/results.csv", "/results.json")

    @FUZZ
    @example(params={"side": "call", "symbol": MARK}, raw_side=None)
    @example(params={"side": MARK}, raw_side=None)
    @example(params={}, raw_side=b"\xff\xfe put")
    @example(params={"channel": "other", "lastEventId": "1-1"}, raw_side=b" put ")
    @given(
        params=st.dictionaries(st.one_of(PARAMETERS, texts), query_values, max_size=4),
        raw_side=st.one_of(st.none(), st.binary(max_size=12)),
    )
    def check(params, raw_side) -> None:
        side = params.get("side")
        pairs = [(k.encode(), v.encode()) for k, v in params.items()]
        if raw_side is not None:
            # Bytes that may not be UTF-8, as a hand-made URL can carry.
            pairs = [(b"side", raw_side)] + [p for p in pairs if p[0] != b"side"]
            side = raw_side.decode("utf-8", errors="replace")
        query = encode_query(pairs)
        response = client.get(path, query_string=query)
        assert response.status_code < 500, (query, response.text[:500])
        text = response.get_data(as_text=True)
        assert_no_markup(response)
        if not takes_side or (path == "/" and not side):
            assert response.status_code == 200, (query, text[:500])
        elif side not in (None, "") and side.strip().lower() not in ("put", "call"):
            assert_plain_refusal(response, "The side must be put or call")
            assert response.status_code == 400
        elif path.startswith("/results.") and (side or "").strip().lower() == "call":
            assert_plain_refusal(response, "There are no calls results yet")
            assert response.status_code == 404
        else:
            assert response.status_code == 200, (query, text[:500])
        assert snapshot(app) == before

    check()


def test_fuzzed_stream_parameters_open_the_one_channel(app) -> None:
    before = snapshot(app)
    client = app.test_client()

    @FUZZ
    @example(channel="optscan:sse:scan", last_event_id="0-0", header=None)
    @example(channel=MARK, last_event_id="1-1\nevent: x", header="9-9")
    @given(
        channel=st.one_of(st.none(), texts, marked),
        last_event_id=st.one_of(st.none(), texts, event_ids),
        header=st.one_of(st.none(), header_texts),
    )
    def check(channel, last_event_id, header) -> None:
        params = {"channel": channel, "lastEventId": last_event_id}
        params = {k: v for k, v in params.items() if v is not None}
        headers = {"Last-Event-ID": header} if header is not None else {}
        response = client.get("/stream", query_string=params, headers=headers, buffered=False)
        try:
            assert response.status_code == 200
            assert response.mimetype == "text/event-stream"
            opening = next(iter(response.response))
        finally:
            response.close()
        opening = opening.decode() if isinstance(opening, bytes) else opening
        # The opening is fixed: nothing of the request is echoed into the stream.
        assert re.fullmatch(r"retry: [0-9]+\n: optscan scan events\n\n", opening), opening
        assert snapshot(app) == before

    check()


# -- oversized bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/scan", "/watchlist/add", "/watchlist/remove"])
def test_oversized_bodies_get_413_and_change_nothing(app, client, path: str) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert isinstance(limit, int) and 0 < limit <= 1_000_000, "MAX_CONTENT_LENGTH must be set"
    token = csrf_token(client)
    before = snapshot(app)

    def form_of(size: int) -> bytes:
        head = f"csrf_token={token}&symbols=IBM&symbol=ZZZZ&side=bogus&note=".encode()
        return head + b"n" * (size - len(head))

    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    at_limit = client.post(path, data=form_of(limit), headers=urlencoded)
    assert at_limit.status_code == 400  # read and refused for its content, not its size
    for size in (limit + 1, 10 * limit):
        too_big = client.post(path, data=form_of(size), headers=urlencoded)
        assert_plain_refusal(too_big, "The request is too large.")
        assert too_big.status_code == 413
    multipart = client.post(
        path,
        data={"csrf_token": token, "note": "n" * (limit + 1), "symbols": "IBM"},
        content_type="multipart/form-data",
    )
    assert_plain_refusal(multipart, "The request is too large.")
    assert multipart.status_code == 413
    assert snapshot(app) == before


@pytest.mark.parametrize("path", ["/scan", "/watchlist/add", "/watchlist/remove"])
def test_an_oversized_chunked_body_is_refused_not_cut_short(app, client, path: str) -> None:
    """A chunked upload has no Content-Length; gunicorn marks its input terminated, as here."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    token = csrf_token(client)
    before = snapshot(app)
    # Every field is valid on its own; only the size is wrong. Cut at the limit, the list
    # would still parse, ending in a symbol nobody typed.
    symbols = ",".join(f"Q{n:05d}" for n in range(2 * limit // 7))
    body = f"csrf_token={token}&side=put&force=1&note=&symbol=AAPL&symbols={symbols}".encode()
    assert len(body) > limit
    with warnings.catch_warnings():
        # What a cut list would flash does not fit a cookie: tested on its own below.
        warnings.simplefilter("ignore", UserWarning)
        response = client.post(
            path,
            input_stream=io.BytesIO(body),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Transfer-Encoding": "chunked",
            },
            environ_overrides={"wsgi.input_terminated": True},
        )
    changed = snapshot(app) != before
    added = len(app.extensions["optscan"].watchlist.entries()) - len(before[0])
    assert response.status_code in (411, 413) and not changed, (
        f"{len(body)} bytes chunked to {path}: HTTP {response.status_code},"
        f" state changed: {changed}, symbols added: {added}"
    )
    assert_plain_refusal(response)


def test_the_largest_add_the_size_limit_allows_keeps_the_session(app, client) -> None:
    """A form just under the size limit lists thousands of symbols; the session must survive."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    token = csrf_token(client)
    rng = random.Random(7)
    symbols: set[str] = set()
    while len(symbols) * 6 < limit - 200:  # up to 5 letters and a space each
        symbols.add("".join(rng.choices(string.ascii_uppercase, k=rng.randint(2, 5))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.post(
            "/watchlist/add", data={"symbols": " ".join(sorted(symbols)), "csrf_token": token}
        )
    assert response.status_code == 303
    added = len(app.extensions["optscan"].watchlist.entries())
    cookie = response.headers.get("Set-Cookie", "")
    too_large = [str(w.message)[:100] for w in caught if "too large" in str(w.message)]
    # Browsers drop a cookie over 4093 bytes (name, value and attributes), and with it the
    # session's CSRF token: the next form would be refused as expired.
    assert len(cookie) <= 4093 and not too_large, (added, len(cookie), too_large)


# -- wrong methods -------------------------------------------------------------------------


def test_every_route_refuses_the_methods_it_does_not_take(app, client) -> None:
    before = snapshot(app)
    tried = 0
    no_allow: list[str] = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?[^>]+>", "app.css", rule.rule)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if method in (rule.methods or ()):
                continue
            response = client.open(path, method=method, data={"side": "put"})
            assert_plain_refusal(response, "This address does not accept that kind of request.")
            assert response.status_code == 405, (method, path)
            allowed = response.headers.get("Allow")
            if allowed is None:
                no_allow.append(f"{method} {path}")
            else:
                assert method not in allowed.split(", ")
            tried += 1
    assert tried >= 20
    assert snapshot(app) == before
    # RFC 9110, 15.5.6: a 405 must say which methods the address takes.
    assert no_allow == [], f"{len(no_allow)} of {tried} answers 405 lack Allow: {no_allow[:5]}"
