"""The API's reads against a real uvicorn process: hot and cold hits, misses recorded as demand,
304s, gzip, staleness, the negative answers (404, 409), ISBNs, titles, completeness, health and the
docs. Every answer is checked against what the cache holds (read through the core), not restated."""

from __future__ import annotations

import asyncio
import html
import json
import time

from bookwarm.cache.redis_client import make_redis
from bookwarm.clock import parse_iso
from bookwarm.keys import Keys
from bookwarm.parsing.names import author_key
from tests.conftest import PROJECT
from tests.integration.api.conftest import Api


async def _redis(api: Api, *commands: tuple) -> list:
    client = make_redis(api.settings.redis.url)
    try:
        return [await client.execute_command(*command) for command in commands]
    finally:
        await client.aclose()


def hot(api: Api, name: str) -> bytes | None:
    key = Keys(api.settings.redis.key_prefix).author(author_key(name))
    return asyncio.run(_redis(api, ("GET", key)))[0]


def demand_for(api: Api, key: str) -> float:
    """How often ``key`` was recorded as demand this hour (the cache contract's keys)."""
    hour = time.strftime("%Y%m%d%H", time.gmtime())
    zset = Keys(api.settings.redis.key_prefix).demand_authors(hour)
    return float(asyncio.run(_redis(api, ("ZSCORE", zset, key)))[0] or 0)


def test_a_hot_hit_is_the_cached_json_itself_with_where_and_how_old(api):
    with api.client() as client:
        answer = client.get("/v1/authors/Neil Gaiman")
    assert answer.status_code == 200, answer.text
    assert answer.content == hot(api, "Neil Gaiman")  # sent on as stored, not re-encoded
    assert answer.headers["x-bookwarm-tier"] == "hot" and answer.headers["x-bookwarm-stale"] == "false"
    age = time.time() - (parse_iso(json.loads(answer.content)["warmed_at"]) or 0)
    assert abs(int(answer.headers["x-bookwarm-age"]) - age) <= 2
    max_age = int(answer.headers["cache-control"].rsplit("=", 1)[1])
    assert 0 < max_age <= api.settings.redis.hot_ttl_s


