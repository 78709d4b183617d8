"""Tables the benchmarks print (Markdown, so that BENCHMARKS.md can hold them as printed)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """One benchmark's figures: a title, columns, rows of already formatted cells, notes."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append a row; cells are turned into text as they are."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        """Return the table as Markdown: title, header, rows, then the notes."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    """Return the median (the benchmarks report medians: these machines are noisy)."""
    return statistics.median(values)


def seconds(value: float) -> str:
    """Return seconds with three significant decimals."""
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def ratio(value: float) -> str:
    """Return a ratio such as 12.3x."""
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def count(value: float) -> str:
    """Return a large number with thousands separators."""
    return f"{value:,.0f}"
