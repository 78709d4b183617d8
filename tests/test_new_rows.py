"""The "new" flag: rows whose contract was not among their symbol's rows in its previous scan."""

from __future__ import annotations

import json
from pathlib import Path

from optscan.core.newness import NEW
from optscan.web.liverows import RowRenderer

STRICT = ["scan", "--force", "--symbols", "AAPL", "--min-return", "50", "--json"]
DEFAULT = ["scan", "--force", "--symbols", "AAPL", "--json"]


def scan(app, args) -> dict:
    result = app.test_cli_runner().invoke(args=args)
    return json.loads(result.stdout)


def board_flags(app) -> dict[str, list[str]]:
    group = app.extensions["optscan"].store.board("put")["AAPL"]
    return {m["contract"]: m["flags"] for m in group["matches"]}


def test_rows_new_since_the_previous_scan_are_flagged_on_the_board_page_and_stream(
    make_app, aapl_dir: Path
) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    first = scan(app, STRICT)
    (kept,) = (m["contract"] for m in first["matches"])
    assert NEW not in board_flags(app)[kept]  # a symbol's first scan: nothing is new

    second = scan(app, DEFAULT)
    flags = board_flags(app)
    added = {m["contract"] for m in second["matches"]} - {kept}
    assert added and NEW not in flags[kept]
    assert all(flags[c][0] == NEW for c in added)
    # The command's own rows and the live rows say the same.
    assert {m["contract"] for m in second["matches"] if NEW in m["flags"]} == added
    live = [e for e in app.extensions["optscan"].events.logged() if e.type == "symbol-done"][-1]
    html = RowRenderer(app)(live.type, live.id, live.data)["html"]
    shown = {c for c in added if f'data-contract="{c}"' in html}
    assert shown == added and html.count("badge-ok") == len(added)

    page = app.test_client().get("/").get_data(as_text=True)
    for contract in added:
        row = page.split(f'data-contract="{contract}"', 1)[1].split("</tr>", 1)[0]
        assert '<span class="badge badge-ok" title="Not among this symbol' in row
    row = page.split(f'data-contract="{kept}"', 1)[1].split("</tr>", 1)[0]
    assert "badge-ok" not in row

    third = scan(app, DEFAULT)  # the same rows again: nothing is new any more
    assert not any(NEW in m["flags"] for m in third["matches"])


def test_a_failed_scan_keeps_the_set_the_next_scan_compares_with(
    make_app, aapl_dir: Path, tmp_path: Path
) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    scan(app, STRICT)
    empty = tmp_path / "empty"
    (empty / "AAPL").mkdir(parents=True)
    broken = make_app(SOURCE=f"replay:{empty}")
    assert scan(broken, DEFAULT)["success"] is False
    second = scan(app, DEFAULT)
    assert sum(NEW in m["flags"] for m in second["matches"]) == len(second["matches"]) - 1


def test_a_symbol_removed_and_added_again_starts_afresh(make_app, aapl_dir: Path) -> None:
    app = make_app(SOURCE=f"replay:{aapl_dir}")
    scan(app, STRICT)
    svc = app.extensions["optscan"]
    assert svc.store.contracts("put", "AAPL") is not None
    svc.watchlist.add(["AAPL"])
    svc.remove_symbols(["AAPL"])
    assert svc.store.contracts("put", "AAPL") is None
    assert not any(NEW in m["flags"] for m in scan(app, DEFAULT)["matches"])
