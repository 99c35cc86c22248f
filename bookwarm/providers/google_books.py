"""Google Books: descriptions, covers and categories, by `volumes?q=inauthor:"NAME"`.

Paged with `startIndex` and `maxResults=40` (Google's maximum) up to a page budget, because its
quota is per day per project. An empty result has `totalItems: 0` and no `items` key.
"""

from __future__ import annotations

from typing import Any

from bookwarm.parsing.names import author_key
from bookwarm.providers.http import CallStats, ProviderHttp
from bookwarm.providers.models import Person, ProviderResult, Work
from bookwarm.providers.openlibrary import SAME_PERSON, name_similarity

NAME = "google_books"
PAGE_SIZE = 40


class GoogleBooksClient:
    def __init__(self, http: ProviderHttp, *, api_key: str | None, max_pages: int = 1) -> None:
        self.http = http
        self._api_key = api_key
        self.max_pages = max_pages

    async def fetch(self, name: str, stats: CallStats) -> ProviderResult:
        result = ProviderResult(NAME)
        for page in range(self.max_pages):
            params: dict[str, Any] = {
                "q": f'inauthor:"{name}"',
                "startIndex": page * PAGE_SIZE,
                "maxResults": PAGE_SIZE,
            }
            if self._api_key:
                params["key"] = self._api_key
            data = await self.http.get_json("/volumes", params, author=name, stats=stats) or {}
            items = data.get("items") or []
            for item in items:
                work = _work(item, name)
                if work is not None:
                    result.works.append(work)
            total = int(data.get("totalItems") or 0)
            if len(items) < PAGE_SIZE or (page + 1) * PAGE_SIZE >= total:
                return result
        result.complete = False  # page budget reached
        return result


def _work(item: dict[str, Any], name: str) -> Work | None:
    info = item.get("volumeInfo") or {}
    authors = [str(a) for a in info.get("authors") or []]
    if not info.get("title") or not any(name_similarity(name, a) >= SAME_PERSON for a in authors):
        return None  # inauthor: is fuzzy; keep only volumes by this person
    return Work.from_fields(
        NAME,
        title=str(info["title"]),
        isbns=[ident.get("identifier") for ident in info.get("industryIdentifiers") or []],
        date=info.get("publishedDate"),
        cover=(info.get("imageLinks") or {}).get("thumbnail"),
        language=info.get("language"),
        description=info.get("description"),
        categories=info.get("categories"),
        authors=[Person(a, author_key(a)) for a in authors],
    )
