"""``tidy`` and ``author_key`` as polars expressions, for whole columns of plain names.

Most names in a library are printable ASCII, with no "(" and no run of capitals. For those,
``tidy`` and ``author_key`` come down to a few string operations that polars runs over a whole
column at once, where Python spent ~3 µs a name. Everything else (accents, initials, inline roles,
tabs) goes through ``bookwarm.parsing.names.parse_cell``. ``tests/unit/test_names.py`` checks that
both forms agree. A module of its own so that what needs one name's key (a shard, the read API, a
provider) does not import polars (about 0.1 s of CPU a process).
"""

from __future__ import annotations

import polars as pl

from bookwarm.parsing.names import JUNK_KEYS


def is_plain_expr(cell: pl.Expr) -> pl.Expr:
    """Cells the expressions below normalise exactly as ``parse_cell`` would."""
    return cell.str.contains(r"^[\x20-\x27\x29-\x7e]*$") & ~cell.str.contains(r"[A-Z]{2}")


def plain_name_expr(cell: pl.Expr) -> pl.Expr:
    """``tidy`` for a plain cell: its only whitespace is the space."""
    return cell.str.replace_all(" {2,}", " ").str.strip_chars(" ,;")


def plain_key_expr(name: pl.Expr) -> pl.Expr:
    """``author_key`` for a plain name: lower-case letter and digit runs joined by "-"."""
    return name.str.to_lowercase().str.replace_all("[^a-z0-9]+", "-").str.strip_chars("-")


def is_junk_expr(key: pl.Expr) -> pl.Expr:
    return key.is_in(sorted(JUNK_KEYS))
