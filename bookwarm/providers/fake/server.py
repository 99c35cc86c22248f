"""`bookwarm providers serve`: OpenLibrary, Google Books and ISBNdb endpoints in their real formats.

Routes (base URLs to configure): OpenLibrary at ``/`` (``/search.json`` with ``author=NAME`` or a Solr
``q`` over ``author_key``, ``isbn`` or ``author_name`` with explicit ``OR``, ``sort=key``, ``limit`` and
``offset``; ``/search/authors.json``), Google Books at ``/books/v1`` (``/volumes``), ISBNdb at
``/isbndb`` (``/author/{name}``, ``/book/{isbn}``, ``POST /books`` with up to ``isbndb_batch`` ISBNs,
``Authorization`` header required). Faults (latency, 500s, 429s, malformed JSON,
a provider down) and the real rate limits are enforced per provider; ``POST /_faults`` changes
them at run time, ``POST /_release`` ends the answers a fault holds, and ``GET /_stats`` reports what was served, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bookwarm.deadline import within
from bookwarm.providers.fake.catalog import Catalog, CatalogWork

PROVIDERS = ("openlibrary", "google_books", "isbndb")
REAL_LIMITS = {"openlibrary": 3.0, "google_books": 10.0, "isbndb": 1.0}
# Calls let through above the rate: OpenLibrary's nginx has limit_req 180 r/min with burst 25
# (../shared/notes/providers.md); the others are modelled strictly, N in any one second.
REAL_BURSTS = {"openlibrary": 25, "google_books": 0, "isbndb": 0}


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_429: float = 0.0
    malformed_rate: float = 0.0
    down: bool = False
    rate_per_s: float = 0.0  # 0 = no limit enforced
    burst: int = 0  # calls let through above the rate (a leaky bucket); 0 = N in any one second
    latency_per_doc_ms: float = 0.0  # a large answer takes longer, as OpenLibrary's Solr does
    fail_when_asked: str = ""  # a 500 for every query naming this key, ISBN or name (a bad batch)
    # a query naming any of these keys, ISBNs or names waits for POST /_release (at most hold_max_s):
    # a job caught midway, deterministically, where pacing would guess at durations
    hold_when_asked: list[str] = field(default_factory=list)
    # answers about the first N authors asked (by key, name or ISBN), then holds every query about
    # any other author the same way (-1: never): a job stopped with exactly N authors fetched
    hold_after_authors: int = -1
    hold_max_s: float = 60.0
    feed_fail_from_offset: int = -1  # RecentChanges: a 500 for pages at or past this offset (-1: never)


@dataclass
class Counters:
    requests: int = 0
    served_429: int = 0
    limit_429: int = 0
    errors: int = 0
    held: int = 0  # queries parked by hold_when_asked
    times: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    # how often each author key / name / ISBN was asked for (first pages only): "fetched once" checks
    asked: dict[str, int] = field(default_factory=dict)


class RateWindow:
    """At most ``rate`` requests in any one-second window, like the providers' own limits; with a
    ``burst``, a leaky bucket as nginx's limit_req: drains at ``rate``, 429 past ``burst`` queued."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque()
        self.level = 0.0
        self.last = 0.0

    def allow(self, rate: float, now: float, burst: int = 0) -> bool:
        if rate <= 0:
            return True
        if burst > 0:
            level = max(0.0, self.level - rate * (now - self.last)) + 1
            if level > burst + 1:
                return False
            self.level, self.last = level, now
            return True
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        if len(self.recent) >= max(1, int(rate)):
            return False
        self.recent.append(now)
        return True


