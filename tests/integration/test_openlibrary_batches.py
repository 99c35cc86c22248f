"""OpenLibrary's batched queries against the fake server (real HTTP, OpenLibrary's real formats):
identities by ISBN and by OR'd names, bibliographies by OR'd keys, and a failed batch split."""

from __future__ import annotations

import json
import math

import pytest

from bookwarm.providers.fake.catalog import isbn13_for
from bookwarm.providers.fake.runner import provider_env, set_faults, stats
from bookwarm.providers.fake.server import PROVIDERS, Faults
from bookwarm.providers.http import CallStats, RetryPolicy
from bookwarm.providers.openlibrary_batch import Wanted
from bookwarm.providers.session import ProviderSession
from bookwarm.settings import resolve
from tests.conftest import FIXTURES

CATALOG = FIXTURES / "catalog_economy.json"
FAST = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)
NAMES = [
    "John Smith",
    "JRR Tolkien",
    "村上春樹",
    "Фёдор Достоевский",
    "Nora Roberts",
    "Ann Leckie",
    "Nobody Atall",
]


@pytest.fixture
def economy_port(economy_providers: int) -> int:
    return economy_providers


@pytest.fixture
def economy_settings(services, economy_port, request):
    set_faults(economy_port, {p: Faults() for p in PROVIDERS})
    settings = resolve(
        {
            **services.env(),
            **provider_env(economy_port),
            "BOOKWARM_REDIS_PREFIX": f"b{abs(hash(request.node.nodeid)) % 10**8}:",
            "BOOKWARM_OPENLIBRARY_RPS": "1000",
        }
    )
    return settings


def wanted(name: str, *isbns: str) -> Wanted:
    from bookwarm.parsing.names import author_key

    return Wanted(name, author_key(name), list(isbns))


async def test_batched_name_identities_match_the_single_name_query(economy_settings):
    async with ProviderSession(economy_settings, policy=FAST) as session:
        """Namesakes, initials and non-Latin names: the OR'd query attributes each doc as the single
        query would, so identity, confidence and works are the same."""
        found, errors = await session.ol_batches.identities_by_name([wanted(n) for n in NAMES], CallStats())
        assert not errors
        for name in NAMES:
            single_identity, single = await session.openlibrary.fetch(name, CallStats())
            batched = found[wanted(name).key]
            if single_identity is None:
                assert batched is None, name
                continue
            assert batched is not None, name
            assert (batched.openlibrary_key, batched.confidence) == (
                single_identity.openlibrary_key,
                single_identity.confidence,
            ), name
            works = await session.ol_batches.works_by_keys([batched.openlibrary_key], CallStats())
            assert {d["key"] for d in works[batched.openlibrary_key].docs} == {
                f"/works/{w.openlibrary_key}" for w in single.works
            }, name
        assert found[wanted("John Smith").key].confidence < 0.6  # two John Smiths: a name cannot tell


async def test_the_users_own_isbn_settles_a_namesake(economy_settings, economy_port):
    async with ProviderSession(economy_settings, policy=FAST) as session:
        poet = wanted("John Smith", isbn13_for("Smith Poet/1"))
        tolkien = wanted("JRR Tolkien", isbn13_for("Tolkien/3"))
        unknown_isbn = wanted("Ann Leckie", "9780000000002")
        stats_ = CallStats()
        found = await session.ol_batches.identities_by_isbn([poet, tolkien, unknown_isbn], stats_)
        assert found[poet.key].openlibrary_key == "OL101A" and found[poet.key].confidence == 1.0
        assert found[tolkien.key].openlibrary_key == "OL102A"
        assert unknown_isbn.key not in found  # falls back to the name search
        assert stats_.calls["openlibrary"] == 1  # three authors, one call


async def test_a_prolific_author_and_small_ones_in_one_batch_are_each_complete(economy_settings):
    async with ProviderSession(economy_settings, policy=FAST) as session:
        catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
        keys = ["OL105A", "OL102A", "OL103A", "OL104A", "OL106A", "OL107A"]
        # each author's works in the catalog: their own (listed or generated) and those they co-wrote
        expected = {
            a["key"]: a.get("generate_works", 0) + len(a.get("works", [])) for a in catalog["authors"]
        }
        co_written = [
            c for a in catalog["authors"] for w in a.get("works", []) for c in w.get("coauthors", [])
        ]
        for key in co_written:
            expected[key] += 1
        stats_ = CallStats()
        works = await session.ol_batches.works_by_keys(keys, stats_)
        for key in keys:
            assert works[key].complete and works[key].error is None
            assert len({d["key"] for d in works[key].docs}) == expected[key], key
        distinct = {d["key"] for key in keys for d in works[key].docs}  # a co-written work is one doc
        assert len(distinct) == sum(expected[k] for k in keys) - sum(k in keys for k in co_written)
        assert stats_.calls["openlibrary"] == -(-len(distinct) // 1000)  # pages of 1,000, to the end


async def test_a_failed_batch_is_split_and_only_the_bad_author_fails(economy_settings, economy_port):
    async with ProviderSession(economy_settings, policy=FAST) as session:
        set_faults(
            economy_port,
            {**{p: Faults() for p in PROVIDERS}, "openlibrary": Faults(fail_when_asked="OL104A")},
        )
        keys = ["OL102A", "OL103A", "OL104A", "OL106A", "OL108A"]
        works = await session.ol_batches.works_by_keys(keys, CallStats())
        assert works["OL104A"].error and not works["OL104A"].docs and not works["OL104A"].complete
        for key in set(keys) - {"OL104A"}:
            assert works[key].complete and works[key].docs, key
        asked = stats(economy_port)["openlibrary"]["asked"]
        assert set(asked) == set(keys)
        # The failing batch is halved until the bad author stands alone: it is asked most, and no
        # author more than twice (two attempts) at each of the log2(5) + 1 levels of halving.
        assert all(asked[k] < asked["OL104A"] for k in set(keys) - {"OL104A"}), asked
        assert max(asked.values()) <= 2 * (math.ceil(math.log2(len(keys))) + 1), asked
