"""Shapes real exports take that the parser got wrong (#14): padded quoted cells, several people in one
cell, localised roles, spreadsheet formulas. Each on a small file of the project's own
(tests/fixtures/shapes), then fuzzed with generated files of those shapes."""

from __future__ import annotations

import random

import pytest

from bookwarm.errors import ParseError
from bookwarm.parsing.ingest import parse_library
from tests.conftest import FIXTURES

SHAPES = FIXTURES / "shapes"
FORMULA_REASON = "a cell reads as a spreadsheet formula (not read)"


def names(parsed) -> set[str]:
    return {a.name for a in parsed.authors}


def test_a_quote_after_padding_opens_a_quoted_cell():
    """`Jack London      , "London, Jack"      ,` is three cells, as a spreadsheet reads it."""
    parsed = parse_library(SHAPES / "goodreads_padded.csv")
    assert parsed.format == "goodreads" and parsed.rows == 3
    assert names(parsed) == {"Jack London", "Dacre Stoker", "Ian Holt", "Bram Stoker", "Orson Scott Card"}
    assert parsed.isbns == ["9780141321059", "9780812550702"]
    assert parsed.rejected == []


def test_several_people_in_one_last_first_cell_are_split_then_flipped():
    parsed = parse_library(SHAPES / "librarything_multi.tsv")
    found = names(parsed)
    assert {"Dustin Boswell", "Trevor Foucher"} <= found  # "Boswell, Dustin & Foucher, Trevor"
    assert {"D. H. Lawrence", "David Herbert Lawrence"} <= found
    assert {"C.B. Daring Volcano", "J. Rogue", "Deric Shannon"} <= found  # a ";" list
    assert not any("&" in n or ";" in n for n in found)


def test_localised_author_roles_are_warmed_and_actors_are_not():
    parsed = parse_library(SHAPES / "librarything_multi.tsv")
    found = names(parsed)
    assert {"Italo Svevo", "Franz Kafka"} <= found  # Autore, Autor
    assert {"Tom Hanks", "Steven Spielberg", "Malcolm Pasley"}.isdisjoint(
        found
    )  # actor, director, Übersetzer
    roles = {p.name: p.role for r in parsed.records() for p in r.authors}
    assert roles["Malcolm Pasley"] == "translator" and roles["Tom Hanks"] == "contributor"
    assert [(r.row, r.reason) for r in parsed.rejected] == [(6, "no author")]  # the film


def test_ampersand_and_semicolon_lists_in_bookbuddy():
    parsed = parse_library(SHAPES / "bookbuddy_ampersand.csv")
    assert names(parsed) == {"Rhymer Rigby", "Alessandra Mussi", "Mary Beard", "Tom Holland"}


def test_a_firm_with_an_ampersand_stays_one_name(tmp_path):
    path = tmp_path / "bb.csv"
    path.write_text(
        'Uploaded Image URL,Author,"Author (Last, First)",Title,ISBN\n'
        ',O\'Reilly & Associates,"O\'Reilly",Manual,\n,Smith & Sons; Ann Lee,"Smith",Catalogue,\n'
    )
    assert names(parse_library(path)) == {"O'Reilly & Associates", "Smith & Sons", "Ann Lee"}


def test_formula_cells_reject_their_row_without_echoing_it():
    parsed = parse_library(SHAPES / "generic_formulas.csv")
    assert names(parsed) == {"Neil Gaiman", "Someone Else", "Jean-Paul Sartre"}
    assert [(r.row, r.reason) for r in parsed.rejected] == [
        (3, FORMULA_REASON),
        (4, "invalid ISBN 'HYPERLINK(HTTP://X)'"),  # the author stands; `="…"` is cleaned as Goodreads' form
        (5, FORMULA_REASON),
        (6, FORMULA_REASON),
    ]


def test_an_invalid_isbn_that_reads_as_a_formula_is_not_echoed(tmp_path):
    path = tmp_path / "isbn.csv"
    path.write_text("Title,Author,ISBN\nA,Ann Lee,+cmd|x!A1\nC,Cy Lee,@SUM(1)\n")
    parsed = parse_library(path)
    assert names(parsed) == {"Ann Lee", "Cy Lee"}
    assert {r.reason for r in parsed.rejected} == {"invalid ISBN (a spreadsheet formula, not shown)"}


def test_goodreads_quoted_isbns_are_not_formulas(tmp_path):
    path = tmp_path / "gr.csv"
    path.write_text(
        "Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13\n"
        '1,Coraline,Neil Gaiman,"Gaiman, Neil",,"=""0380807343""","=""9780380807345"""\n'
    )
    parsed = parse_library(path)
    assert names(parsed) == {"Neil Gaiman"} and parsed.isbns == ["9780380807345"] and parsed.rejected == []


FIRST = ["Ann", "Jack", "Mary", "Olu", "Zoë", "Jean-Luc", "D. H.", "Ursula K.", "Tom", "Li"]
LAST = ["London", "Beard", "Okafor", "Müller", "Le Guin", "Holland", "Stoker", "Wu", "O'Neil", "Smith"]
FORMULAS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://x")',
    "+SUM(A1)",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3!A1",
]


def _pad(rnd: random.Random, cell: str) -> str:
    quoted = f'"{cell}"' if ("," in cell or rnd.random() < 0.3) else cell
    return " " * rnd.randint(0, 6) + quoted + " " * rnd.randint(0, 6)


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_padded_quoted_multi_person_and_formula_cells(tmp_path, seed):
    """Generated Goodreads files, every cell padded at random and some quoted, additional authors as
    lists, some author cells formulas: every real author found, nothing the file does not carry,
    every formula row rejected."""
    rnd = random.Random(seed)
    header = ["Book Id", "Title", "Author", "Author l-f", "Additional Authors", "ISBN13"]
    lines = [",".join(_pad(rnd, h) for h in header)]
    expected: set[str] = set()
    formula_rows: set[int] = set()
    for i in range(rnd.randint(5, 40)):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        author = f"{first} {last}"
        others = [f"{rnd.choice(FIRST)} {rnd.choice(LAST)}" for _ in range(rnd.randint(0, 2))]
        if rnd.random() < 0.15:
            author = rnd.choice(FORMULAS)
            formula_rows.add(i + 2)
        else:
            expected |= {author, *others}
        cells = [str(i + 1), f"Title {i}, Part {i % 3}", author, f"{last}, {first}", ", ".join(others), ""]
        lines.append(",".join(_pad(rnd, c.replace('"', '""')) for c in cells))
    path = tmp_path / f"fuzz{seed}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        parsed = parse_library(path)
    except ParseError as exc:  # the only error allowed: a clear one
        pytest.fail(f"seed {seed}: {exc}")
    found = names(parsed)
    text = path.read_text(encoding="utf-8")
    assert expected <= found, f"seed {seed}: missing {expected - found}"
    assert all(name in text for name in found), f"seed {seed}: not in the file: {found - expected}"
    assert not any(n[0] in "=+-@" or '"' in n for n in found)
    assert {r.row for r in parsed.rejected if r.reason == FORMULA_REASON} == formula_rows
