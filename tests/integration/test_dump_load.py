"""Warming from OpenLibrary's dumps: small dumps generated from the fake catalog in the real format,
with the awkward rows real dumps hold, against real Redis, S3 and Prefect servers.

The bibliography a dump gives must be the one the API path gives for the same catalog (the fake
OpenLibrary serves that catalog over search.json), and a load must be readable through the read path.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bookwarm.cli.read_cmd import lookup
from bookwarm.dumps.files import find_files
from bookwarm.dumps.scan import AuthorScan
from bookwarm.errors import DumpError, InputError
from bookwarm.parsing.names import author_key
from bookwarm.providers.fake.catalog import isbn13_for, load_catalog
from bookwarm.providers.fake.dumps import row, write_dumps
from bookwarm.providers.openlibrary_batch import openlibrary_bibliography
from bookwarm.warming.context import WarmContext
from bookwarm.warming.shard import fetch_alone, wanted_for
from tests.integration.conftest import CATALOG

DATE = "2026-09-30"
OWNED_ISBN = isbn13_for("owned by a reader")
LATER = "2026-10-02T08:30:00.000000"  # one awkward row is newer than the rest: the load is as of it
# Names a reader asks for: every catalog author, alternate spellings, namesakes, nobody.
ASKED = [
    "Neil Gaiman",
    "Neil Richard Gaiman",
    "Terry Pratchett",
    "Ursula Le Guin",
    "J.K. Rowling",
    "Robert Galbraith",
    "Stephen King",
    "Richard Bachman",
    "Nora Roberts",
    "Haruki Murakami",
    "Fyodor Dostoevsky",
    "Фёдор Достоевский",
    "John Smith",
    "Peter Straub",
    "John Tiffany",
    "Nobody Atall Whatsoever",
]


def awkward_rows() -> dict[str, list[str]]:
    """Every awkward row shape of ../shared/notes/providers.md, appended to the clean dumps."""
    m = f"{DATE}T12:00:00.000000"
    return {
        "authors": [
            # an author with no works; a deleted author; a redirect (merged into Neil Gaiman)
            row("author", "/authors/OL900A", m, {"key": "/authors/OL900A", "name": "Neil Gaimann"}),
            row("delete", "/authors/OL901A", m, {"key": "/authors/OL901A", "type": {"key": "/type/delete"}}),
            row(
                "redirect",
                "/authors/OL902A",
                m,
                {"location": "/authors/OL1A", "type": {"key": "/type/redirect"}},
            ),
            # malformed JSON, wrong column counts, a blank line, a non-UTF-8 byte
            "/type/author\t/authors/OL903A\t1\t" + m + '\t{"name": "Neil Gaiman", \n',
            "/type/author\t/authors/OL904A\t1\n",
            "/type/author\t/authors/OL905A\t1\t" + m + "\t{}\textra\n",
            "\n",
            "/type/author\t/authors/OL906A\t1\t" + m + '\t{"name": "Neil \xff Gaiman"}\n',
        ],
        "works": [
            # a work of the redirected author: it is Neil Gaiman's now
            row(
                "work",
                "/works/OL99990W",
                LATER,
                {
                    "title": "Merged Away",
                    "authors": [{"author": {"key": "/authors/OL902A"}}],
                    "first_publish_date": "March 3, 1999",
                },
            ),
            # works without authors, with an empty entry, an unreadable entry; a redirect; a delete
            row("work", "/works/OL99991W", m, {"title": "Nobody's Book"}),
            row("work", "/works/OL99992W", m, {"title": "Empty Entry", "authors": [{}]}),
            row("work", "/works/OL99993W", m, {"title": "Odd Entry", "authors": [17, None, {"author": 3}]}),
            row("redirect", "/works/OL99994W", m, {"location": "/works/OL1W"}),
            row("delete", "/works/OL99995W", m, {"key": "/works/OL99995W"}),
            # a work naming Neil Gaiman only in its description (no author): not his
            row(
                "work",
                "/works/OL99996W",
                m,
                {"title": "About Him", "authors": [], "description": "on /authors/OL1A"},
            ),
            # malformed JSON naming him; a work naming an author no record has (dropped from the doc)
            "/type/work\t/works/OL99997W\t1\t" + m + '\t{"authors": ["/authors/OL1A"\n',
            row(
                "work",
                "/works/OL99998W",
                m,
                {"title": "With a Ghost", "authors": ["/authors/OL1A", "/authors/OL999999A"]},
            ),
        ],
        "editions": [
            # an edition of a merged work (OL99994W is now OL1W): its ISBN-10 counts for OL1W
            row(
                "edition",
                "/books/OL99991M",
                m,
                {"works": [{"key": "/works/OL99994W"}], "isbn_10": ["0306406152"], "publish_date": "1901"},
            ),
            # an edition with no work, one of an unknown work, one malformed naming OL1W
            row("edition", "/books/OL99992M", m, {"title": "Loose", "isbn_13": ["9780306406157"]}),
            row(
                "edition",
                "/books/OL99993M",
                m,
                {"works": [{"key": "/works/OL88888W"}], "isbn_13": ["9781234567897"]},
            ),
            "/type/edition\t/books/OL99994M\t1\t" + m + '\t{"works": [{"key": "/works/OL1W"}\n',
        ],
    }


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dumps")
    catalog = load_catalog(CATALOG)
    extra = awkward_rows()
    # an ISBN of the second John Smith's (the fake catalog gives his works none): a library owning it
    # names him, namesake or not
    owned = next(w for w in catalog.works if w.authors == ["OL16A"])
    edition = {"works": [{"key": f"/works/{owned.key}"}], "isbn_13": [OWNED_ISBN]}
    extra["editions"].append(row("edition", "/books/OL99995M", f"{DATE}T12:00:00.000000", edition))
    write_dumps(catalog, directory, DATE, extra=extra)
    return directory


def scan(dumps: Path, names: list[str]) -> AuthorScan:
    authors = [{"name": n, "key": author_key(n)} for n in names]
    found = AuthorScan(find_files([dumps]), authors)
    found.fetched = found.run()  # type: ignore[attr-defined]
    return found


def comparable(bibliography: dict) -> dict:
    """What both paths must agree on: everything but when it was fetched (and, until editions are
    read, the ISBNs and languages that come from editions)."""
    out = {k: v for k, v in bibliography.items() if k not in ("fetched_at", "calls", "latency_s")}
    out["works"] = [
        {k: v for k, v in w.items() if k not in ("isbn13", "language", "sources")}
        for w in bibliography["works"]
    ]
    out["sources"] = {"openlibrary": {k: v for k, v in bibliography["sources"]["openlibrary"].items()}}
    return out


async def test_a_dump_gives_the_bibliography_the_api_gives(dumps: Path, provider_settings) -> None:
    found = scan(dumps, ASKED)
    async with WarmContext(provider_settings) as ctx:
        for name in ASKED:
            key = author_key(name)
            live = await fetch_alone(ctx, "dump-test", wanted_for({"name": name, "key": key}))
            fetched = found.fetched[key]  # type: ignore[attr-defined]
            from_api = openlibrary_bibliography(name, key, live.identity, live.works, live.error).to_dict()
            from_dump = openlibrary_bibliography(
                name, key, fetched.identity, fetched.works, fetched.error
            ).to_dict()
            if name == "Neil Gaiman" or name == "Neil Richard Gaiman":
                # the dump knows two more of his works than the fake OpenLibrary: the merged author's
                # and the one naming a ghost co-author (dropped from its author list)
                extra = {w["title"] for w in from_dump["works"]} - {w["title"] for w in from_api["works"]}
                assert extra == {"Merged Away", "With a Ghost"}, name
                ghost = next(w for w in from_dump["works"] if w["title"] == "With a Ghost")
                assert [p["openlibrary_key"] for p in ghost["authors"]] == ["OL1A"]
                from_dump["works"] = [w for w in from_dump["works"] if w["title"] not in extra]
                # and an edition of a work merged into his first: its ISBN and year count for that work
                first = next(w for w in from_dump["works"] if w["openlibrary_key"] == "OL1W")
                assert "9780306406157" in first["isbn13"] and first["first_publish_year"] == 1901
                first["isbn13"].remove("9780306406157")
                first["first_publish_year"] = next(
                    w["first_publish_year"] for w in from_api["works"] if w["openlibrary_key"] == "OL1W"
                )
                from_dump["works"].sort(key=lambda w: (w["first_publish_year"] or 9999, w["title_key"]))
                from_dump["works_count"] -= len(extra)
                from_dump["sources"]["openlibrary"]["works"] -= len(extra)
            assert comparable(from_dump) == comparable(from_api), name
    statuses = {
        n: openlibrary_bibliography(n, author_key(n), f.identity, f.works, f.error).status
        for n, f in zip(ASKED, found.fetched.values(), strict=True)
    }  # type: ignore[attr-defined]
    assert statuses["John Smith"] == "review" and statuses["Nobody Atall Whatsoever"] == "unknown"


def test_awkward_rows_are_counted_and_skipped(dumps: Path) -> None:
    found = scan(dumps, ["Neil Gaiman"])
    counts = found.counts.to_dict()
    # read twice (names, then co-authors): each wrong row counted on each pass of its file
    assert counts["wrong_columns"] >= 3
    assert counts["malformed_json"] >= 2  # the broken author and the broken work that name him
    assert counts["works_without_authors"] >= 2
    assert counts["redirects"] >= 2 and counts["deletes"] >= 2
    assert counts["editions_without_work"] == 1
    assert counts["newest"] == LATER
    titles = {d["title"] for d in found.works.values()}
    assert "About Him" not in titles and "Nobody's Book" not in titles


def test_unusable_dump_files_give_one_clear_error(tmp_path: Path, dumps: Path) -> None:
    with pytest.raises(DumpError, match="no such dump"):
        find_files([tmp_path / "missing"])
    with pytest.raises(DumpError, match="holds no OpenLibrary dump"):
        find_files([tmp_path])
    (tmp_path / f"ol_dump_authors_{DATE}.txt.gz").write_bytes(
        (dumps / f"ol_dump_authors_{DATE}.txt.gz").read_bytes()
    )
    with pytest.raises(DumpError, match="works dump is missing"):
        find_files([tmp_path])
    whole = (dumps / f"ol_dump_works_{DATE}.txt.gz").read_bytes()
    works = tmp_path / f"ol_dump_works_{DATE}.txt.gz"
    works.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DumpError, match="truncated"):
        scan(tmp_path, ["Neil Gaiman"])
    works.write_bytes(gzip.compress(b"title,author,isbn\nGood Omens,Neil Gaiman,9780060853983\n"))
    with pytest.raises(DumpError, match="not an OpenLibrary dump"):
        scan(tmp_path, ["Neil Gaiman"])
    works.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    with pytest.raises(DumpError, match="not a readable gzip"):
        scan(tmp_path, ["Neil Gaiman"])


async def test_a_load_writes_both_tiers_and_a_rerun_writes_nothing_again(
    dumps: Path, flow_env, tmp_path: Path
) -> None:
    from flows.warm_from_dump import warm_from_dump
    from tests.integration.conftest import processed

    names = tmp_path / "authors.txt"
    names.write_text("\n".join(ASKED) + "\n\n   \n", encoding="utf-8")
    summary = await warm_from_dump(paths=[str(dumps)], authors_file=str(names), chunk_size=10)
    asked = {author_key(n) for n in ASKED}
    assert summary["authors"] == len(asked) and summary["failed"] == 0
    assert summary["as_of"].startswith(LATER[:19])
    markers = await processed(flow_env)
    assert set(markers) == asked
    assert {m["last_warmed"] for m in markers.values()} == {summary["as_of"]}
    assert sum(summary["written"].values()) == len(asked)
    assert markers[author_key("John Smith")]["status"] == "review"
    assert markers[author_key("Nobody Atall Whatsoever")]["status"] == "unknown"

    # through the read path: the hot tier, then the cold one once Redis forgot the author
    bibliography, tier, _, _ = await lookup(flow_env, "author", "Stephen King")
    assert tier == "hot" and bibliography is not None
    assert (
        bibliography["author"]["openlibrary_key"] == "OL10A" and bibliography["warmed_at"] == summary["as_of"]
    )
    assert bibliography["works_count"] == len(load_catalog(CATALOG).works_by_author_key("OL10A"))
    await _forget_hot(flow_env, author_key("Terry Pratchett"))
    bibliography, tier, _, _ = await lookup(flow_env, "author", "Terry Pratchett")
    assert tier == "cold" and bibliography is not None and bibliography["works"]

    again = await warm_from_dump(paths=[str(dumps)], authors_file=str(names), chunk_size=10)
    assert again["written"] == {"skipped": len(asked)}
    forced = await warm_from_dump(paths=[str(dumps)], names=["Terry Pratchett"], force=True)
    assert forced["written"] == {"warmed": 1}


async def _forget_hot(settings, key: str) -> None:
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys

    client = make_redis(settings.redis.url)
    try:
        await client.delete(Keys(settings.redis.key_prefix).author(key))
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dump", "load", "/nonexistent/dumps", "--name", "Neil Gaiman"], "no such dump file or directory"),
        (["dump", "load", "{dumps}"], "say which authors to load"),
        (["dump", "load", "{dumps}", "--authors", "/nonexistent/authors.txt"], "no such authors file"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(dumps: Path, argv: list[str], says: str, capsys) -> None:
    from bookwarm.cli.main import main

    code = main([a.replace("{dumps}", str(dumps)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err


async def test_a_library_settles_namesakes_and_refresh_takes_over(
    dumps: Path, flow_env, tmp_path: Path
) -> None:
    from bookwarm.cache.redis_client import make_redis
    from bookwarm.keys import Keys
    from flows.warm_from_dump import warm_from_dump
    from tests.integration.conftest import processed

    export = tmp_path / "library.csv"
    export.write_text(f"Title,Author,ISBN13\nA History of Trade,John Smith,{OWNED_ISBN}\n", encoding="utf-8")
    summary = await warm_from_dump(paths=[str(dumps)], library=str(export))
    assert summary["written"] == {"warmed": 1}
    marker = (await processed(flow_env))[author_key("John Smith")]
    assert marker["openlibrary_key"] == "OL16A" and marker["status"] == "warmed"
    client = make_redis(flow_env.redis.url)
    try:
        checkpoint = await client.get(Keys(flow_env.redis.key_prefix).refresh_checkpoint())
    finally:
        await client.aclose()
    # the feed is read from the dump's newest day on (the checkpoint is the last day done)
    assert summary["refresh_from"] == LATER[:10] and checkpoint.decode() == "2026-10-01"


async def test_a_run_reads_dumps_only_under_the_source_roots(dumps: Path, flow_env, monkeypatch) -> None:
    from flows.warm_from_dump import warm_from_dump

    monkeypatch.setenv("BOOKWARM_SOURCE_ROOTS", "/nonexistent-root")
    state = await warm_from_dump(paths=[str(dumps)], names=["Neil Gaiman"], return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match="not under BOOKWARM_SOURCE_ROOTS") as refused:
        await state.result()
    assert str(dumps) not in str(refused.value)


WRITERS = 600


async def test_a_load_killed_midway_writes_only_the_rest_when_run_again(
    flow_env, prefect_api: str, tmp_path: Path, monkeypatch
) -> None:
    """Killed while writing: the re-run writes only the authors not written, and reads no dump file
    again (what the first run read is kept until every author is written)."""
    import asyncio
    import os
    import re
    import signal
    import subprocess
    import sys
    from urllib.parse import urlsplit

    from flows.warm_from_dump import warm_from_dump
    from tests.fakes.tcp_proxy import TcpProxy
    from tests.integration.conftest import processed

    catalog = load_catalog(
        {
            "authors": [
                {"key": f"OL{i}A", "name": f"Writer Number{i}", "generate_works": 1}
                for i in range(1, WRITERS + 1)
            ]
        }
    )
    write_dumps(catalog, tmp_path / "dumps", DATE)
    names = tmp_path / "writers.txt"
    names.write_text("\n".join(a.name for a in catalog.authors.values()), encoding="utf-8")
    cmd = [sys.executable, "-m", "bookwarm", "dump", "load", str(tmp_path / "dumps"), "--authors", str(names)]
    cmd += ["--chunk-size", "10"]  # 60 chunks of 10, a task run each, 2 in flight
    # The load's Redis is reached through a proxy that stops forwarding once 15 processed markers
    # went through (a partition, at a known point): at least one chunk is written, never all.
    real = urlsplit(flow_env.redis.url)
    marker_set = re.compile(rb"SET\r\n\$\d+\r\n[^\r]*:warming:processed:")  # a marker written, not read
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 6379, hold_after=(marker_set, 15))
    port = await proxy.start()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "BOOKWARM_HOME": str(tmp_path / "home"),
        "BOOKWARM_REDIS_URL": f"redis://127.0.0.1:{port}{real.path}",
    }
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        while not proxy.holding.is_set():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            await asyncio.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # killed with its writes cut off midway
        proc.communicate(timeout=30)
    finally:
        await proxy.stop()
    written = len(await processed(flow_env))
    assert 0 < written < WRITERS  # killed midway
    kept = list((tmp_path / "home" / "dumps").glob("plan-*.pickle"))
    assert len(kept) == 1, kept  # what the killed run read
    monkeypatch.setenv("BOOKWARM_HOME", str(tmp_path / "home"))
    works = tmp_path / "dumps" / f"ol_dump_works_{DATE}.txt.gz"
    original, stamp = works.read_bytes(), works.stat()
    works.write_bytes(b"\0" * len(original))  # unreadable, yet the same file by size and time
    os.utime(works, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    try:
        again = await warm_from_dump(paths=[str(tmp_path / "dumps")], authors_file=str(names), chunk_size=500)
    finally:
        works.write_bytes(original)
    assert again["written"] == {"skipped": written, "warmed": WRITERS - written}
    assert len(await processed(flow_env)) == WRITERS
    assert not kept[0].exists()  # every author written: the reading is dropped


async def test_every_author_of_the_dump_in_partitions_as_a_list_would_give_it(
    dumps: Path, flow_env, monkeypatch, tmp_path: Path
) -> None:
    """--all: the catalogue spilled to disk in several partitions gives each author the bibliography
    the list mode gives (which equals the API path's), namesakes once, for review."""
    import os

    from bookwarm.dumps import catalogue
    from bookwarm.providers.openlibrary_batch import openlibrary_bibliography as built
    from flows.warm_from_dump import warm_from_dump
    from tests.integration.conftest import processed

    monkeypatch.setattr(catalogue, "WORKS_PER_PARTITION", 300)  # several partitions of a small dump
    monkeypatch.setattr(catalogue, "PAIRS_PER_PARTITION", 300)
    monkeypatch.setenv("BOOKWARM_HOME", str(tmp_path / "home"))
    spill = catalogue.CatalogueSpill(find_files([dumps]), tmp_path / "spill")
    spill.build()
    assert spill.partitions > 1 and spill.work_partitions > 1
    every = {a["key"]: (a, f) for p in range(spill.partitions) for a, f in spill.authors_of(p)}
    catalog = load_catalog(CATALOG)
    with_works = {author_key(a.name) for a in catalog.authors.values() if catalog.works_by_author_key(a.key)}
    assert (
        set(every) == with_works | {author_key("Neil Gaimann")} - {author_key("Neil Gaimann")}
        or set(every) == with_works
    )
    listed = scan(dumps, [a["name"] for a, _ in every.values()])
    for key, (author, fetched) in every.items():
        mine = built(author["name"], key, fetched.identity, fetched.works, fetched.error).to_dict()
        theirs = listed.fetched[key]  # type: ignore[attr-defined]
        reference = built(author["name"], key, theirs.identity, theirs.works, theirs.error).to_dict()
        assert comparable(mine) == comparable(reference), key
    assert built("John Smith", "john-smith", every["john-smith"][1].identity, None, None).status == "review"

    # a re-run after a kill reads no dump file again: the spill on disk is reused
    works = dumps / f"ol_dump_works_{DATE}.txt.gz"
    kept, stamp = works.read_bytes(), works.stat()
    try:
        works.write_bytes(b"\0" * len(kept))  # unreadable, yet the same file by size and time
        os.utime(works, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        again = catalogue.CatalogueSpill(find_files([dumps]), tmp_path / "spill")
        again.build()
        assert sum(1 for p in range(again.partitions) for _ in again.authors_of(p)) == len(every)
    finally:
        works.write_bytes(kept)

    summary = await warm_from_dump(paths=[str(dumps)], all_authors=True)
    assert summary["authors"] == len(every) and summary["failed"] == 0
    assert set(await processed(flow_env)) == set(every)
    assert not any((tmp_path / "home" / "dumps").iterdir())  # the spill is gone once all is written
