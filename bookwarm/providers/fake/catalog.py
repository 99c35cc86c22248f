"""The fake providers' catalog: authors and works from a JSON file you write.

    {"authors": [
        {"key": "OL1A", "name": "Neil Gaiman", "alternate_names": ["Neil Richard Gaiman"],
         "works": [{"title": "Good Omens", "year": 1990, "isbn": ["9780060853983"], "coauthors": ["OL2A"],
                    "language": "eng", "description": "...", "categories": ["Fiction"]}]},
        {"key": "OL9A", "name": "Nora Roberts", "generate_works": 1200}
    ]}

A work listed under one author with ``coauthors`` belongs to all of them. ``generate_works``
adds that many numbered works with valid ISBNs (for prolific authors and benchmarks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bookwarm.errors import InputError
from bookwarm.parsing.names import author_key


@dataclass
class CatalogAuthor:
    key: str
    name: str
    alternate_names: list[str] = field(default_factory=list)


@dataclass
class CatalogWork:
    key: str
    title: str
    authors: list[str]  # OpenLibrary author keys
    year: int | None = None
    isbn: list[str] = field(default_factory=list)
    language: str = "eng"
    description: str | None = None
    categories: list[str] = field(default_factory=list)
    cover_id: int | None = None


@dataclass
class Catalog:
    """Indexed once at load: benchmarks query thousands of authors, and a scan per request made
    the fake server the busiest process on the machine."""

    authors: dict[str, CatalogAuthor]
    works: list[CatalogWork]
    _names_by_token: dict[str, set[tuple[str, int]]] = field(init=False, repr=False)
    _works_by_author: dict[str, list[int]] = field(init=False, repr=False)
    _work_by_isbn: dict[str, CatalogWork] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._names_by_token = {}
        for author in self.authors.values():
            for index, name in enumerate((author.name, *author.alternate_names)):
                for token in set(author_key(name).split("-")) - {""}:
                    self._names_by_token.setdefault(token, set()).add((author.key, index))
        self._works_by_author = {}
        self._work_by_isbn = {}
        for position, work in enumerate(self.works):
            for key in work.authors:
                self._works_by_author.setdefault(key, []).append(position)
            for isbn in work.isbn:
                self._work_by_isbn.setdefault(isbn, work)

    def works_by_name(self, query: str) -> list[CatalogWork]:
        """Works with an author whose name (or one alternate name) contains every word of the query."""
        positions = {p for key in self.keys_named(query) for p in self._works_by_author.get(key, [])}
        return [self.works[p] for p in sorted(positions)]

    def keys_named(self, query: str) -> set[str]:
        """Keys of the authors whose name (or one alternate name) contains every word of the query."""
        wanted = set(author_key(query).split("-")) - {""}
        if not wanted:
            return set()
        names = set.intersection(*(self._names_by_token.get(token, set()) for token in wanted))
        return {k for k, _ in names}

    def works_by_author_key(self, key: str) -> list[CatalogWork]:
        return [self.works[p] for p in self._works_by_author.get(key, [])]

    def by_isbn(self, isbn: str) -> CatalogWork | None:
        return self._work_by_isbn.get(isbn)

    def by_work_key(self, key: str) -> CatalogWork | None:
        return next((w for w in self.works if w.key == key), None)

    # changes, as OpenLibrary's editors and bots make them (the fake's RecentChanges feed shows them)

    def add_work(self, author: str, title: str, isbn: list[str], year: int | None = None) -> CatalogWork:
        if author not in self.authors:
            raise InputError(f"no catalog author {author}")
        work = CatalogWork(f"OL{len(self.works) + 1}W", title, [author], year=year, isbn=list(isbn))
        self.works.append(work)
        self.__post_init__()
        return work

    def merge_authors(self, master: str, duplicates: list[str]) -> list[CatalogWork]:
        """The duplicates' works now name the master; the duplicates are gone (redirects)."""
        moved = []
        for work in self.works:
            if any(d in work.authors for d in duplicates):
                work.authors = list(dict.fromkeys(master if k in duplicates else k for k in work.authors))
                moved.append(work)
        for duplicate in duplicates:
            self.authors.pop(duplicate, None)
        self.__post_init__()
        return moved


def isbn13_for(seed: str) -> str:
    """A valid, deterministic ISBN-13 for a generated work."""
    body = "978" + str(int(hashlib.sha1(seed.encode()).hexdigest(), 16))[:9]
    check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
    return body + str(check)


def load_catalog(source: Path | dict[str, Any]) -> Catalog:
    if isinstance(source, Path):
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read catalog {source}: {exc}") from None
    else:
        data = source
    authors: dict[str, CatalogAuthor] = {}
    works: list[CatalogWork] = []
    counter = 0
    for entry in data.get("authors", []):
        author = CatalogAuthor(entry["key"], entry["name"], list(entry.get("alternate_names", [])))
        authors[author.key] = author
        for spec in entry.get("works", []):
            counter += 1
            works.append(
                CatalogWork(
                    key=f"OL{counter}W",
                    title=spec["title"],
                    authors=[author.key, *spec.get("coauthors", [])],
                    year=spec.get("year"),
                    isbn=list(spec.get("isbn", [])),
                    language=spec.get("language", "eng"),
                    description=spec.get("description"),
                    categories=list(spec.get("categories", [])),
                    cover_id=spec.get("cover_id"),
                )
            )
        for n in range(1, int(entry.get("generate_works", 0)) + 1):
            counter += 1
            title = f"{author.name} Novel {n}"
            works.append(
                CatalogWork(
                    key=f"OL{counter}W",
                    title=title,
                    authors=[author.key],
                    year=1950 + n % 75,
                    isbn=[isbn13_for(f"{author.key}/{n}")],
                    cover_id=counter,
                )
            )
    for work in works:
        unknown = [k for k in work.authors if k not in authors]
        if unknown:
            raise InputError(f"catalog work {work.title!r} names unknown co-author keys {unknown}")
    return Catalog(authors, works)
