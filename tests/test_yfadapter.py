"""yfinance's private internals are used in one module, and a yfinance release that moves one
of them fails here by name (see 'Upgrading yfinance' in the README)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from curl_cffi import requests as curl_requests
from yfinance.data import YfData

from optscan.sources import yfadapter
from optscan.sources.yfadapter import (
    INSTANCE_ATTRIBUTES,
    PRIVATE_NAMES,
    YfClient,
    YfinanceChanged,
    check,
)

PACKAGE = Path(__file__).resolve().parent.parent / "optscan"
ADAPTER = PACKAGE / "sources" / "yfadapter.py"


def test_the_installed_yfinance_has_every_name_the_adapter_uses() -> None:
    check()
    session = curl_requests.Session()
    try:
        client = YfClient(session)
        for attribute in INSTANCE_ATTRIBUTES:
            assert hasattr(client, attribute), attribute
        # One client per source, not yfinance's process-wide singleton.
        other = YfClient(session)
        assert other is not client and YfData() is not client
    finally:
        session.close()


@pytest.mark.parametrize(("module", "dotted", "_"), PRIVATE_NAMES, ids=lambda v: str(v))
def test_a_missing_name_fails_by_name(
    monkeypatch: pytest.MonkeyPatch, module: object, dotted: str, _: object
) -> None:
    owner_path, _, name = dotted.rpartition(".")
    owner = module
    for part in owner_path.split("."):
        owner = getattr(owner, part)
    monkeypatch.delattr(owner, name)
    with pytest.raises(YfinanceChanged, match=rf"has no {module.__name__}\.{dotted}\b.*README"):
        check()


def test_a_changed_signature_fails_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(YfData, "_get_cookie_basic", lambda self: True)
    with pytest.raises(YfinanceChanged, match=r"YfData._get_cookie_basic no longer takes timeout"):
        check()


def _imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_other_module_imports_yfinance_or_names_its_internals() -> None:
    private = {dotted.rsplit(".", 1)[-1] for _, dotted, _ in PRIVATE_NAMES} | {"_BASE_URL_"}
    for path in PACKAGE.rglob("*.py"):
        if path == ADAPTER:
            continue
        assert not any(m.split(".")[0] == "yfinance" for m in _imports_of(path)), path
        text = path.read_text()
        assert not [name for name in private if name in text], path
    assert yfadapter.__file__ == str(ADAPTER)
