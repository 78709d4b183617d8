"""Format Match values for people and files, by the column kinds of core.match."""

from __future__ import annotations

import math
from typing import Any

from optscan.core.match import Kind

BLANK = "\N{EN DASH}"


def is_blank(value: Any) -> bool:
    """Return whether a value is missing (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def display(value: Any, kind: Kind, *, blank: str = BLANK) -> str:
    """Return a value as a person reads it: fixed decimals, percents, a dash when missing."""
    if is_blank(value):
        return blank
    if kind == "flags":
        return ",".join(value)
    if kind == "int":
        return f"{int(value):d}"
    if kind == "count":
        return f"{int(value):,d}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "percent":
        return f"{value:.1f}"
    if kind == "fraction":
        return f"{value * 100:.1f}"
    if kind == "delta":
        return f"{value:.3f}"
    if kind == "ratio":
        return f"{value:.2f}"
    return str(value)


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
