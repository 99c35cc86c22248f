"""OpenLibrary: the author's identity and complete list of works, with co-authors, in ~1 call.

`search.json?author=NAME&fields=...&limit=1000` returns works *with* their `author_key` and
`author_name` lists, so one call gives the identity candidates, the works and the co-authors (the
original design spent one call per work). Pages follow `offset` until `numFound`, with no cap.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from difflib import SequenceMatcher
from typing import Any

from bookwarm.parsing import isbn as isbnlib
from bookwarm.parsing.names import author_key
from bookwarm.parsing.titles import title_key
from bookwarm.providers.http import CallStats, ProviderHttp
from bookwarm.providers.models import Identity, Person, ProviderResult, Work

NAME = "openlibrary"
SEARCH_FIELDS = "key,title,author_key,author_name,first_publish_year,isbn,cover_i,language"
PAGE_SIZE = 1000  # OpenLibrary's maximum
MAX_ISBNS_PER_WORK = 50
SAME_PERSON = 0.86  # name similarity above which two spellings are taken as one name


def user_agent(contact_email: str) -> str:
    """OpenLibrary refuses generic client User-Agents (403); it asks for an app name and contact."""
    return f"bookwarm/0.1 (cache warmer; {contact_email})"


class OpenLibraryClient:
    def __init__(self, http: ProviderHttp, *, page_size: int = PAGE_SIZE, max_pages: int = 0) -> None:
        self.http = http
        self.page_size = page_size
        self.max_pages = max_pages  # 0 = no cap: fetch every page

    async def fetch(self, name: str, stats: CallStats) -> tuple[Identity | None, ProviderResult]:
        docs, complete = await self._search(name, stats)
        identity = choose_identity(name, docs)
        result = ProviderResult(NAME, complete=complete)
        if identity is not None:
            result.works = [
                work_from_doc(doc, identity)
                for doc in docs
                if identity.openlibrary_key in (doc.get("author_key") or [])
            ]
        return identity, result

    async def _search(self, name: str, stats: CallStats) -> tuple[list[dict[str, Any]], bool]:
        docs: list[dict[str, Any]] = []
        offset, pages = 0, 0
        while True:
            params = {"author": name, "fields": SEARCH_FIELDS, "limit": self.page_size, "offset": offset}
            data = await self.http.get_json("/search.json", params, author=name, stats=stats)
            pages += 1
            batch = (data or {}).get("docs") or []
            total = int((data or {}).get("numFound", (data or {}).get("num_found", 0)) or 0)
            docs.extend(batch)
            offset += len(batch)
            if not batch or offset >= total:
                return docs, True
            if self.max_pages and pages >= self.max_pages:
                return docs, False


def name_similarity(a: str, b: str) -> float:
    """1.0 for the same normalised name; token containment ('Ursula Le Guin' in 'Ursula K. Le Guin') 0.9."""
    ka, kb = author_key(a), author_key(b)
    if ka == kb:
        return 1.0
    ta, tb = set(ka.split("-")), set(kb.split("-"))
    if ta and tb and (ta <= tb or tb <= ta) and len(ta & tb) >= 2:
        return 0.9
    return SequenceMatcher(None, ka, kb).ratio()


def choose_identity(name: str, docs: list[dict[str, Any]]) -> Identity | None:
    """Score every author key in the results by name similarity and number of works.

    Confidence is the similarity times how clearly the best candidate dominates others with the
    same name: two people sharing a name with similar output give ~0.5 and are flagged for review
    (the original system took the first hit and cached the wrong person).
    """
    works: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in docs:
        for key, author_name in zip(doc.get("author_key") or [], doc.get("author_name") or [], strict=False):
            works[key] += 1
            spellings[key][author_name] += 1
    candidates = []
    for key, count in works.items():
        display = spellings[key].most_common(1)[0][0]
        similarity = max(name_similarity(name, spelling) for spelling in spellings[key])
        if similarity >= SAME_PERSON:
            candidates.append((similarity, count, key, display))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    similarity, count, key, display = candidates[0]
    rivals = [c[1] for c in candidates[1:] if c[0] >= similarity - 0.05]
    dominance = count / (count + max(rivals)) if rivals else 1.0
    return Identity(
        name=display,
        key=author_key(display),
        openlibrary_key=key,
        confidence=round(similarity * dominance, 3),
        alternate_names=sorted(set(spellings[key]) - {display}),
        alternates=[{"openlibrary_key": c[2], "name": c[3], "works": c[1]} for c in candidates[1:6]],
    )


def work_from_doc(doc: dict[str, Any], identity: Identity) -> Work:
    title = str(doc.get("title") or "")
    isbns: list[str] = []
    for raw in doc.get("isbn") or []:
        isbn13, _ = isbnlib.normalise(str(raw))
        if isbn13 and isbn13 not in isbns:
            isbns.append(isbn13)
            if len(isbns) >= MAX_ISBNS_PER_WORK:
                break
    people = []
    for key, person_name in zip(doc.get("author_key") or [], doc.get("author_name") or [], strict=False):
        shown = identity.name if key == identity.openlibrary_key else person_name
        people.append(Person(shown, author_key(shown), key))
    cover_id = doc.get("cover_i")
    work_key = str(doc.get("key") or "")
    return Work(
        title=title,
        title_key=title_key(title),
        source=NAME,
        openlibrary_key=work_key.removeprefix("/works/") or None,
        first_publish_year=doc.get("first_publish_year"),
        isbn13=isbns,
        cover=f"https://covers.openlibrary.org/b/id/{cover_id}-M.jpg" if cover_id else None,
        language=list(doc.get("language") or []),
        authors=people,
        provenance={
            f: NAME
            for f in ("title", "first_publish_year", "isbn13", "cover", "authors")
            if doc.get(_FIELD[f])
        },
    )


_FIELD = {
    "title": "title",
    "first_publish_year": "first_publish_year",
    "isbn13": "isbn",
    "cover": "cover_i",
    "authors": "author_key",
}
