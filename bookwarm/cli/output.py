"""Small helpers for command output: JSON to stdout, tables for people (rich on a terminal)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int | None = None) -> None:
    """A rich table on a terminal; plain aligned columns otherwise (pipes, files, scripts)."""
    shown = list(rows if limit is None else rows[:limit])
    if sys.stdout.isatty():
        _rich_table(headers, shown)
        if limit is not None and len(rows) > limit:
            print(f"... and {len(rows) - limit} more")
        return
    widths = [max([len(h), *(len(str(r[i])) for r in shown)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in shown:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    if limit is not None and len(rows) > limit:
        print(f"... and {len(rows) - limit} more")


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*(h or " " for h in headers), show_header=any(headers), header_style="bold")
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))  # as text: a cell's "[...]" is never rich markup
    Console().print(table)
