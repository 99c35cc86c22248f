"""The fake providers' catalog answers like a search: every query word in one of an author's names."""

from __future__ import annotations

from bookwarm.providers.fake.catalog import load_catalog

CATALOG = {
    "authors": [
        {
            "key": "OL1A",
            "name": "Neil Gaiman",
            "alternate_names": ["Neil Richard MacKinnon Gaiman"],
            "works": [{"title": "Good Omens", "isbn": ["9780060853983"], "coauthors": ["OL2A"]}],
        },
        {"key": "OL2A", "name": "Terry Pratchett", "works": [{"title": "Mort", "isbn": ["9780552131063"]}]},
        {"key": "OL3A", "name": "Neil Stephenson", "works": [{"title": "Anathem"}]},
    ]
}


def titles(query: str) -> list[str]:
    return [w.title for w in load_catalog(CATALOG).works_by_name(query)]


def test_all_words_must_match_one_name_and_order_is_the_catalogs():
    assert titles("Neil Gaiman") == ["Good Omens"]
    assert titles("gaiman richard") == ["Good Omens"]  # an alternate name
    assert titles("Neil") == ["Good Omens", "Anathem"]
    assert titles("Richard Stephenson") == []  # words from two different authors' names
    assert titles("Terry Pratchett") == ["Good Omens", "Mort"]  # co-written works count
    assert titles("   ") == []


def test_isbn_lookup():
    catalog = load_catalog(CATALOG)
    assert catalog.by_isbn("9780552131063").title == "Mort"
    assert catalog.by_isbn("9780000000002") is None
