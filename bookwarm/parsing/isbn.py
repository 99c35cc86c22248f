"""ISBN cleaning, checksum validation and 10 <-> 13 conversion.

Two forms of the same rules: scalar functions for single values (providers, lookups) and polars
expressions for whole columns, because a Python call per row would cost most of a 100k-row parse.
``tests/unit/test_isbn.py`` checks that both forms agree.
"""

from __future__ import annotations

import re

import polars as pl

# Goodreads writes ="0123456789"; LibraryThing writes [0123456789]; people type hyphens and spaces.
_JUNK = re.compile(r"[\s\-=\"'\[\]]")
_JUNK_PATTERN = r"[\s\-=\"'\[\]]"
ISBN10_RE = r"^\d{9}[\dX]$"
ISBN13_RE = r"^97[89]\d{10}$"


def clean(raw: str) -> str:
    """Strip spreadsheet quoting, brackets, hyphens and spaces; upper-case a trailing x."""
    return _JUNK.sub("", raw).upper()


def is_valid_isbn10(value: str) -> bool:
    if not re.fullmatch(ISBN10_RE, value):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(value))
    return total % 11 == 0


def is_valid_isbn13(value: str) -> bool:
    if not re.fullmatch(ISBN13_RE, value):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(value))
    return total % 10 == 0


def isbn10_to_13(isbn10: str) -> str:
    body = "978" + isbn10[:9]
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def isbn13_to_10(isbn13: str) -> str | None:
    """Only 978-prefixed ISBN-13s have an ISBN-10; 979 ones do not."""
    if not isbn13.startswith("978"):
        return None
    body = isbn13[3:12]
    check = (11 - sum((10 - i) * int(c) for i, c in enumerate(body)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


def normalise(raw: str | None) -> tuple[str | None, str | None]:
    """Return ``(isbn13, isbn10)`` for one raw value; ``(None, None)`` when it is not a valid ISBN."""
    if not raw:
        return None, None
    value = clean(raw)
    if is_valid_isbn13(value):
        return value, isbn13_to_10(value)
    if is_valid_isbn10(value):
        return isbn10_to_13(value), value
    return None, None


# ---------------------------------------------------------------- polars expressions


def _weighted(number: pl.Expr, width: int, weights: list[int]) -> pl.Expr:
    """Sum of digit * weight over a ``width``-digit integer: arithmetic beats one slice per digit."""
    return pl.sum_horizontal([(number // 10 ** (width - 1 - i)) % 10 * w for i, w in enumerate(weights)])


_W13 = [1 if i % 2 == 0 else 3 for i in range(13)]
_W10 = [10 - i for i in range(9)]


def clean_expr(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(_JUNK_PATTERN, "").str.to_uppercase()


def valid13_expr(v: pl.Expr) -> pl.Expr:
    """Checksum only: combine with ``str.contains(ISBN13_RE)`` for the shape."""
    return _weighted(v.cast(pl.Int64, strict=False), 13, _W13) % 10 == 0


def valid10_expr(v: pl.Expr) -> pl.Expr:
    """Checksum only: combine with ``str.contains(ISBN10_RE)`` for the shape."""
    body = v.str.slice(0, 9).cast(pl.Int64, strict=False)
    last = v.str.slice(9, 1)
    check = pl.when(last == "X").then(pl.lit(10, dtype=pl.Int64)).otherwise(last.cast(pl.Int64, strict=False))
    return (_weighted(body, 9, _W10) + check) % 11 == 0


def to13_expr(v10: pl.Expr) -> pl.Expr:
    body = pl.lit("978") + v10.str.slice(0, 9)
    total = _weighted(body.cast(pl.Int64, strict=False), 12, _W13[:12])
    return body + ((10 - total % 10) % 10).cast(pl.String)


def to10_expr(v13: pl.Expr) -> pl.Expr:
    body = v13.str.slice(3, 9)
    check = (11 - _weighted(body.cast(pl.Int64, strict=False), 9, _W10) % 11) % 11
    check_char = pl.when(check == 10).then(pl.lit("X")).otherwise(check.cast(pl.String))
    return pl.when(v13.str.starts_with("978")).then(body + check_char).otherwise(pl.lit(None))
