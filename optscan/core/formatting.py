"""Format Match values for people and files, by the column kinds of core.match."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from optscan.core.match import Kind

BLANK = "\N{EN DASH}"


def is_blank(value: Any) -> bool:
    """Return whether a value is missing (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


# How a value of each number kind is shown; text and dates show as they are.
_SHOWN: dict[str, Callable[[Any], str]] = {
    "int": lambda v: f"{int(v):d}",
    "count": lambda v: f"{int(v):,d}",
    "money": lambda v: f"{v:,.2f}",
    "percent": lambda v: f"{v:.1f}",
    "fraction": lambda v: f"{v * 100:.1f}",
    "delta": lambda v: f"{v:.3f}",
    "ratio": lambda v: f"{v:.2f}",
}


def display(value: Any, kind: Kind, *, blank: str = BLANK) -> str:
    """Return a value as a person reads it: fixed decimals, percents, a dash when missing."""
    if is_blank(value):
        return blank
    if kind == "flags":
        return ",".join(value)
    return _SHOWN.get(kind, str)(value)


def plain(value: Any, kind: Kind) -> str:
    """Return a value for a CSV cell: numbers rounded to 6 decimals, flags space-separated."""
    if is_blank(value):
        return ""
    if kind == "flags":
        return " ".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind in ("int", "count"):
        return str(int(value))
    if isinstance(value, float):
        # Sums such as strike - bid carry binary noise (0.29000000000000004): 6 decimals
        # keep every figure a person or a spreadsheet needs.
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)
