"""The README's configuration table and the settings table in optscan/config.py agree."""

from __future__ import annotations

import re
from pathlib import Path

from optscan.config import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"
_ROW = re.compile(r"^\| `(?:OPTSCAN_)?([A-Z0-9_]+)`[^|]*\| ([^|]+) \|", re.M)


def _documented() -> dict[str, str]:
    text = README.read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {name: default.strip() for name, default in _ROW.findall(table)}


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same(shown: str, default: object) -> bool:
    try:
        return float(shown) == float(default)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return shown == _shown(default)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = _documented()
    missing = [s.key for s in SETTINGS if s.key not in documented]
    assert missing == [], f"settings missing from the README's configuration table: {missing}"
    # Settings whose default is computed or described in words rather than shown as a value.
    described = {"SECRET_KEY", "INSTANCE_PATH"}
    wrong = {
        s.key: (documented[s.key], _shown(s.default))
        for s in SETTINGS
        if s.key not in described and not _same(documented[s.key].strip("`"), s.default)
    }
    assert wrong == {}, f"README default differs from optscan/config.py: {wrong}"


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {s.key for s in SETTINGS}
    extra = sorted(set(_documented()) - known)
    assert extra == [], f"README documents settings optscan does not have: {extra}"