def build_app(
    catalog: Catalog,
    faults: dict[str, Faults] | None = None,
    seed: int | None = None,
    isbndb_batch: int = 100,
) -> Starlette:
    state: dict[str, Any] = {
        "faults": faults or {p: Faults() for p in PROVIDERS},
        "counters": {p: Counters() for p in PROVIDERS},
        "windows": {p: RateWindow() for p in PROVIDERS},
        "changes": [],  # RecentChanges changesets, oldest first
        "released": asyncio.Event(),  # ends the holds of hold_when_asked and hold_after_authors
        "admitted": set(),  # the authors hold_after_authors answers about
    }
    rnd = random.Random(seed)

    async def gate(provider: str) -> Response | None:
        """Apply latency, limits and faults; None means: answer normally."""
        f: Faults = state["faults"][provider]
        c: Counters = state["counters"][provider]
        c.requests += 1
        now = time.monotonic()
        c.times.append(now)
        if not state["windows"][provider].allow(f.rate_per_s, now, f.burst):
            c.limit_429 += 1
            return _too_many(provider)
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000 * rnd.uniform(0.9, 1.1))
        if f.down:
            c.errors += 1
            return JSONResponse({"error": "service unavailable"}, status_code=503)
        if f.rate_429 and rnd.random() < f.rate_429:
            c.served_429 += 1
            return _too_many(provider)
        if f.error_rate and rnd.random() < f.error_rate:
            c.errors += 1
            return JSONResponse({"error": "internal error"}, status_code=500)
        if f.malformed_rate and rnd.random() < f.malformed_rate:
            return Response('{"docs": [', media_type="application/json")
        return None

    async def ol_search(request: Request) -> Response:
        if (early := await gate("openlibrary")) is not None:
            return early
        q = request.query_params
        asked = state["counters"]["openlibrary"].asked
        first_page = int(q.get("offset", 0)) == 0
        faults: Faults = state["faults"]["openlibrary"]
        if q.get("author"):
            field_name, values = "author_name", [q["author"]]
            works = catalog.works_by_name(q["author"])
            if first_page:
                asked[q["author"]] = asked.get(q["author"], 0) + 1
        else:
            try:
                field_name, values = solr_query(q.get("q") or "")
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if first_page:
                for value in values:
                    asked[value] = asked.get(value, 0) + 1
            if faults.fail_when_asked and faults.fail_when_asked in values:
                state["counters"]["openlibrary"].errors += 1
                return JSONResponse({"error": "internal error"}, status_code=500)
            works = solr_works(catalog, field_name, values)
        if _held(faults, state["admitted"], values, field_name):
            state["counters"]["openlibrary"].held += 1
            with contextlib.suppress(TimeoutError):
                await within(state["released"].wait(), faults.hold_max_s)
        if q.get("sort") == "key":
            works = sorted(works, key=lambda w: f"/works/{w.key}")
        limit = int(q.get("limit", 100))
        offset = int(q.get("offset", 0))
        wanted = set((q.get("fields") or "").split(",")) - {""}
        docs = [_ol_doc(w, catalog, wanted) for w in works[offset : offset + limit]]
        per_doc = state["faults"]["openlibrary"].latency_per_doc_ms
        if per_doc and docs:
            await asyncio.sleep(per_doc * len(docs) / 1000)
        return await _json(
            {
                "numFound": len(works),
                "start": offset,
                "numFoundExact": True,
                "num_found": len(works),
                "q": q.get("q", ""),
                "offset": offset,
                "docs": docs,
            }
        )

    async def ol_search_authors(request: Request) -> Response:
        if (early := await gate("openlibrary")) is not None:
            return early
        works = catalog.works_by_name(request.query_params.get("q", ""))
        counts: dict[str, int] = {}
        for w in works:
            for key in w.authors:
                counts[key] = counts.get(key, 0) + 1
        docs = [
            {
                "key": k,
                "type": "author",
                "name": catalog.authors[k].name,
                "alternate_names": catalog.authors[k].alternate_names,
                "work_count": n,
            }
            for k, n in counts.items()
        ]
        return JSONResponse({"numFound": len(docs), "start": 0, "numFoundExact": True, "docs": docs})

    async def google_volumes(request: Request) -> Response:
        if (early := await gate("google_books")) is not None:
            return early
        q = request.query_params
        query = q.get("q", "")
        name = query.split("inauthor:", 1)[-1].strip().strip('"') if "inauthor:" in query else query
        max_results = int(q.get("maxResults", 10))
        if max_results > 40:
            return JSONResponse(
                {
                    "error": {
                        "code": 400,
                        "message": "Invalid value at 'max_results' (TYPE_INT32), 41",
                        "status": "INVALID_ARGUMENT",
                    }
                },
                status_code=400,
            )
        works = catalog.works_by_name(name)
        start = int(q.get("startIndex", 0))
        body: dict[str, Any] = {"kind": "books#volumes", "totalItems": len(works)}
        items = [_volume(w, catalog) for w in works[start : start + max_results]]
        if items:
            body["items"] = items
        return JSONResponse(body)

    async def isbndb_author(request: Request) -> Response:
        if (denied := _isbndb_auth(request)) is not None:
            return denied
        if (early := await gate("isbndb")) is not None:
            return early
        name = request.path_params["name"]
        page, size = (
            int(request.query_params.get("page", 1)),
            min(int(request.query_params.get("pageSize", 20)), 1000),
        )
        works = catalog.works_by_name(name)
        if not works:
            return JSONResponse({"message": "Not Found", "error_message": "Not Found"}, status_code=404)
        books = [_isbndb_book(w, catalog) for w in works[(page - 1) * size : page * size]]
        return JSONResponse(
            {
                "author": name,
                "name": name,
                "books": books,
                "total": len(works),
                "page": page,
                "page_size": size,
            }
        )

    async def isbndb_book(request: Request) -> Response:
        if (denied := _isbndb_auth(request)) is not None:
            return denied
        if (early := await gate("isbndb")) is not None:
            return early
        work = catalog.by_isbn(request.path_params["isbn"])
        if work is None:
            return JSONResponse({"message": "Not Found", "error_message": "Not Found"}, status_code=404)
        return JSONResponse({"book": _isbndb_book(work, catalog)})

    async def isbndb_books(request: Request) -> Response:
        if (denied := _isbndb_auth(request)) is not None:
            return denied
        if (early := await gate("isbndb")) is not None:
            return early
        if request.headers.get("content-type", "").startswith("application/json"):
            raw = (await request.json()).get("isbns") or []
        else:
            raw = str((await request.form()).get("isbns") or "").split(",")
        isbns = [str(i).strip() for i in raw if str(i).strip()]
        if len(isbns) > isbndb_batch:
            message = f"Too many ISBNs: at most {isbndb_batch} per request on this plan"
            return JSONResponse({"message": message, "error_message": message}, status_code=400)
        found = {id(w): w for w in (catalog.by_isbn(i) for i in isbns) if w is not None}
        data = [_isbndb_book(w, catalog) for w in found.values()]
        return JSONResponse({"total": len(data), "requested": len(isbns), "data": data})

    async def recent_changes(request: Request) -> Response:
        """OpenLibrary's RecentChanges: newest first, ``limit`` clamped to 1000 and ``offset`` to
        10,000, by day and kind; new-account changesets dropped after the limit (a short page is
        not the end)."""
        if (early := await gate("openlibrary")) is not None:
            return early
        p, q = request.path_params, request.query_params
        day = f"{p['y']}-{p['m']}-{p['d']}" if "y" in p else None
        kind = p.get("kind")
        limit = min(1000, max(0, int(q.get("limit", 100))))
        offset = min(10_000, max(0, int(q.get("offset", 0))))
        fail_from = state["faults"]["openlibrary"].feed_fail_from_offset
        if 0 <= fail_from <= offset:
            state["counters"]["openlibrary"].errors += 1
            return JSONResponse({"error": "internal error"}, status_code=500)
        chosen = [
            c
            for c in reversed(state["changes"])
            if (day is None or c["timestamp"].startswith(day)) and (kind is None or c["kind"] == kind)
        ]
        page = [c for c in chosen[offset : offset + limit] if c["kind"] != "new-account"]
        return await _json(page)

    def changeset(
        kind: str, timestamp: str, keys: list[str], data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        entry = {
            "id": str(len(state["changes"]) + 1),
            "kind": kind,
            "timestamp": timestamp,
            "comment": "",
            "changes": [{"key": k, "revision": 2} for k in keys],
            "author": {"key": "/people/ImportBot"},
            "data": data or {},
        }
        state["changes"].append(entry)
        return entry

    async def add_changes(request: Request) -> Response:
        """Test control: change the catalog as OpenLibrary's editors do, and log it in the feed."""
        made = []
        for change in (await request.json())["changes"]:
            at, op = change["timestamp"], change["op"]
            if op == "add_work":
                work = catalog.add_work(
                    change["author"], change["title"], change.get("isbn", []), change.get("year")
                )
                made.append(changeset("add-book", at, [f"/books/{edition_key(work)}", f"/works/{work.key}"]))
            elif op == "edit_author":
                made.append(changeset("update", at, [f"/authors/{change['author']}"]))
            elif op == "merge_authors":
                moved = catalog.merge_authors(change["master"], change["duplicates"])
                keys = [f"/authors/{d}" for d in change["duplicates"]] + [f"/works/{w.key}" for w in moved]
                data = {
                    "master": f"/authors/{change['master']}",
                    "duplicates": [f"/authors/{d}" for d in change["duplicates"]],
                }
                made.append(changeset("merge-authors", at, keys, data))
            elif op == "noise":  # edits of books nobody holds, and sign-ups
                for n in range(int(change["count"])):
                    made.append(changeset(change.get("kind", "add-book"), at, [f"/books/OL{900_000 + n}M"]))
            else:
                return JSONResponse({"error": f"unknown op {op!r}"}, status_code=400)
        return JSONResponse({"ids": [c["id"] for c in made]})

    async def set_faults(request: Request) -> Response:
        body = await request.json()
        for provider, values in body.items():
            state["faults"][provider] = Faults(**values)
        state["counters"] = {p: Counters() for p in PROVIDERS}
        state["windows"] = {p: RateWindow() for p in PROVIDERS}
        state["released"].set()  # a hold of the faults before ends with them
        state["released"] = asyncio.Event()
        state["admitted"] = set()
        return JSONResponse({p: asdict(f) for p, f in state["faults"].items()})

    async def release(request: Request) -> Response:
        state["released"].set()
        return JSONResponse({"released": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                p: {
                    "requests": c.requests,
                    "served_429": c.served_429,
                    "limit_429": c.limit_429,
                    "errors": c.errors,
                    "held": c.held,
                    "asked": c.asked,
                    "times": [round(t - c.times[0], 3) for t in c.times] if c.times else [],
                }
                for p, c in state["counters"].items()
            }
        )

    def _held(faults: Faults, admitted: set[str], values: list[str], field_name: str) -> bool:
        """Whether a query naming ``values`` (of ``field_name``) waits for POST /_release."""
        if {h.casefold() for h in faults.hold_when_asked} & {v.casefold() for v in values}:
            return True
        if faults.hold_after_authors < 0:
            return False
        asked: set[str] = set()
        for value in values:
            if field_name == "author_key":
                asked.add(value)
            elif field_name == "author_name":
                asked |= catalog.keys_named(value)
            elif field_name == "isbn" and (work := catalog.by_isbn(value)) is not None:
                asked |= set(work.authors)
        if len(admitted | asked) > faults.hold_after_authors:
            return bool(asked - admitted)
        admitted |= asked
        return False

    return Starlette(
        routes=[
            Route("/search.json", ol_search),
            Route("/search/authors.json", ol_search_authors),
            Route("/books/v1/volumes", google_volumes),
            Route("/isbndb/author/{name:path}", isbndb_author),
            Route("/isbndb/book/{isbn}", isbndb_book),
            Route("/isbndb/books", isbndb_books, methods=["POST"]),
            Route("/recentchanges.json", recent_changes),
            Route("/recentchanges/{y}/{m}/{d}.json", recent_changes),
            Route("/recentchanges/{y}/{m}/{d}/{kind}.json", recent_changes),
            Route("/_changes", add_changes, methods=["POST"]),
            Route("/_faults", set_faults, methods=["POST"]),
            Route("/_release", release, methods=["POST"]),
            Route("/_stats", stats),
        ]
    )


MAX_BOOLEAN_CLAUSES = 1024  # Solr's default: a longer OR list is a 400 at OpenLibrary
_CLAUSE = re.compile(
    r'^(author_key|isbn|author_name|key|edition_key):\((.*)\)$|^(author_key|isbn|author_name|key|edition_key):(".*"|\S+)$',
    re.S,
)


def solr_query(q: str) -> tuple[str, list[str]]:
    """``field:(v1 OR v2 …)`` over author_key, isbn or author_name -> (field, values)."""
    match = _CLAUSE.match(q.strip())
    if len(q.strip()) < 3 or match is None:
        raise ValueError(f"unsupported query: {q[:80]!r}")
    field_name = match.group(1) or match.group(3)
    body = match.group(2) if match.group(1) else match.group(4)
    values = [v.strip().strip('"') for v in re.split(r"\s+OR\s+", body) if v.strip()]
    if len(values) > MAX_BOOLEAN_CLAUSES:
        raise ValueError("too many boolean clauses")
    return field_name, values


def solr_works(catalog: Catalog, field: str, values: list[str]) -> list[CatalogWork]:
    """The works matching any of the values, each once."""
    found: dict[str, CatalogWork] = {}
    for value in values:
        if field == "author_key":
            matches = catalog.works_by_author_key(value)
        elif field == "isbn":
            matches = [w for w in [catalog.by_isbn(value.replace("-", ""))] if w is not None]
        elif field in ("key", "edition_key"):
            work_key = value.removeprefix("/works/").removeprefix("/books/")
            work_key = work_key[:-1] + "W" if field == "edition_key" else work_key
            matches = [w for w in [catalog.by_work_key(work_key)] if w is not None]
        else:
            matches = catalog.works_by_name(value)
        for work in matches:
            found.setdefault(work.key, work)
    return list(found.values())


async def _json(body: Any) -> Response:
    """Pages are serialised off the event loop, so a 1,000-work page does not delay other requests
    (whose arrival times the rate windows measure)."""
    return Response(await asyncio.to_thread(json.dumps, body), media_type="application/json")


def _too_many(provider: str) -> Response:
    body = {
        "openlibrary": {
            "status": 429,
            "message": "Too Many Requests. Consider using https://openlibrary.org/developers/dumps.",
        },
        "google_books": {
            "error": {
                "code": 429,
                "message": "Rate Limit Exceeded",
                "status": "RESOURCE_EXHAUSTED",
                "errors": [{"reason": "rateLimitExceeded"}],
            }
        },
        "isbndb": {"message": "Too Many Requests", "error_message": "Too Many Requests"},
    }[provider]
    return JSONResponse(body, status_code=429, headers={"Retry-After": "1"})


def _isbndb_auth(request: Request) -> Response | None:
    if not request.headers.get("authorization"):
        return JSONResponse({"message": "Unauthorized", "error_message": "Unauthorized"}, status_code=401)
    return None


def _ol_doc(work: CatalogWork, catalog: Catalog, wanted: set[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": f"/works/{work.key}",
        "title": work.title,
        "author_key": list(work.authors),
        "author_name": [catalog.authors[k].name for k in work.authors],
        "first_publish_year": work.year,
        "isbn": list(work.isbn),
        "language": [work.language],
        "edition_count": max(1, len(work.isbn)),
        "edition_key": [edition_key(work)],
    }
    if work.cover_id:
        doc["cover_i"] = work.cover_id
    return {k: v for k, v in doc.items() if not wanted or k in wanted}


def edition_key(work: CatalogWork) -> str:
    """The fake's one edition of each work: OL12W's is OL12M."""
    return work.key[:-1] + "M"


def _volume(work: CatalogWork, catalog: Catalog) -> dict[str, Any]:
    info: dict[str, Any] = {
        "title": work.title,
        "authors": [catalog.authors[k].name for k in work.authors],
        "publishedDate": str(work.year) if work.year else None,
        "language": work.language[:2],
        "industryIdentifiers": [{"type": "ISBN_13", "identifier": i} for i in work.isbn],
        "imageLinks": {
            "thumbnail": f"http://books.google.com/books/content?id={work.key}&printsec=frontcover&img=1&zoom=1"
        },
    }
    if work.description:
        info["description"] = work.description
    if work.categories:
        info["categories"] = work.categories
    return {
        "kind": "books#volume",
        "id": work.key,
        "volumeInfo": {k: v for k, v in info.items() if v is not None},
    }


def _isbndb_book(work: CatalogWork, catalog: Catalog) -> dict[str, Any]:
    isbn13 = work.isbn[0] if work.isbn else ""
    names = []
    for key in work.authors:  # ISBNdb often writes "Last, First"
        first, _, last = catalog.authors[key].name.rpartition(" ")
        names.append(f"{last}, {first}" if first else last)
    return {
        "title": work.title,
        "title_long": work.title,
        "isbn": isbn13,
        "isbn13": isbn13,
        "date_published": str(work.year or ""),
        "authors": names,
        "language": work.language[:2],
        "image": f"https://images.isbndb.com/covers/{isbn13[-4:-2]}/{isbn13[-2:]}/{isbn13}.jpg"
        if isbn13
        else None,
        "synopsis": work.description,
        "binding": "Paperback",
        "publisher": "Fake House",
    }
