"""Provider responses in their real formats -> normalised works; identity choice; merge."""

from __future__ import annotations

import asyncio
import json

import httpx
import respx

from bookwarm.providers.google_books import GoogleBooksClient
from bookwarm.providers.http import CallStats, ProviderHttp
from bookwarm.providers.isbndb import book_to_work
from bookwarm.providers.merge import core_works, merge
from bookwarm.providers.models import Identity, ProviderResult, Work
from bookwarm.providers.openlibrary import OpenLibraryClient, choose_identity
from bookwarm.settings import resolve


def ol_doc(key, title, authors, isbn=(), year=2000):
    return {
        "key": f"/works/{key}",
        "title": title,
        "author_key": [a[0] for a in authors],
        "author_name": [a[1] for a in authors],
        "isbn": list(isbn),
        "first_publish_year": year,
    }


def test_identity_prefers_the_matching_name_with_most_works():
    docs = [ol_doc(f"W{i}", f"T{i}", [("OL1A", "Markus Zusak")]) for i in range(12)]
    docs += [ol_doc(f"X{i}", f"U{i}", [("OL9A", "Markus Zusak")]) for i in range(3)]
    docs += [ol_doc("Y", "Other", [("OL5A", "Somebody Else")])]
    identity = choose_identity("markus zusak", docs)
    assert identity.openlibrary_key == "OL1A"
    assert identity.confidence == 0.8  # 12 / (12 + 3)
    assert identity.alternates[0]["openlibrary_key"] == "OL9A"


def test_two_people_sharing_a_name_give_low_confidence():
    docs = [ol_doc(f"W{i}", f"T{i}", [("OL1A", "John Smith")]) for i in range(40)]
    docs += [ol_doc(f"X{i}", f"U{i}", [("OL2A", "John Smith")]) for i in range(35)]
    assert choose_identity("John Smith", docs).confidence < 0.6


def test_nobody_matches():
    assert choose_identity("Zyxw Qvrtnomad", [ol_doc("W", "T", [("OL1A", "Ann Leckie")])]) is None


def test_real_openlibrary_search_response_gives_works_and_coauthors(shared_fixtures):
    body = json.loads((shared_fixtures / "api/openlibrary/it4403_search_q_modern_web.json").read_text())
    multi = next(d for d in body["docs"] if len(d.get("author_key", [])) > 1)
    name = multi["author_name"][0]
    identity = choose_identity(name, body["docs"])
    assert identity.openlibrary_key == multi["author_key"][0]
    from bookwarm.providers.openlibrary import work_from_doc

    work = work_from_doc(multi, identity)
    assert {p.openlibrary_key for p in work.authors} == set(multi["author_key"])
    assert all(p.key for p in work.authors)


@respx.mock
async def test_openlibrary_pages_past_1000_works_until_numfound():
    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        docs = [
            ol_doc(f"W{i}", f"Book {i}", [("OL1A", "Nora Roberts")])
            for i in range(offset, min(offset + 1000, 2300))
        ]
        return httpx.Response(200, json={"numFound": 2300, "start": offset, "docs": docs})

    route = respx.get("https://ol.test/search.json").mock(side_effect=page)
    client = OpenLibraryClient(ProviderHttp("openlibrary", httpx.AsyncClient(base_url="https://ol.test")))
    stats = CallStats()
    _identity, result = await client.fetch("Nora Roberts", stats)
    assert len(result.works) == 2300 and result.complete
    assert route.call_count == 3 and stats.calls["openlibrary"] == 3
    assert route.calls[0].request.url.params["fields"].startswith("key,title,author_key")


@respx.mock
async def test_google_books_real_search_format_and_empty_result(shared_fixtures):
    body = json.loads(
        (shared_fixtures / "api/googlebooks/jellyfin_google-books-volume-search.json").read_text("utf-8-sig")
    )
    author = body["items"][0]["volumeInfo"]["authors"][0]
    respx.get("https://gb.test/volumes").mock(
        side_effect=[
            httpx.Response(200, json=body),
            httpx.Response(200, json={"kind": "books#volumes", "totalItems": 0}),
        ]
    )
    client = GoogleBooksClient(
        ProviderHttp("google_books", httpx.AsyncClient(base_url="https://gb.test")), api_key="k"
    )
    result = await client.fetch(author, CallStats())
    assert result.works and all(w.title for w in result.works)
    assert (await client.fetch("Nobody Atall", CallStats())).works == []


