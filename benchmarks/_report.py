"""Shared by the benchmark scripts: the Markdown results table."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(rows: list[dict[str, str]], columns: Sequence[str]) -> str:
    """Rows of strings as a Markdown table with ``columns`` in that order."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines)
