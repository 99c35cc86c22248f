"""Hand-edited files that polars refuses are read by the csv module, as spreadsheets read them;
a quote that is never closed is one clear error with its line (no sockets)."""

from __future__ import annotations

import pytest

from bookwarm.errors import ParseError
from bookwarm.parsing.ingest import parse_library
from tests.conftest import FIXTURES

GOODREADS = (FIXTURES / "exports" / "goodreads.csv").read_bytes()


def test_a_stray_quote_reads_as_the_same_file_quoted_properly():
    stray = GOODREADS + b'99,Vinyl 12",Jo Walton,"Walton, Jo",,"=""0441172717""",,0,read\n'
    quoted = GOODREADS + b'99,"Vinyl 12""",Jo Walton,"Walton, Jo",,"=""0441172717""",,0,read\n'
    from_csv_module, from_polars = parse_library(stray), parse_library(quoted)
    assert from_csv_module.to_summary() == from_polars.to_summary()
    assert from_csv_module.books.rows() == from_polars.books.rows()
    assert from_csv_module.people.rows() == from_polars.people.rows()
    assert from_csv_module.books.row(-1) == (from_polars.rows + 1, 'Vinyl 12"', "9780441172719", "0441172717")


def test_quotes_in_the_middle_of_a_cell_are_read_as_a_spreadsheet_does():
    parsed = parse_library(b'Title,Author\nDune,"Frank" Herbert\nKindred,Octavia E. Butler"\n')
    assert [a.name for a in parsed.authors] == ["Frank Herbert", 'Octavia E. Butler"']


def test_a_quote_never_closed_is_reported_with_the_line_it_opens_on():
    data = b'Title,Author\nDune,Frank Herbert\n"Kindred,Octavia E. Butler\nBeloved,Toni Morrison\n'
    with pytest.raises(ParseError, match=r"line 3: a quote opened and never closed"):
        parse_library(data)
