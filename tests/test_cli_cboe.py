"""`flask scan` on a Cboe recording, `flask record --source cboe`, and mixed replay folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cboe_emulator import CboeEmulator
from tests.flaskrun import run_flask, scan_env
from tests.replaydirs import CBOE_AAPL, build_cboe_dir, build_replay_dir

CBOE = {o["option"]: o for o in json.loads(CBOE_AAPL.read_bytes())["data"]["options"]}


def assert_cboe_rows(body: dict) -> None:
    """Assert the rows carry Cboe's own delta and IV, and the report names Cboe."""
    report = body["symbols"]["AAPL"]
    assert body["success"] and report["status"] == "ok" and report["source"] == "cboe"
    assert report["vendor_iv30"] == pytest.approx(0.2896) and report.get("fallback") is None
    assert body["matches"]
    for match in body["matches"]:
        raw = CBOE[match["contract"]]
        assert match["vendor_delta"] == raw["delta"]
        assert match["vendor_iv"] == raw["iv"]
        assert abs(match["delta"] - raw["delta"]) <= 0.05 or "vendor_disagrees" in match["flags"]


@pytest.mark.slow
def test_done_when_a_replayed_cboe_scan_as_a_real_process(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    root = build_cboe_dir(tmp_path / "replay")
    env = scan_env(f"replay:{root}", redis_url, redis_prefix, tmp_path / "instance")
    proc = run_flask("scan", "--force", "--symbols", "AAPL", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert_cboe_rows(json.loads(proc.stdout))


def test_a_replay_folder_serves_each_symbol_from_the_layout_it_holds(
    make_app, tmp_path: Path
) -> None:
    root = build_cboe_dir(tmp_path / "replay")
    premarket = build_replay_dir(tmp_path / "premarket", "premarket")
    (premarket / "AMZN").rename(root / "AMZN")
    app = make_app(SOURCE=f"replay:{root}", PUT_MIN_RETURN_PCT=5)
    args = ["scan", "--force", "--symbols", "AAPL,AMZN", "--json"]
    done = app.test_cli_runner().invoke(args=args)
    body = json.loads(done.stdout)
    assert body["symbols"]["AMZN"]["source"] == "yahoo"
    assert body["symbols"]["AMZN"]["vendor_iv30"] is None
    assert_cboe_rows({**body, "matches": [m for m in body["matches"] if m["symbol"] == "AAPL"]})


@pytest.mark.slow
def test_record_cboe_then_replay_reproduces_the_scan(make_app, tmp_path: Path) -> None:
    served = build_cboe_dir(tmp_path / "served")
    recorded = tmp_path / "recorded"
    (recorded / "AAPL").mkdir(parents=True)
    (recorded / "AAPL" / "2025-08-15.json").write_text("{}")  # an older Yahoo recording
    with CboeEmulator(served) as cboe:
        live = make_app(SOURCE=f"cboe:{cboe.base_url}")
        done = live.test_cli_runner().invoke(
            args=["record", "--source", "cboe", str(recorded), "AAPL", "ZZZZ"]
        )
        assert done.exit_code == 0, done.output
        assert f"AAPL: {recorded / 'AAPL' / 'cboe.json'}" in done.stdout
        assert "ZZZZ: unknown_symbol: Cboe does not know ZZZZ" in done.stderr
        live_scan = live.test_cli_runner().invoke(
            args=["scan", "--force", "--symbols", "AAPL", "--json"]
        )
    # The raw body, whole; the older recording of the other layout is gone.
    assert [p.name for p in (recorded / "AAPL").iterdir()] == ["cboe.json"]
    assert json.loads((recorded / "AAPL" / "cboe.json").read_bytes()) == json.loads(
        CBOE_AAPL.read_bytes()
    )
    replayed = make_app(SOURCE=f"replay:{recorded}").test_cli_runner()
    replay_scan = replayed.invoke(args=["scan", "--force", "--symbols", "AAPL", "--json"])
    live_matches = json.loads(live_scan.stdout)["matches"]
    assert live_matches and json.loads(replay_scan.stdout)["matches"] == live_matches
    assert_cboe_rows(json.loads(replay_scan.stdout))
