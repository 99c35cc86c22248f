"""ISBN cleaning, checksum validation and 10 <-> 13 conversion.

Scalar functions for single values (providers, lookups); the same rules as polars expressions for
whole columns are in ``bookwarm.parsing.isbn_exprs``. ``tests/unit/test_isbn.py`` checks that both
forms agree.
"""

from __future__ import annotations

import re

# Goodreads writes ="0123456789"; LibraryThing writes [0123456789]; people type hyphens and spaces.
JUNK_PATTERN = r"[\s\-=\"'\[\]]"  # also the column form's (isbn_exprs.clean_expr)
_JUNK = re.compile(JUNK_PATTERN)
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
