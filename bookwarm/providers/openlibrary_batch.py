"""OpenLibrary in batches: many authors' identities and bibliographies per call.

`search.json` takes a Solr query with explicit ``OR`` (see ../shared/notes/providers.md), so:

- ``q=isbn:(I1 OR … OR In)`` returns the works of the user's own books with their ``author_key`` and
  ``author_name``: the key of the person whose book the user owns settles namesakes;
- ``q=author_name:("A" OR "B" …)`` is the name search for the rest, each doc attributed to the names
  it matches and scored by the same ``choose_identity`` as the single-name query;
- ``q=author_key:(K1 OR … OR Kn)&sort=key`` is the bibliography of n authors, paged by offset to
  the end (a prolific author's works too), and split by author key.

A batch that still fails after the retry layer is split in two and each half asked again, down to
one author: one bad answer never fails authors that can be fetched. A spent quota is not split.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bookwarm import clock
from bookwarm.errors import ProviderError, QuotaExhausted
from bookwarm.parsing.names import author_key
from bookwarm.providers.http import CallStats, ProviderHttp
from bookwarm.providers.merge import REVIEW_BELOW
from bookwarm.providers.models import Bibliography, Identity, Work
from bookwarm.providers.openlibrary import (
    PAGE_SIZE,
    SAME_PERSON,
    SEARCH_FIELDS,
    choose_identity,
    name_similarity,
    work_from_doc,
)

IDENTITY_FIELDS = "key,author_key,author_name,isbn"
NAME_FIELDS = "key,author_key,author_name"
# Batch sizes, from a sweep on a library shaped like real exports (docs/decisions.md, `make bench-sweep`):
# 50 authors a batch (one ISBN query of up to 150 ISBNs, ~2 KB of URL; one works query) and 25 names a
# name query cost 0.069 OpenLibrary calls an author where 25 and 10 cost 0.119, every identity the
# same; Solr allows 1,024 clauses, OpenLibrary's nginx 8 KB of request line.
KEY_BATCH = 50
ISBN_BATCH = 50
NAME_BATCH = 25
# Work and edition keys per search when the change feed asks whose they are: ~22 characters each in
# the URL, so 200 stay near 4.5 KB (OpenLibrary's nginx takes 8 KB lines) and far below Solr's 1,024
# clauses; the feed's volume makes this the refresh's main cost (docs/decisions.md).
KEY_LOOKUP_BATCH = 200
ISBNS_PER_AUTHOR = 3  # a few of the user's own books; one OpenLibrary knows is enough


@dataclass
class Wanted:
    """An author to resolve: the name and key from the library, the user's own ISBNs, and the
    OpenLibrary key when it is already known (co-authors, stored identities)."""

    name: str
    key: str
    isbns: list[str] = field(default_factory=list)
    openlibrary_key: str | None = None

    def identity(self) -> Identity:
        """The identity of an author whose OpenLibrary key is known (no search needed)."""
        assert self.openlibrary_key is not None
        return Identity(self.name, self.key, self.openlibrary_key, confidence=1.0)


class KeyWorks:
    """One author's docs from the key batches: complete unless a page failed.

    A plain class on purpose: Prefect walks dataclasses, dicts and lists inside a task's parameters,
    results and upstream states element by element (to find futures); through every doc of a batch
    that walk cost a third of the flow's CPU."""

    __slots__ = ("complete", "docs", "error")

    def __init__(
        self, docs: list[dict[str, Any]] | None = None, complete: bool = True, error: str | None = None
    ) -> None:
        self.docs = docs if docs is not None else []
        self.complete = complete
        self.error = error