def test_isbndb_dump_records_in_book_shape(shared_fixtures):
    lines = (shared_fixtures / "api/isbndb/openlibrary_isbndb_dump_sample.jsonl").read_text().splitlines()
    works = [book_to_work(json.loads(line), None) for line in lines if line.strip()]
    assert all(w is not None and w.title and w.isbn13 for w in works)
    assert works[0].isbn13 == ["9780000001566"]


def test_merge_dedupes_by_isbn_then_title_and_keeps_provenance():
    identity = Identity("Neil Gaiman", "neil-gaiman", "OL1A", 1.0)
    ol = ProviderResult(
        "openlibrary",
        works=[
            Work("American Gods", "american-gods", "openlibrary", "OL1W", 2001, ["9780380789030"]),
            Work("Coraline", "coraline", "openlibrary", "OL2W", 2002, []),
        ],
    )
    google = ProviderResult(
        "google_books",
        works=[
            Work(
                "American Gods: A Novel",
                "american-gods",
                "google_books",
                None,
                None,
                ["9780380789030"],
                description="Shadow",
            ),
            Work("Coraline", "coraline", "google_books", cover="http://cover"),
            Work("Neverwhere", "neverwhere", "google_books", isbn13=["9780380789016"]),
        ],
    )
    bib = merge("Neil Gaiman", "neil-gaiman", identity, [ol, google], CallStats(calls={"openlibrary": 1}))
    titles = [w.title for w in bib.works]
    assert titles == ["American Gods", "Coraline", "Neverwhere"]
    gods = bib.works[0]
    assert gods.description == "Shadow" and gods.provenance["description"] == "google_books"
    assert bib.complete and bib.status == "ok"


def test_merge_flags_review_unknown_and_partial():
    stats = CallStats()
    low = Identity("John Smith", "john-smith", "OL1A", 0.53)
    ok_ol = ProviderResult("openlibrary", works=[])
    assert merge("John Smith", "john-smith", low, [ok_ol], stats).status == "review"
    unknown = merge("Zyxw", "zyxw", None, [ok_ol], stats)
    assert unknown.status == "unknown" and not unknown.complete and unknown.works == []
    down = ProviderResult("isbndb", ok=False, error="down")
    sure = Identity("Ann Leckie", "ann-leckie", "OL2A", 1.0)
    assert merge("Ann Leckie", "ann-leckie", sure, [ok_ol, down], stats).status == "partial"


def test_core_works_filter():
    works = [
        Work("Dune", "dune", "openlibrary", language=["eng"]),
        Work("Dune Study Guide", "dune-study-guide", "openlibrary", language=["eng"]),
        Work("Dune Box Set", "dune-box-set", "google_books", language=["en"]),
        Work("Dune (édition française)", "dune-edition-francaise", "google_books", language=["fr"]),
    ]
    assert [w.title for w in core_works(works)] == ["Dune"]


@respx.mock
async def test_the_three_providers_are_queried_concurrently():
    """Each mocked provider waits until all three requests are in flight: sequential calls would time out."""
    from bookwarm.providers.session import ProviderSession

    arrived: set[str] = set()
    everyone = asyncio.Event()

    async def barrier(name, body):
        arrived.add(name)
        if len(arrived) == 3:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), timeout=5)
        return httpx.Response(200, json=body)

    respx.get("https://ol.test/search.json").mock(
        side_effect=lambda r: barrier(
            "ol",
            {"numFound": 1, "docs": [ol_doc("W1", "Dune", [("OL1A", "Frank Herbert")], ["9780441172719"])]},
        )
    )
    respx.get("https://gb.test/volumes").mock(side_effect=lambda r: barrier("gb", {"totalItems": 0}))
    respx.get("https://db.test/author/Frank%20Herbert").mock(
        side_effect=lambda r: barrier("db", {"books": [], "total": 0})
    )
    settings = resolve(
        {
            "BOOKWARM_REDIS_URL": "redis://unused:1/0",
            "BOOKWARM_OPENLIBRARY_URL": "https://ol.test",
            "BOOKWARM_GOOGLE_BOOKS_URL": "https://gb.test",
            "BOOKWARM_ISBNDB_URL": "https://db.test",
            "BOOKWARM_ISBNDB_API_KEY": "k",
        }
    )
    # No Redis (limits off) and httpx's own transport, which respx intercepts: no socket is opened.
    async with ProviderSession(
        settings, with_limits=False, transport_factory=httpx.AsyncHTTPTransport
    ) as session:
        bib = await session.fetch("Frank Herbert")
    assert arrived == {"ol", "gb", "db"}
    assert bib.status == "ok" and [w.title for w in bib.works] == ["Dune"]
