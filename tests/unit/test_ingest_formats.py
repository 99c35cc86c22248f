"""Each format, on the project's own small fixtures (tests/fixtures/exports)."""

import base64

import pytest

from bookwarm.errors import ParseError, SourceError
from bookwarm.parsing.ingest import parse_library
from bookwarm.parsing.names import DEFAULT_WARM_ROLES
from tests.conftest import FIXTURES

EXPORTS = FIXTURES / "exports"


def authors(parsed):
    return {a.key: a.books for a in parsed.authors}


def test_goodreads_quoted_isbns_additional_authors_and_initials():
    parsed = parse_library(EXPORTS / "goodreads.csv")
    assert parsed.format == "goodreads"
    assert parsed.rows == 5
    assert authors(parsed) == {"j-k-rowling": 2, "neil-gaiman": 2, "terry-pratchett": 1}
    assert parsed.isbns == ["9780060853983", "9780316228534", "9780393609059"]
    assert [(r.row, r.reason) for r in parsed.rejected] == [(6, "no author; invalid ISBN '0000000001'")]


def test_storygraph_contributor_roles_not_warmed():
    parsed = parse_library(EXPORTS / "storygraph.csv")
    assert parsed.format == "storygraph"
    assert authors(parsed) == {"ursula-k-le-guin": 2, "todd-barton": 1, "candice-carty-williams": 1}
    roles = {p.name: p.role for r in parsed.records() for p in r.authors}
    assert roles["Shvorne Marks"] == "narrator"
    assert roles["Margaret Chodos-Irvine"] == "illustrator"
    assert "9780441478125" in parsed.isbns  # derived from the ISBN-10


def test_roles_setting_warms_narrators_too():
    parsed = parse_library(EXPORTS / "storygraph.csv", warm_roles=DEFAULT_WARM_ROLES | {"narrator"})
    assert "shvorne-marks" in authors(parsed)


def test_librarything_latin1_tsv_last_first_and_parallel_roles():
    parsed = parse_library(EXPORTS / "librarything.tsv")
    assert parsed.format == "librarything"
    assert parsed.encoding == "cp1252"
    names = {a.name for a in parsed.authors}
    assert {"Julio Cortázar", "Thomas H. Cormen", "Charles E. Leiserson", "Martin Luther King Jr."} <= names
    assert "Karine Berriot" not in names  # translator
    assert "9780262033848" in parsed.isbns


@pytest.mark.parametrize(
    ("fixture", "fmt", "expected"),
    [
        ("bookbuddy.csv", "bookbuddy", {"michael-predko", "myke-predko", "george-orwell"}),
        ("calibre.csv", "calibre", {"seanan-mcguire", "mira-grant"}),
        ("openreads.csv", "openreads", {"mark-smith", "edward-snowden"}),
        ("inventaire.csv", "inventaire", {"douglas-hofstadter", "albert-camus"}),
        ("bookwyrm.csv", "bookwyrm", {"yotam-ottolenghi", "琅俨"}),
        ("generic_semicolon_utf16.csv", "generic", {"albert-camus"}),
        ("generic_latin1.csv", "generic", {"gabriel-garcia-marquez", "juan-rulfo"}),
        ("generic_tab_padded.tsv", "generic", {"frank-herbert", "brian-herbert", "octavia-e-butler"}),
    ],
)
def test_other_formats(fixture, fmt, expected):
    parsed = parse_library(EXPORTS / fixture)
    assert parsed.format == fmt
    assert set(authors(parsed)) == expected


def test_generic_padded_cells_979_and_invalid_isbn_reported():
    parsed = parse_library(EXPORTS / "generic_tab_padded.tsv")
    assert parsed.isbns == ["9791090636071"]
    assert [r.row for r in parsed.rejected] == [3]
    assert [r.title for r in parsed.records()] == ["Dune", "Kindred"]


def test_inventaire_translator_not_warmed():
    parsed = parse_library(EXPORTS / "inventaire.csv")
    assert "stuart-gilbert" not in authors(parsed)


def test_bytes_and_base64_sources_equal_the_path():
    raw = (EXPORTS / "goodreads.csv").read_bytes()
    from_path = parse_library(EXPORTS / "goodreads.csv").to_summary()
    assert parse_library(raw).to_summary() == from_path
    assert parse_library(base64.b64encode(raw).decode()).to_summary() == from_path


def test_multiline_quoted_cells_and_crlf():
    data = b'Title,Author,ISBN\r\n"A\r\nlong title",Ann Leckie,\r\n"Two",Ann Leckie,\r\n'
    parsed = parse_library(data)
    assert parsed.rows == 2
    assert authors(parsed) == {"ann-leckie": 2}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_classic_mac_line_endings(encoding):
    """Lines ended by CR alone (classic Mac OS exports) read as the same file with LF."""
    text = 'Title,Author,ISBN\r"A\rlong title",Ann Leckie,0441172717\rTwo,Frank Herbert,\r'
    parsed = parse_library(text.encode(encoding))
    assert parsed.rows == 2
    assert authors(parsed) == {"ann-leckie": 1, "frank-herbert": 1}
    assert parsed.isbns == ["9780441172719"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00" * 50, "binary"),
        (b"colour,size\nred,3\n", "no recognisable author column"),
        (b"Title,Author\n", "no books"),
        (b"Title,Au\rthor\nDune,Frank Herbert\n", "header .a line break inside an unquoted cell"),
    ],
)
def test_bad_content_is_one_clear_error(data, message):
    with pytest.raises(ParseError, match=message):
        parse_library(data)


def test_missing_file_and_size_limit(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        parse_library(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="over the"):
        parse_library(EXPORTS / "goodreads.csv", max_bytes=100)
    with pytest.raises(SourceError, match="file not found"):
        parse_library("this is not base64 at all!!")
    with pytest.raises(SourceError, match="neither an existing file nor valid base64"):
        parse_library("QUJ=REVGR0hJSktMTU5PUFFS")