def test_if_none_match_gives_304_and_a_changed_entry_a_new_etag(api):
    with api.client() as client:
        first = client.get("/v1/authors/Terry Pratchett")
        etag = first.headers["etag"]
        again = client.get("/v1/authors/Terry Pratchett", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = client.get("/v1/authors/Terry Pratchett", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200
        key = Keys(api.settings.redis.key_prefix).author(author_key("Terry Pratchett"))
        changed = json.loads(first.content) | {"works_count": json.loads(first.content)["works_count"] + 1}
        asyncio.run(_redis(api, ("SET", key, json.dumps(changed))))
        after = client.get("/v1/authors/Terry Pratchett", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag


def test_a_cold_hit_is_promoted_and_then_hot(api):
    key = Keys(api.settings.redis.key_prefix).author(author_key("Stephen King"))
    asyncio.run(_redis(api, ("DEL", key)))
    with api.client() as client:
        cold = client.get("/v1/authors/Stephen King")
        assert cold.status_code == 200 and cold.headers["x-bookwarm-tier"] == "cold"
        again = client.get("/v1/authors/Stephen King")
    assert again.headers["x-bookwarm-tier"] == "hot" and again.content == cold.content == hot(
        api, "Stephen King"
    )


def test_large_answers_are_gzipped_for_clients_that_ask(api):
    with api.client() as client:
        plain = client.get("/v1/authors/Stephen King", headers={"Accept-Encoding": "identity"})
        zipped = client.get("/v1/authors/Stephen King", headers={"Accept-Encoding": "gzip"})
    assert len(plain.content) > 1024 and "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content  # httpx unzips
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2  # what crossed the wire


def test_a_miss_not_answered_within_its_wait_is_202_with_retry_after_and_recorded_as_demand(api):
    name = "Ada Palmer"
    before = demand_for(api, author_key(name))
    with api.client() as client:
        answer = client.get(f"/v1/authors/{name}", params={"wait": 0})
    assert answer.status_code == 202 and int(answer.headers["retry-after"]) > 0
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["key"] == author_key(name)
    assert demand_for(api, author_key(name)) == before + 1


def test_a_stale_hit_is_served_at_once_and_recorded_as_demand(api):
    key = Keys(api.settings.redis.key_prefix).author(author_key("Ursula K. Le Guin"))
    entry = json.loads(hot(api, "Ursula K. Le Guin") or b"{}")
    old = time.gmtime(time.time() - api.settings.redis.soft_ttl_s - 3600)
    entry["warmed_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", old)
    asyncio.run(_redis(api, ("SET", key, json.dumps(entry))))
    before = demand_for(api, author_key("Ursula K. Le Guin"))
    with api.client() as client:
        answer = client.get("/v1/authors/Ursula K. Le Guin")
    assert answer.status_code == 200 and answer.headers["x-bookwarm-stale"] == "true"
    assert "max-age=0" in answer.headers["cache-control"]
    assert int(answer.headers["x-bookwarm-age"]) > api.settings.redis.soft_ttl_s
    assert demand_for(api, author_key("Ursula K. Le Guin")) == before + 1


def test_unknown_is_404_and_namesakes_409_from_their_negative_entries(api):
    with api.client() as client:
        unknown = client.get("/v1/authors/Nobody Atall")
        fetched_unknown = client.get("/v1/authors/Nobody Else Entirely", params={"wait": 10})  # asked live
        namesakes = client.get("/v1/authors/John Smith")
    assert fetched_unknown.status_code == 404, fetched_unknown.text
    assert unknown.status_code == 404 and unknown.json()["key"] == "nobody-atall", unknown.text
    assert namesakes.status_code == 409, namesakes.text
    stored = json.loads(hot(api, "John Smith") or b"{}")
    assert namesakes.json()["candidates"] == stored["author"]["alternates"] and stored["author"]["alternates"]


def test_an_isbn_in_any_spelling_gives_its_work_and_author(api):
    bibliography = json.loads(hot(api, "Neil Gaiman") or b"{}")
    work = next(w for w in bibliography["works"] if w["isbn13"])
    isbn13 = work["isbn13"][0]
    from bookwarm.parsing.isbn import isbn13_to_10

    isbn10 = isbn13_to_10(isbn13)
    spellings = [isbn13, f"{isbn13[:3]}-{isbn13[3:]}", *([isbn10] if isbn10 else [])]
    with api.client() as client:
        answers = [client.get(f"/v1/isbn/{s}") for s in spellings]
        author_url = answers[0].json()["author"]["url"]
        author = client.get(author_url)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["work"]["title"] == work["title"] and answer.json()["isbn13"] == isbn13
    # a co-written work's ISBN names whichever author was written last (the cache contract)
    named = answers[0].json()["author"]["name"]
    assert author.status_code == 200 and author.content == hot(api, named)


def test_an_isbn_with_a_bad_checksum_is_400_an_unknown_one_404_and_past_the_wait_202(api):
    with api.client() as client:
        bad = client.get("/v1/isbn/9780441478126")
        unknown = client.get("/v1/isbn/9780000000002", params={"wait": 10})  # OpenLibrary asked live
        waited = client.get("/v1/isbn/9780000000019", params={"wait": 0})
    assert bad.status_code == 400 and "checksum" in bad.json()["error"]
    assert unknown.status_code == 404 and unknown.json()["isbn13"] == "9780000000002", unknown.text
    assert waited.status_code == 202 and waited.headers["retry-after"] == "5"


def test_an_uncached_isbn_is_answered_live_with_its_author_written(api):
    """An ISBN of the catalog whose author no test warmed: its edition, then its author, from
    OpenLibrary while the reader waits; the author then reads hot."""
    catalog = json.loads((PROJECT / "examples" / "catalog.json").read_text())
    murakami = next(a for a in catalog["authors"] if a["name"] == "Haruki Murakami")
    isbn = next(i for w in murakami["works"] for i in w.get("isbn", []))
    with api.client() as client:
        live = client.get(f"/v1/isbn/{isbn}", params={"wait": 10})
        assert live.status_code == 200 and live.headers["x-bookwarm-tier"] == "live", live.text
        author = client.get(live.json()["author"]["url"])
    assert author.status_code == 200 and author.headers["x-bookwarm-tier"] == "hot"
    assert isbn in {i for w in json.loads(author.content)["works"] for i in w["isbn13"]}


def test_search_by_title_and_author_reads_the_title_index(api):
    bibliography = json.loads(hot(api, "Terry Pratchett") or b"{}")
    title = bibliography["works"][0]["title"]
    with api.client() as client:
        everyone = client.get("/v1/search", params={"title": title})
        his = client.get("/v1/search", params={"title": title, "author": "Terry Pratchett"})
        nobody = client.get("/v1/search", params={"title": title, "author": "Nobody Atall"})
        untitled = client.get("/v1/search")
    assert everyone.status_code == 200 and any(
        r["author_key"] == "terry-pratchett" for r in everyone.json()["results"]
    )
    assert his.json()["results"] and all(r["author_key"] == "terry-pratchett" for r in his.json()["results"])
    assert nobody.json()["results"] == []
    assert untitled.status_code == 422 and set(untitled.json()) == {"error", "status"}


def test_completeness_counts_what_the_bibliography_says(api):
    bibliography = json.loads(hot(api, "Neil Gaiman") or b"{}")
    with api.client() as client:
        answer = client.get("/v1/authors/Neil Gaiman/completeness")
    body = answer.json()
    assert answer.status_code == 200
    assert (body["status"], body["complete"], body["works_count"]) == (
        bibliography["status"],
        bibliography["complete"],
        bibliography["works_count"],
    )
    counted = sum(sum(by.values()) for by in body["sources"].values())
    assert counted == sum(len(w.get("sources") or {}) for w in bibliography["works"])
    assert body["stale"] is False and body["warmed_at"] == bibliography["warmed_at"]


def test_health_names_each_service_and_the_docs_are_served(api):
    with api.client() as client:
        health = client.get("/health")
        docs = client.get("/docs")
        swagger = client.get("/docs/swagger")
        schema = client.get("/openapi.json").json()
    assert health.status_code == 200 and health.json()["checks"]["redis"] == "ok"
    assert health.json()["checks"]["object_store"] == "ok"
    assert {"/v1/authors/{name}", "/v1/isbn/{isbn}", "/v1/search", "/health"} <= set(schema["paths"])
    # /docs needs nothing from the internet: no script or style loaded from anywhere, every route of
    # the schema on it with a curl; Swagger UI (from its CDN) beside it
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "<script" not in docs.text and "http" not in docs.text.replace(api.url, "")
    for path, operations in schema["paths"].items():
        assert f"<code>{html.escape(path)}</code>" in docs.text, path
        for method in operations:
            assert f"<span class='m'>{method}</span> <code>{html.escape(path)}</code>" in docs.text
    assert docs.text.count("<pre>curl") == sum(len(ops) for ops in schema["paths"].values())
    assert swagger.status_code == 200 and "swagger-ui" in swagger.text and "/openapi.json" in swagger.text
