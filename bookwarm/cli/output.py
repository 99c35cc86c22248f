"""Small helpers for command output: JSON to stdout, aligned tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int | None = None) -> None:
    shown = list(rows if limit is None else rows[:limit])
    widths = [max([len(h), *(len(str(r[i])) for r in shown)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in shown:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    if limit is not None and len(rows) > limit:
        print(f"... and {len(rows) - limit} more")
