"""Turn raw export bytes into UTF-8 text polars can read, and find the delimiter.

Real exports arrive with BOMs, as UTF-16 from spreadsheet apps, as Latin-1/cp1252, or as UTF-8 with
a few broken bytes (LibraryThing). Polars only reads UTF-8, so decoding is decided here once.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

from bookwarm.errors import ParseError

_DELIMITERS = (",", ";", "\t", "|")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def decode(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding_name)``; raise ParseError for empty or binary content."""
    if not data.strip(b"\r\n\t \x00\xef\xbb\xbf\xff\xfe"):
        raise ParseError("the file is empty")
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace"), "utf-8-sig"
    for bom, name in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _checked(data[len(bom) :].decode(name, errors="replace"), name)
    if _looks_like_bomless_utf16(data):
        name = "utf-16-le" if data[1:2] == b"\x00" else "utf-16-be"
        return _checked(data.decode(name, errors="replace"), name)
    if b"\x00" in data[:65536]:
        raise ParseError("the file looks binary (NUL bytes), not a CSV or TSV export")
    try:
        return _checked(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    # Mostly-valid UTF-8 with a few broken bytes (seen in LibraryThing exports) stays UTF-8; a file
    # where nearly every non-ASCII byte is invalid is a single-byte encoding.
    lenient = data.decode("utf-8", errors="replace")
    high_bytes = sum(1 for b in data if b >= 0x80)
    if lenient.count("\ufffd") * 2 < high_bytes:
        return _checked(lenient, "utf-8 (with invalid bytes replaced)")
    try:
        return _checked(data.decode("cp1252"), "cp1252")
    except UnicodeDecodeError:
        return _checked(data.decode("latin-1"), "latin-1")


def _looks_like_bomless_utf16(data: bytes) -> bool:
    head = data[:400]
    return len(head) >= 4 and head.count(b"\x00") >= len(head) // 3


def _checked(text: str, encoding: str) -> tuple[str, str]:
    sample = text[:65536]
    controls = len(_CONTROL.findall(sample))
    if "\x00" in sample or controls > max(8, len(sample) // 100):
        raise ParseError("the file looks binary (control bytes), not a CSV or TSV export")
    return text, encoding


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most fields (quotes respected)."""
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    best, best_count = ",", 0
    for delimiter in _DELIMITERS:
        fields = next(csv.reader(io.StringIO(header), delimiter=delimiter), [])
        if len(fields) > best_count:
            best, best_count = delimiter, len(fields)
    return best
