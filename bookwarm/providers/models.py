"""What providers return, normalised, and the merged Bibliography that the cache stores.

``Bibliography.to_dict()`` is the one shape shared by `providers fetch --json`, the Redis and
object-store values, and `lookup --json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Person:
    name: str
    key: str
    openlibrary_key: str | None = None


@dataclass
class Work:
    """One work as one provider sees it, or merged."""

    title: str
    title_key: str
    source: str
    openlibrary_key: str | None = None
    first_publish_year: int | None = None
    isbn13: list[str] = field(default_factory=list)
    cover: str | None = None
    language: list[str] = field(default_factory=list)
    description: str | None = None
    categories: list[str] = field(default_factory=list)
    authors: list[Person] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_fields(
        cls,
        source: str,
        *,
        title: str,
        isbns: list[object],
        date: object,
        authors: list[Person],
        cover: str | None = None,
        language: str | None = None,
        description: str | None = None,
        categories: list[str] | None = None,
    ) -> Work:
        """A work from a provider's raw fields: ISBNs validated to ISBN-13, year from a date,
        title key computed, and every filled field credited to ``source``."""
        from bookwarm.parsing import isbn as isbnlib
        from bookwarm.parsing.titles import title_key

        isbn13s: list[str] = []
        for raw in isbns:
            isbn13, _ = isbnlib.normalise(str(raw or ""))
            if isbn13 and isbn13 not in isbn13s:
                isbn13s.append(isbn13)
        year = str(date or "")[:4]
        work = cls(
            title=title,
            title_key=title_key(title),
            source=source,
            first_publish_year=int(year) if year.isdigit() else None,
            isbn13=isbn13s,
            cover=cover,
            language=[str(language)] if language else [],
            description=description,
            categories=list(categories or []),
            authors=authors,
        )
        filled = ("title", "first_publish_year", "isbn13", "cover", "description", "categories")
        work.provenance = {f: source for f in filled if getattr(work, f)}
        return work

    def to_dict(self) -> dict[str, Any]:
        """Written by hand: ``dataclasses.asdict`` deep-copies field by field and was the slowest step
        of writing a bibliography (0.1 ms a work; a dump load writes millions)."""
        return {
            "title": self.title,
            "title_key": self.title_key,
            "openlibrary_key": self.openlibrary_key,
            "first_publish_year": self.first_publish_year,
            "isbn13": list(self.isbn13),
            "cover": self.cover,
            "language": list(self.language),
            "description": self.description,
            "categories": list(self.categories),
            "authors": [
                {"name": p.name, "key": p.key, "openlibrary_key": p.openlibrary_key} for p in self.authors
            ],
            "sources": dict(self.provenance),
        }


@dataclass
class Identity:
    """Who an author name resolved to at OpenLibrary, and how sure we are."""

    name: str
    key: str
    openlibrary_key: str | None
    confidence: float
    alternate_names: list[str] = field(default_factory=list)
    alternates: list[dict[str, Any]] = field(default_factory=list)  # other candidates: key, name, works


@dataclass
class ProviderResult:
    provider: str
    works: list[Work] = field(default_factory=list)
    ok: bool = True
    complete: bool = True
    skipped: str | None = None
    error: str | None = None


@dataclass
class Bibliography:
    author: Identity
    works: list[Work]
    complete: bool
    status: str  # ok | partial | review | unknown
    sources: dict[str, dict[str, Any]]
    calls: dict[str, int]
    fetched_at: str
    latency_s: dict[str, float] = field(default_factory=dict)

    @property
    def coauthors(self) -> list[Person]:
        """Everyone who shares a work with this author, once each."""
        seen: dict[str, Person] = {}
        for work in self.works:
            for person in work.authors:
                if person.key != self.author.key and person.key not in seen:
                    seen[person.key] = person
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "author": {
                "name": self.author.name,
                "key": self.author.key,
                "openlibrary_key": self.author.openlibrary_key,
                "confidence": round(self.author.confidence, 3),
                "needs_review": self.status == "review",
                "alternate_names": self.author.alternate_names,
                "alternates": self.author.alternates,
            },
            "works": [w.to_dict() for w in self.works],
            "works_count": len(self.works),
            "complete": self.complete,
            "status": self.status,
            "sources": self.sources,
            "calls": self.calls,
            "latency_s": {p: round(s, 3) for p, s in self.latency_s.items()},
            "fetched_at": self.fetched_at,
        }
