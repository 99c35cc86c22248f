"""What a run writes matches the published contract (docs/cache-contract.md, docs/schemas): every
author, ISBN and title entry in Redis, every object in the store, and the negative entries."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from bookwarm.cache.objectstore import ObjectStore
from bookwarm.cache.redis_client import make_redis
from bookwarm.keys import Keys
from flows.warm_library import warm_library
from tests.conftest import PROJECT
from tests.integration.test_flows import library

SCHEMAS = PROJECT / "docs" / "schemas"


def validators() -> dict[str, Draft202012Validator]:
    loaded = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in loaded.values()
    )
    for schema in loaded.values():
        Draft202012Validator.check_schema(schema)
    return {
        name.removesuffix(".schema.json"): Draft202012Validator(schema, registry=registry)
        for name, schema in loaded.items()
    }


def check(validator: Draft202012Validator, value: object, where: str) -> None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].path)}"


async def test_a_run_writes_what_the_contract_says(flow_env, tmp_path):
    schemas = validators()
    await warm_library(
        library(tmp_path, "Neil Gaiman", "J.K. Rowling", "Haruki Murakami", "Nobody Atall Xyzzy"), max_depth=2
    )
    client = make_redis(flow_env.redis.url)
    keys = Keys(flow_env.redis.key_prefix)
    counts = {"author": 0, "negative": 0, "isbn": 0, "title": 0}
    try:
        async for raw in client.scan_iter(match=keys.author("*")):
            value = json.loads(await client.get(raw))
            check(schemas["author"], value, raw.decode())
            counts["negative" if value["status"] in ("unknown", "review") else "author"] += 1
        async for raw in client.scan_iter(match=keys.isbn("*")):
            check(schemas["isbn"], json.loads(await client.get(raw)), raw.decode())
            counts["isbn"] += 1
        async for raw in client.scan_iter(match=keys.title("*")):
            for field, value in (await client.hgetall(raw)).items():
                check(schemas["title"], json.loads(value), f"{raw.decode()} {field.decode()}")
                counts["title"] += 1
    finally:
        await client.aclose()
    assert (
        counts["author"] >= 6 and counts["negative"] >= 1 and counts["isbn"] > 10 and counts["title"] > 10
    ), counts

    store = ObjectStore(flow_env.s3)
    try:
        authors = [n for n in store.list_names("authors/")]
        assert authors, "no author objects"
        for name in authors:
            check(schemas["author"], json.loads(store.get_bytes_sync(name) or b"null"), name)
        assert not store.list_names("isbn/"), "one object per ISBN is the old layout: no longer written"
    finally:
        store.close()
    # the cold tier's ISBN index names, for every ISBN, an author whose object is in the store
    client = make_redis(flow_env.redis.url)
    try:
        indexed = {}
        async for raw in client.scan_iter(match=f"{keys.prefix}isbnindex:*"):
            for isbn13, author_key in (await client.hgetall(raw)).items():
                assert raw.decode() == keys.isbn_index(isbn13.decode())
                indexed[isbn13.decode()] = author_key.decode()
    finally:
        await client.aclose()
    assert len(indexed) > 10 and {f"authors/{k}.json" for k in indexed.values()} <= set(authors)


async def test_isbn_lookups_from_the_cold_tier(flow_env, tmp_path):
    """With the hot tier's entries gone, an ISBN is found through the index and its author's object,
    and an object of the earlier layout (one per ISBN) is still read."""
    from bookwarm.warming.context import WarmContext

    await warm_library(library(tmp_path, "Neil Gaiman"), max_depth=1)
    keys = Keys(flow_env.redis.key_prefix)
    client = make_redis(flow_env.redis.url)
    async with WarmContext(flow_env) as ctx:
        hot = await ctx.cache.hot.get_json(keys.author("neil-gaiman"))
        # a work of his alone (a co-written one's ISBN names whichever co-author was written last)
        isbn13 = next(w["isbn13"][0] for w in hot["works"] if len(w.get("authors", [])) <= 1 and w["isbn13"])
        for pattern in (keys.author("*"), keys.isbn("*")):
            async for raw in client.scan_iter(match=pattern):
                await client.delete(raw)
        read = await ctx.cache.lookup_isbn(isbn13)
        assert read.tier == "cold" and read.value is not None
        assert read.value["author"]["key"] == "neil-gaiman" and isbn13 in read.value["work"]["isbn13"]
        check(validators()["isbn"], read.value, isbn13)
        assert (await ctx.cache.lookup_isbn(isbn13)).tier == "hot"  # promoted

        old = {
            "isbn13": "9780306406157",
            "author": {"name": "Old Layout", "key": "old-layout"},
            "work": read.value["work"],
        }
        await ctx.cache.cold.put_json("isbn/9780306406157.json", old)
        again = await ctx.cache.lookup_isbn("0306406152")  # its ISBN-10
        assert again.tier == "cold" and again.value == old
    await client.aclose()


def test_the_schemas_reject_what_the_contract_forbids():
    """The schemas are not vacuous: a negative entry with works, a bad ISBN and a missing key fail."""
    schemas = validators()
    negative = {
        "author": {
            "name": "X",
            "key": "x",
            "openlibrary_key": None,
            "confidence": 0.0,
            "needs_review": False,
            "alternate_names": [],
            "alternates": [],
        },
        "works": [],
        "works_count": 0,
        "complete": False,
        "status": "unknown",
        "sources": {},
        "calls": {},
        "fetched_at": "2026-11-30T00:00:00+00:00",
    }
    assert not list(schemas["author"].iter_errors(negative))
    with pytest.raises(AssertionError):
        check(schemas["author"], {**negative, "works_count": 3}, "negative with works")
    with pytest.raises(AssertionError):
        check(schemas["isbn"], {"isbn13": "12345", "author": {"name": "X", "key": "x"}, "work": {}}, "isbn")
    with pytest.raises(AssertionError):
        check(schemas["title"], {"title": "T", "author": "A"}, "title")
