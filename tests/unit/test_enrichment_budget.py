"""Enrichment's arithmetic: ISBNdb's cheaper endpoint per plan and counting rule, what a provider
can add, and how found works fill cached ones."""

from __future__ import annotations

import pytest

from bookwarm.parsing.titles import title_key
from bookwarm.providers.models import Work
from bookwarm.providers.session import budget
from bookwarm.settings import resolve
from bookwarm.warming.enrichment import (
    cheaper_isbndb_endpoint,
    fill_works,
    isbndb_units,
    isbns_to_ask,
    missing_fields,
)


@pytest.mark.parametrize(
    ("works", "isbns", "batch", "counting", "endpoint", "units"),
    [
        (5, 5, 100, "per_isbn", "author", 1),  # every ISBN counted: one /author page is cheaper
        (1, 1, 100, "per_isbn", "books", 1),  # a tie goes to the targeted call
        (5, 5, 100, "per_request", "books", 1),
        (250, 250, 100, "per_request", "author", 1),  # ceil(250/100) = 3 calls against 1 page of /author...
        (2500, 2500, 1000, "per_request", "books", 3),  # ...unless /author needs as many pages
        (40, 0, 100, "per_request", "author", 1),  # no ISBN to ask by
    ],
)
def test_the_cheaper_isbndb_endpoint(works, isbns, batch, counting, endpoint, units):
    chosen = cheaper_isbndb_endpoint(works=works, isbns=isbns, batch=batch, counting=counting)
    assert chosen == endpoint
    assert isbndb_units(chosen, works=works, isbns=isbns, batch=batch, counting=counting) == units


def test_budget_is_a_share_of_the_quota_and_zero_stays_unlimited():
    settings = resolve({"BOOKWARM_ISBNDB_DAILY_QUOTA": "15000", "BOOKWARM_ISBNDB_QUOTA_SHARE": "0.8667"})
    assert budget(settings.isbndb) == 13000  # the original system's ledger: 13,000 of 15,000
    assert budget(resolve({"BOOKWARM_OPENLIBRARY_DAILY_QUOTA": "0"}).openlibrary) == 0


def work(title: str, isbn: str, **fields) -> dict:
    return {"title": title, "title_key": title_key(title), "isbn13": [isbn], "sources": {}, **fields}


def test_missing_fields_and_isbns_to_ask():
    cached = {
        "works": [
            work("Ancillary Justice", "9780316246620", description="x", cover="c", categories=["SF"]),
            work("Ancillary Sword", "9780316246651", cover="c"),
            work("Provenance", "9780316388689"),
        ]
    }
    assert missing_fields(cached, "google_books") == {"description": 2, "categories": 2, "cover": 1}
    assert missing_fields(cached, "isbndb") == {"cover": 1, "description": 2}
    assert isbns_to_ask(cached) == ["9780316246651", "9780316388689"]


def test_fill_by_isbn_then_title_with_provenance_and_no_new_works():
    cached = [
        work("Ancillary Sword", "9780316246651"),
        work("Provenance", "9780316388689", description="own"),
    ]
    found = [
        Work.from_fields(
            "google_books",
            title="Ancillary Sword (2nd ed.)",
            isbns=["9780316246651", "9780356502427"],
            date="2014",
            authors=[],
            description="Breq goes on.",
            categories=["Fiction"],
        ),
        Work.from_fields(
            "google_books",
            title="Provenance",
            isbns=[],
            date=None,
            authors=[],
            description="theirs",
            cover="http://c",
        ),
        Work.from_fields("google_books", title="Not Hers", isbns=["9780000000002"], date=None, authors=[]),
    ]
    filled = fill_works(cached, found, "google_books")
    sword, provenance = cached
    assert sword["description"] == "Breq goes on." and sword["sources"]["description"] == "google_books"
    assert sword["categories"] == ["Fiction"] and "9780356502427" in sword["isbn13"]
    assert provenance["description"] == "own" and provenance["cover"] == "http://c"  # filled, never replaced
    assert len(cached) == 2 and filled == 4  # description, year, categories; cover; no new work
