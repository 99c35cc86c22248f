"""Providers against the fake provider server (real HTTP on loopback) and real Redis limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace

from bookwarm.providers.fake.catalog import load_catalog
from bookwarm.providers.fake.runner import provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.providers.http import RetryPolicy
from bookwarm.providers.session import ProviderSession
from tests.integration.conftest import CATALOG

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=1.2, max_total_s=10)


async def fetch(settings, *names, **kw):
    async with ProviderSession(settings, policy=FAST, **kw) as session:
        return await asyncio.gather(*(session.fetch(n) for n in names))


async def test_prolific_author_complete_with_every_work(provider_settings):
    (bib,) = await fetch(provider_settings, "Nora Roberts")
    catalog = load_catalog(CATALOG)
    expected = {w.key for w in catalog.works if "OL12A" in w.authors}
    assert len(expected) > 1000
    assert {w.openlibrary_key for w in bib.works if w.openlibrary_key} == expected
    assert bib.complete and bib.status == "ok"
    assert bib.calls["openlibrary"] == 2  # 1,201 works: two pages of 1,000


async def test_coauthors_identified_by_key_and_names_resolved(provider_settings):
    gaiman, rowling, murakami = await fetch(
        provider_settings, "Neil Gaiman", "J.K. Rowling", "Haruki Murakami"
    )
    good_omens = next(w for w in gaiman.works if w.title == "Good Omens")
    assert {(p.key, p.openlibrary_key) for p in good_omens.authors} == {
        ("neil-gaiman", "OL1A"),
        ("terry-pratchett", "OL2A"),
    }
    assert {p.key for p in rowling.coauthors} == {"jack-thorne", "john-tiffany"}
    assert rowling.author.openlibrary_key == "OL7A" and rowling.author.key == "j-k-rowling"
    assert "ノルウェイの森" in {w.title for w in murakami.works}


async def test_namesakes_are_flagged_and_unknown_authors_are_not_complete(provider_settings):
    smith, nobody = await fetch(provider_settings, "John Smith", "Zyxw Qvrtnomad")
    assert smith.status == "review" and smith.to_dict()["author"]["needs_review"]
    assert nobody.status == "unknown" and not nobody.complete and nobody.works == []


async def test_provider_down_for_the_whole_run_gives_partial_and_opens_the_circuit(
    provider_settings, fake_providers
):
    set_faults(fake_providers, {**{p: Faults() for p in PROVIDERS}, "isbndb": Faults(down=True)})
    names = [
        "Neil Gaiman",
        "Terry Pratchett",
        "Stephen Baxter",
        "Alastair Reynolds",
        "Ursula K. Le Guin",
        "Stephen King",
        "Nora Roberts",
        "Peter Straub",
    ]
    async with ProviderSession(provider_settings, policy=FAST) as session:
        results = [await session.fetch(n) for n in names]
    assert all(b.status == "partial" and b.works for b in results)
    assert all(not b.sources["isbndb"]["ok"] for b in results)
    served = stats(fake_providers)["isbndb"]["requests"]
    assert served < len(names) * FAST.max_attempts  # the breaker skipped later authors


async def test_daily_quota_spent_mid_run_fails_closed_and_survives_restart(provider_settings, fake_providers):
    settings = replace(
        provider_settings, openlibrary=replace(provider_settings.openlibrary, daily_quota=3, quota_share=1.0)
    )
    names = ["Neil Gaiman", "Terry Pratchett", "Stephen Baxter", "Alastair Reynolds", "Peter Straub"]
    async with ProviderSession(settings, policy=FAST) as session:
        results = [await session.fetch(n) for n in names]
    assert [b.status for b in results] == ["ok", "ok", "ok", "partial", "partial"]
    assert "quota" in results[-1].sources["openlibrary"]["error"]
    (again,) = await fetch(settings, "Neil Gaiman")  # a new session: the counter lives in Redis
    assert again.status == "partial"
    assert stats(fake_providers)["openlibrary"]["requests"] == 3


async def test_failed_calls_count_against_the_quota(provider_settings, fake_providers):
    set_faults(fake_providers, {**{p: Faults() for p in PROVIDERS}, "openlibrary": Faults(error_rate=1.0)})
    settings = replace(
        provider_settings, openlibrary=replace(provider_settings.openlibrary, daily_quota=2, quota_share=1.0)
    )
    (bib,) = await fetch(settings, "Neil Gaiman")
    assert bib.status == "partial" and "quota" in bib.sources["openlibrary"]["error"]
    assert stats(fake_providers)["openlibrary"]["requests"] == 2


HELPER = """
import asyncio, json, os, sys
from bookwarm.settings import resolve
from bookwarm.providers.session import ProviderSession
async def main():
    async with ProviderSession(resolve(os.environ)) as s:
        out = await asyncio.gather(*(s.fetch(n) for n in sys.argv[1:]))
    print(json.dumps([b.status for b in out]))
asyncio.run(main())
"""


def test_rate_limits_hold_across_processes(provider_settings, fake_providers, services):
    """Two processes fetch 24 authors at once; the server enforces the limits and must never say 429."""
    limits = {"openlibrary": 12.0, "google_books": 12.0, "isbndb": 6.0}
    set_faults(fake_providers, {p: Faults(rate_per_s=limits[p], latency_ms=20) for p in PROVIDERS})
    env = {
        **os.environ,
        **services.env(),
        **provider_env(fake_providers),
        "BOOKWARM_REDIS_PREFIX": provider_settings.redis.key_prefix + "xproc:",
        "BOOKWARM_OPENLIBRARY_RPS": "12",
        "BOOKWARM_GOOGLE_BOOKS_RPS": "12",
        "BOOKWARM_ISBNDB_RPS": "6",
        "BOOKWARM_OPENLIBRARY_BURST": "0",  # the server counts strictly here: the limiter must too
    }
    names = [n for n in json.loads(CATALOG.read_text())["authors"][:12]]
    batch = [a["name"] for a in names]
    procs = [
        subprocess.Popen([sys.executable, "-c", HELPER, *batch], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    served = stats(fake_providers)
    assert all(len(o) == 12 for o in outputs)
    assert served["openlibrary"]["requests"] >= 24
    assert {p: served[p]["limit_429"] for p in PROVIDERS} == dict.fromkeys(PROVIDERS, 0)


def test_providers_fetch_json_cli(provider_settings, fake_providers, services):
    env = {**os.environ, **services.env(), **provider_env(fake_providers)}
    proc = subprocess.run(
        [sys.executable, "-m", "bookwarm", "providers", "fetch", "Neil Gaiman", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"name", "key", "openlibrary_key", "confidence"} <= set(data["author"])
    work = data["works"][0]
    assert {"title", "isbn13", "first_publish_year", "authors"} <= set(work)
    assert all({"name", "key"} <= set(a) for a in work["authors"])
    assert data["complete"] is True and set(data["calls"]) == {"openlibrary", "google_books", "isbndb"}
    assert "fake-providers-accept-any-key" not in proc.stdout + proc.stderr
