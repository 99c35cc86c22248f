"""ISBNdb v2: editions by author (`/author/{name}`, pages of 1,000) and by ISBNs (`POST /books`).

The key travels in the `Authorization` header. Rates are 1/s (basic) to 5/s and quotas are per
day: both are configuration. Without a key ISBNdb is skipped, not failed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bookwarm.parsing.names import parse_cell
from bookwarm.providers.http import CallStats, ProviderHttp
from bookwarm.providers.models import Person, ProviderResult, Work
from bookwarm.providers.openlibrary import SAME_PERSON, name_similarity

NAME = "isbndb"


class ISBNdbClient:
    def __init__(
        self, http: ProviderHttp, *, page_size: int = 1000, max_pages: int = 1, counting: str = "per_isbn"
    ) -> None:
        self.http = http
        self.page_size = page_size
        self.max_pages = max_pages
        self.counting = counting

    async def fetch(self, name: str, stats: CallStats) -> ProviderResult:
        result = ProviderResult(NAME)
        path = f"/author/{quote(name[:150], safe='')}"
        for page in range(1, self.max_pages + 1):
            data = await self.http.get_json(
                path, {"page": page, "pageSize": self.page_size}, author=name, stats=stats
            )
            books = (data or {}).get("books") or []
            result.works.extend(w for w in (book_to_work(b, name) for b in books) if w is not None)
            total = int((data or {}).get("total") or 0)
            if len(books) < self.page_size or page * self.page_size >= total:
                return result
        result.complete = False
        return result

    async def books(self, isbns: list[str], stats: CallStats) -> list[Work]:
        """`POST /books`: the editions of these ISBNs (unknown ones are left out of the answer)."""
        units = len(isbns) if self.counting == "per_isbn" else 1
        data = await self.http.post_json(
            "/books", {"isbns": isbns}, author=f"{len(isbns)} ISBNs", stats=stats, units=units
        )
        return [w for w in (book_to_work(b, None) for b in (data or {}).get("data") or []) if w is not None]

    async def book(self, isbn13: str, stats: CallStats) -> Work | None:
        data = await self.http.get_json(f"/book/{isbn13}", author=isbn13, stats=stats)
        return book_to_work((data or {}).get("book") or {}, None) if data else None


def book_to_work(book: dict[str, Any], name: str | None) -> Work | None:
    people = [p for a in book.get("authors") or [] for p in parse_cell(str(a), style="auto", separator=",")]
    if not book.get("title") or (
        name and not any(name_similarity(name, p.name) >= SAME_PERSON for p in people)
    ):
        return None
    return Work.from_fields(
        NAME,
        title=str(book["title"]),
        isbns=[book.get("isbn13"), book.get("isbn"), book.get("isbn10")],
        date=book.get("date_published"),
        cover=book.get("image"),
        language=book.get("language"),
        description=book.get("synopsis") or book.get("overview"),
        authors=[Person(p.name, p.key) for p in people],
    )