class OpenLibraryBatches:
    def __init__(
        self,
        http: ProviderHttp,
        *,
        key_batch: int = KEY_BATCH,
        isbn_batch: int = ISBN_BATCH,
        name_batch: int = NAME_BATCH,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.http = http
        self.key_batch = key_batch
        self.isbn_batch = isbn_batch
        self.name_batch = name_batch
        self.page_size = page_size

    # identities ---------------------------------------------------------------------------------

    async def identities_by_isbn(self, wanted: list[Wanted], stats: CallStats) -> dict[str, Identity]:
        """Identities found from the user's own books; authors OpenLibrary does not know by ISBN
        (or whose batch failed) are absent and fall back to the name search."""
        isbns = list(dict.fromkeys(i for w in wanted for i in w.isbns[:ISBNS_PER_AUTHOR]))
        if not isbns:
            return {}
        query = "isbn:(" + " OR ".join(isbns) + ")"
        try:
            docs, _ = await self._search(query, IDENTITY_FIELDS, stats, label=f"{len(isbns)} ISBNs")
        except QuotaExhausted:
            return {}  # the name search that follows reports it, author by author
        except ProviderError:
            if len(wanted) == 1:
                return {}
            half = len(wanted) // 2
            first = await self.identities_by_isbn(wanted[:half], stats)
            return {**first, **await self.identities_by_isbn(wanted[half:], stats)}
        by_isbn: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for doc in docs:
            for isbn in doc.get("isbn") or []:
                by_isbn[str(isbn)].append(doc)
        found: dict[str, Identity] = {}
        for person in wanted:
            identity = identity_from_books(person, [d for i in person.isbns for d in by_isbn.get(i, [])])
            if identity is not None:
                found[person.key] = identity
        return found

    async def authors_of_isbns(self, isbns: list[str], stats: CallStats) -> dict[str, list[tuple[str, str]]]:
        """ISBN -> [(name, OpenLibrary key)] of the work's authors, ``isbn_batch`` ISBNs a call: what
        a reader's ISBN miss is warmed as. ISBNs OpenLibrary does not know are absent."""
        found: dict[str, list[tuple[str, str]]] = {}
        wanted = set(isbns)
        for batch in batches(list(dict.fromkeys(isbns)), self.isbn_batch):
            docs, _ = await self._search(
                "isbn:(" + " OR ".join(batch) + ")", IDENTITY_FIELDS, stats, label=f"{len(batch)} ISBNs"
            )
            for doc in docs:
                people = list(zip(doc.get("author_name") or [], doc.get("author_key") or [], strict=False))
                for isbn in doc.get("isbn") or []:
                    if str(isbn) in wanted and people:
                        found.setdefault(str(isbn), people)
        return found

    async def authors_of_works(
        self, work_keys: list[str], edition_keys: list[str], stats: CallStats
    ) -> dict[str, list[str]]:
        """OL…W and OL…M -> their works' author keys (OL…A), ``KEY_LOOKUP_BATCH`` keys a call: a new work's
        authors are not in the change feed's changeset (../shared/notes/providers.md)."""
        found: dict[str, list[str]] = {}
        for field_name, keys, shown in (("key", work_keys, "/works/{}"), ("edition_key", edition_keys, "{}")):
            for batch in batches(list(dict.fromkeys(keys)), KEY_LOOKUP_BATCH):
                query = f"{field_name}:(" + " OR ".join(shown.format(k) for k in batch) + ")"
                docs, _ = await self._search(
                    query, "key,author_key,edition_key", stats, label=f"{len(batch)} {field_name}s"
                )
                wanted = set(batch)
                for doc in docs:
                    authors = [str(a) for a in doc.get("author_key") or []]
                    work = str(doc.get("key") or "").removeprefix("/works/")
                    for key in ({work} | {str(e) for e in doc.get("edition_key") or []}) & wanted:
                        found[key] = authors
        return found

    async def identities_by_name(
        self, wanted: list[Wanted], stats: CallStats
    ) -> tuple[dict[str, Identity | None], dict[str, str]]:
        """({key: identity or None (nobody by that name)}, {key: error}) for one batch of names."""
        names = list(dict.fromkeys(w.name for w in wanted))
        query = "author_name:(" + " OR ".join(_phrase(n) for n in names) + ")"
        try:
            docs, _ = await self._search(query, NAME_FIELDS, stats, label=f"{len(names)} names")
        except QuotaExhausted as exc:
            return {}, {w.key: str(exc) for w in wanted}
        except ProviderError as exc:
            if len(wanted) == 1:
                return {}, {wanted[0].key: str(exc)}
            half = len(wanted) // 2
            a_found, a_errors = await self.identities_by_name(wanted[:half], stats)
            b_found, b_errors = await self.identities_by_name(wanted[half:], stats)
            return {**a_found, **b_found}, {**a_errors, **b_errors}
        return {w.key: choose_identity(w.name, attributed(w.name, docs)) for w in wanted}, {}

    # bibliographies -----------------------------------------------------------------------------

    async def works_by_keys(self, keys: list[str], stats: CallStats) -> dict[str, KeyWorks]:
        """Every work of each OpenLibrary author key, split by key; paged to the end."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        query = "author_key:(" + " OR ".join(keys) + ")"
        collected: list[dict[str, Any]] = []
        try:
            collected, _ = await self._search(
                query, SEARCH_FIELDS, stats, label=f"{len(keys)} authors", into=collected
            )
        except QuotaExhausted as exc:
            return {k: _failed(k, collected, str(exc)) for k in keys}
        except ProviderError as exc:
            if len(keys) == 1:
                return {keys[0]: _failed(keys[0], collected, str(exc))}
            half = len(keys) // 2
            first = await self.works_by_keys(keys[:half], stats)
            return {**first, **await self.works_by_keys(keys[half:], stats)}
        by_key: dict[str, KeyWorks] = {k: KeyWorks() for k in keys}
        for doc in collected:
            for key in doc.get("author_key") or []:
                if key in by_key:
                    by_key[key].docs.append(doc)
        return by_key

    async def _search(
        self,
        query: str,
        fields: str,
        stats: CallStats,
        *,
        label: str,
        into: list[dict[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """All docs of one query, paged by offset in key order (stable across pages)."""
        docs = into if into is not None else []
        offset = 0
        while True:
            params = {"q": query, "fields": fields, "sort": "key", "limit": self.page_size, "offset": offset}
            data = await self.http.get_json("/search.json", params, author=label, stats=stats) or {}
            batch = data.get("docs") or []
            total = int(data.get("numFound", data.get("num_found", 0)) or 0)
            docs.extend(batch)
            offset += len(batch)
            if not batch or offset >= total:
                return docs, total


def attributed(name: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The docs of a batched name search that the single-name search for ``name`` would weigh: those
    naming someone whose spelling is close to it. Similarity is computed once per spelling."""
    close: dict[str, bool] = {}
    kept = []
    for doc in docs:
        for spelling in doc.get("author_name") or []:
            if spelling not in close:
                close[spelling] = name_similarity(name, spelling) >= SAME_PERSON
            if close[spelling]:
                kept.append(doc)
                break
    return kept


def identity_from_books(person: Wanted, docs: list[dict[str, Any]]) -> Identity | None:
    """The co-author of the user's own books whose name matches: that person, namesakes or not."""
    best: tuple[float, str, str] | None = None
    for doc in docs:
        for key, spelling in zip(doc.get("author_key") or [], doc.get("author_name") or [], strict=False):
            similarity = name_similarity(person.name, spelling)
            if similarity >= SAME_PERSON and (best is None or similarity > best[0]):
                best = (similarity, key, spelling)
    if best is None:
        return None
    _, key, spelling = best
    # The user owns this person's book: no namesake can be the one they read.
    return Identity(name=spelling, key=author_key(spelling), openlibrary_key=key, confidence=1.0)


def _phrase(name: str) -> str:
    return '"' + name.replace("\\", " ").replace('"', " ").strip() + '"'


def _failed(key: str, docs: list[dict[str, Any]], error: str) -> KeyWorks:
    """What a failed fetch of one key leaves: the pages that arrived (then partial), and why."""
    own = [d for d in docs if key in (d.get("author_key") or [])]
    return KeyWorks(docs=own, complete=False, error=error)


def batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def openlibrary_bibliography(
    name: str, key: str, identity: Identity | None, works: KeyWorks | None, error: str | None
) -> Bibliography:
    """An author's bibliography from OpenLibrary alone: its status is the author's status.

    ``failed``: OpenLibrary could not answer and gave no work (a dead letter, never cached);
    ``unknown``: nobody by that name; ``review``: a namesake we cannot tell apart; ``partial``:
    some pages came, not all (cached, retried soon); ``ok``: the complete list of works.
    """
    docs = works.docs if works else []
    problem = error or (works.error if works else None)
    if identity is None:
        identity = Identity(name=name, key=key, openlibrary_key=None, confidence=0.0)
        status = "failed" if problem else "unknown"
    elif problem and not docs:
        status = "failed"
    elif identity.confidence < REVIEW_BELOW:
        status = "review"
    else:
        status = "partial" if problem else "ok"
    seen: set[str] = set()
    built: list[Work] = []
    for doc in docs:
        work_key = str(doc.get("key") or "")
        if work_key not in seen:
            seen.add(work_key)
            built.append(work_from_doc(doc, identity))
    built.sort(key=lambda w: (w.first_publish_year or 9999, w.title_key))
    complete = status == "ok" and identity.openlibrary_key is not None
    return Bibliography(
        author=identity,
        works=built if status in ("ok", "partial") else [],
        complete=complete,
        status=status,
        sources={
            "openlibrary": {"ok": not problem, "works": len(built), "complete": complete, "error": problem}
        },
        calls={},
        fetched_at=clock.iso_now(),
    )
