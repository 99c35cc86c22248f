"""Every real export in ../shared/fixtures/exports parses, with every primary author found.

The expected primary authors are read with Python's csv module, independently of the parser.
"""

import csv
import io

import pytest

from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.names import parse_cell

# file -> (format, primary author column, how that column writes names)
EXPECTED = {
    "goodreads/genekaufman_goodreads_library_export.csv": ("goodreads", "Author", "first_last"),
    "goodreads/bsanser_goodreads_library_export.csv": ("goodreads", "Author", "first_last"),
    "goodreads/bookwyrm_goodreads_fixture.csv": ("goodreads", "Author", "first_last"),
    "goodreads/bookwyrm_goodreads-rating_fixture.csv": ("goodreads", "Author", "first_last"),
    "storygraph/bsanser_storygraph_export.csv": ("storygraph", "Authors", "list"),
    "storygraph/bookwyrm_storygraph_fixture.csv": ("storygraph", "Authors", "list"),
    "librarything/robdmc_LibraryThing_export.csv": ("librarything", "Primary Author", "last_first"),
    "librarything/bookwyrm_librarything_fixture.tsv": ("librarything", "Primary Author", "last_first"),
    "bookbuddy/fusiongyro_BookBuddy_2016.csv": ("bookbuddy", "Author", "list"),
    "calibre/bookwyrm_calibre_catalog.csv": ("calibre", "authors", "first_last"),
    "openreads/bookwyrm_openreads-csv-example.csv": ("openreads", "author", "auto"),
    "inventaire/bookwyrm_inventaire_export.csv": ("inventaire", "Authors labels", "list"),
    "bookwyrm/bookwyrm_export_fixture.csv": ("bookwyrm", "author_text", "list"),
    "bookwyrm/bookwyrm_generic_fixture.csv": ("generic", "author", "first_last"),
    "bookwyrm/bookwyrm_openlibrary_readinglog_fixture.csv": ("openlibrary-reading-log", None, None),
}


def primary_keys(path, column, style):
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    delimiter = "\t" if path.suffix == ".tsv" else ","
    keys = set()
    for row in csv.DictReader(io.StringIO(text), delimiter=delimiter):
        cell = row[column]
        if style == "list":
            people = parse_cell(cell, separator=",")
        else:
            people = parse_cell(cell, style=style, separator="," if style == "auto" else "")
        keys.update(p.key for p in people if p.role == "author")
    return keys


def test_every_shared_export_is_listed(shared_fixtures):
    on_disk = {
        str(p.relative_to(shared_fixtures / "exports")) for p in (shared_fixtures / "exports").rglob("*.*sv")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_real_export_parses_with_every_primary_author(shared_fixtures, relative):
    fmt, column, style = EXPECTED[relative]
    path = shared_fixtures / "exports" / relative
    parsed = parse_library(path)
    assert parsed.format == fmt
    assert parsed.rows > 0
    found = {a.key for a in parsed.authors}
    if column is None:
        assert found == set()
        assert len(parsed.rejected) == parsed.rows
        return
    expected = primary_keys(path, column, style)
    assert expected, "the fixture has primary authors"
    assert expected <= found, f"missing: {sorted(expected - found)[:5]}"


def test_goodreads_large_export_figures(shared_fixtures):
    parsed = parse_library(shared_fixtures / "exports/goodreads/genekaufman_goodreads_library_export.csv")
    assert parsed.rows == 978
    top = parsed.authors[0]
    assert (top.name, top.books) == ("Stephen King", 39)


def test_librarything_invalid_utf8_is_kept_as_utf8(shared_fixtures):
    parsed = parse_library(shared_fixtures / "exports/librarything/bookwyrm_librarything_fixture.tsv")
    assert parsed.encoding.startswith("utf-8")
    assert "Mikhaïl Boulgakov" in {a.name for a in parsed.authors}


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_no_reported_name_the_file_does_not_carry(shared_fixtures, relative):
    """Precision: every word of every reported author is in the file (names are only tidied,
    flipped from "Last, First" or split out of a list, never made up)."""
    import re

    path = shared_fixtures / "exports" / relative
    parsed = parse_library(path)
    text = parsed_text(path)
    for author in parsed.authors:
        words = re.findall(r"[^\W\d_]+", author.name.casefold())
        missing = [w for w in words if w not in text]
        assert not missing, f"{author.name!r}: {missing} not in {relative}"


def parsed_text(path) -> str:
    """The file's text, case folded, in the encoding the parser decided on."""
    from bookwarm.parsing.decode import decode

    text, _ = decode(path.read_bytes())
    return text.casefold()
