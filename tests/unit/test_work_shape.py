"""A work's cached shape is written by hand (for speed): it must stay what ``asdict`` gives, every
field of the dataclass included, so adding a field without writing it fails here."""

from dataclasses import asdict

from bookwarm.providers.models import Person, Work


def test_a_work_is_cached_with_every_field_in_the_dataclass_order():
    work = Work(
        "Good Omens",
        "good-omens",
        "openlibrary",
        "OL1W",
        1990,
        ["9780060853983"],
        "https://covers.openlibrary.org/b/id/1-M.jpg",
        ["eng"],
        "A description",
        ["Fiction"],
        [Person("Neil Gaiman", "neil-gaiman", "OL1A"), Person("Terry Pratchett", "terry-pratchett", None)],
        {"title": "openlibrary", "description": "google_books"},
    )
    expected = asdict(work)
    expected.pop("source")
    expected["sources"] = expected.pop("provenance")
    cached = work.to_dict()
    assert cached == expected and list(cached) == list(expected)
    cached["isbn13"].append("x")  # a copy: the cached dict never aliases the work
    assert work.isbn13 == ["9780060853983"]
