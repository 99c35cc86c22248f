"""Export formats recognised from their header row.

Each rule names the columns that identify an app's export and says how to read its author and
ISBN columns. Rules are data, so adding an app means adding one entry here and one fixture test.
"""

from __future__ import annotations

from dataclasses import dataclass

from bookwarm.parsing.names import NameStyle

COMMA = r"\s*,\s*"
# Cells of several people written "Last, First & Last, First" or "A; B; C" (LibraryThing's Primary
# Author sometimes, BookBuddy): split on these, then each is flipped where the column is Last, First.
PEOPLE_LIST = r"\s*[|;&]\s*"
COMMA_OR_PEOPLE_LIST = r"\s*[,;&]\s*"
AMPERSAND = r"\s*&\s*"
GENERIC_LIST = r"\s*(?:;|&|\band\b|\||,)\s*"


@dataclass(frozen=True)
class AuthorColumn:
    """One column that names people: how names are written and how a cell lists several."""

    header: str
    style: NameStyle = "first_last"
    separator: str = ""
    role: str = "author"
    roles_header: str | None = None


@dataclass(frozen=True)
class FormatRule:
    name: str
    signature: frozenset[str]
    title: tuple[str, ...]
    authors: tuple[AuthorColumn, ...]
    isbns: tuple[str, ...] = ()
    no_author_reason: str | None = None


def _sig(*headers: str) -> frozenset[str]:
    return frozenset(h.casefold() for h in headers)


RULES: tuple[FormatRule, ...] = (
    FormatRule(
        "goodreads",
        _sig("Book Id", "Author l-f", "Additional Authors"),
        ("Title",),
        (AuthorColumn("Author"), AuthorColumn("Additional Authors", separator=COMMA)),
        ("ISBN13", "ISBN"),
    ),
    FormatRule(
        "storygraph",
        _sig("Authors", "Contributors", "ISBN/UID"),
        ("Title",),
        (AuthorColumn("Authors", separator=COMMA), AuthorColumn("Contributors", separator=COMMA)),
        ("ISBN/UID",),
    ),
    FormatRule(
        "librarything",
        _sig("Primary Author", "Secondary Author"),
        ("Title",),
        (
            AuthorColumn(
                "Primary Author",
                style="last_first",
                separator=PEOPLE_LIST,
                roles_header="Primary Author Role",
            ),
            AuthorColumn(
                "Secondary Author",
                style="last_first",
                separator=PEOPLE_LIST,
                roles_header="Secondary Author Roles",
            ),
        ),
        ("ISBN", "ISBNs"),
    ),
    FormatRule(
        "bookbuddy",
        _sig("Author (Last, First)", "Title"),
        ("Title",),
        (AuthorColumn("Author", separator=COMMA_OR_PEOPLE_LIST),),
        ("ISBN",),
    ),
    FormatRule(
        "calibre",
        _sig("author_sort", "title_sort", "authors"),
        ("title",),
        (AuthorColumn("authors", separator=AMPERSAND),),
        ("isbn",),
    ),
    FormatRule(
        "openreads",
        _sig("olid", "favourite", "author"),
        ("title",),
        (AuthorColumn("author", style="auto", separator=COMMA),),
        ("isbn",),
    ),
    FormatRule(
        "inventaire",
        _sig("Authors labels", "Edition title"),
        ("Edition title",),
        (
            AuthorColumn("Authors labels", separator=COMMA),
            AuthorColumn("Translators labels", separator=COMMA, role="translator"),
        ),
        ("Edition ISBN-13", "Edition ISBN-10"),
    ),
    FormatRule(
        "bookwyrm",
        _sig("author_text", "remote_id"),
        ("title",),
        (AuthorColumn("author_text", separator=COMMA),),
        ("isbn_13", "isbn_10"),
    ),
    FormatRule(
        "openlibrary-reading-log",
        _sig("Work Id", "Edition Id", "Bookshelf"),
        (),
        (),
        (),
        no_author_reason="OpenLibrary reading-log rows carry work IDs only, no author",
    ),
)

# Generic files: case-insensitive aliases, first match wins.
TITLE_ALIASES = ("title", "book title", "book", "name", "book name", "titre", "titel", "título", "titolo")
AUTHOR_ALIASES = (
    "author",
    "authors",
    "author name",
    "author(s)",
    "primary author",
    "writer",
    "creator",
    "by",
    "auteur",
    "autor",
    "autore",
    "author_text",
)
ISBN_ALIASES = (
    "isbn13",
    "isbn-13",
    "isbn_13",
    "isbn 13",
    "isbn",
    "isbn10",
    "isbn-10",
    "isbn_10",
    "isbn 10",
    "isbn/uid",
    "ean",
    "isbns",
)


@dataclass(frozen=True)
class ResolvedFormat:
    """A rule bound to the file's actual header spellings."""

    name: str
    title: str | None
    authors: tuple[AuthorColumn, ...]
    isbns: tuple[str, ...]
    no_author_reason: str | None = None

    def columns(self) -> list[str]:
        """The file's columns this format reads (in file spelling), so nothing else is materialised."""
        wanted = [
            self.title,
            *(c.header for c in self.authors),
            *(c.roles_header for c in self.authors),
            *self.isbns,
        ]
        return list(dict.fromkeys(c for c in wanted if c))


def detect(headers: list[str]) -> ResolvedFormat | None:
    """Match the header row against the rules, then the generic aliases; None when no author column."""
    actual = {h.strip().casefold(): h for h in headers if h is not None}
    for rule in RULES:
        if rule.signature <= actual.keys():
            authors = tuple(
                AuthorColumn(
                    actual[col.header.casefold()],
                    col.style,
                    col.separator,
                    col.role,
                    actual.get((col.roles_header or "").casefold()),
                )
                for col in rule.authors
                if col.header.casefold() in actual
            )
            return ResolvedFormat(
                rule.name,
                _first(actual, rule.title),
                authors,
                tuple(actual[i.casefold()] for i in rule.isbns if i.casefold() in actual),
                rule.no_author_reason,
            )
    author = _first(actual, AUTHOR_ALIASES)
    if author is None:
        return None
    isbns = tuple(actual[a] for a in ISBN_ALIASES if a in actual)
    return ResolvedFormat(
        "generic",
        _first(actual, TITLE_ALIASES),
        (AuthorColumn(author, style="auto", separator=GENERIC_LIST),),
        isbns,
    )


def _first(actual: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for alias in aliases:
        if alias.casefold() in actual:
            return actual[alias.casefold()]
    return None
