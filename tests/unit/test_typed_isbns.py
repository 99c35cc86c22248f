"""ISBNs as people type them (hyphens, spaces, a lower-case x) are cleaned row by row, and lists
checked item by item; both must come out exactly as ``isbn.clean`` would make them (no sockets)."""

from __future__ import annotations

from bookwarm.parsing.ingest import parse_library

CSV = (
    "Title,Author,ISBN\n"
    "Dune,Frank Herbert,978-0-441-17271-9\n"
    "Dune again,Frank Herbert,0 441 17271 7\n"
    "Kindred,Octavia E. Butler,notanisbn\n"
    'Wrapped,Ursula K. Le Guin,="0-441-47812-3"\n'
)


def test_hyphens_and_spaces_are_removed_and_bad_values_reported_as_cleaned():
    parsed = parse_library(CSV.encode())
    assert parsed.books.select("isbn13", "isbn10").rows() == [
        ("9780441172719", "0441172717"),
        ("9780441172719", "0441172717"),
        (None, None),
        ("9780441478125", "0441478123"),
    ]
    assert [(r.row, r.reason) for r in parsed.rejected] == [(4, "invalid ISBN 'NOTANISBN'")]


def test_a_lower_case_check_digit_x_is_still_valid():
    parsed = parse_library(b"Title,Author,ISBN\nA,Frank Herbert,0-8044-2957-x\n")
    assert parsed.books.select("isbn10").item() == "080442957X"


def test_lists_give_the_first_valid_isbn_of_each_kind_in_list_order():
    csv = (
        "Title,Author,ISBN\n"
        'A,Frank Herbert,"[0441172717, 9780441172719]"\n'
        'B,Frank Herbert,"[bad-1, 0-441-47812-3]"\n'
        'C,Frank Herbert,"[nope, 123]"\n'
        "D,Frank Herbert,9780441172719\n"
        'E,Frank Herbert,"[, 0441172717]"\n'
    )
    parsed = parse_library(csv.encode())
    assert parsed.books.select("isbn13", "isbn10").rows() == [
        ("9780441172719", "0441172717"),
        ("9780441478125", "0441478123"),  # the ISBN-13 derived from the list's only valid value
        (None, None),
        ("9780441172719", "0441172717"),
        ("9780441172719", "0441172717"),
    ]
    assert [(r.row, r.reason) for r in parsed.rejected] == [(4, "invalid ISBN 'NOPE'")]
