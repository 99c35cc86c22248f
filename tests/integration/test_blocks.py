"""Blocks: registered with one command, then read back by the resolver ahead of the environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from prefect.exceptions import ObjectNotFound

from blocks.bookwarm_blocks import BLOCK_NAMES
from blocks.loader import aload_block_values, load_block_values
from blocks.register import register_blocks
from bookwarm.settings import resolve


def _delete_blocks() -> None:
    for cls, name in BLOCK_NAMES.values():
        with contextlib.suppress(ValueError, ObjectNotFound):
            cls.delete(name)


@pytest.fixture
def clean_blocks(prefect_api):
    """Saved blocks outrank the environment for every later flow in this session: remove them after."""
    yield
    _delete_blocks()


def test_register_then_resolve_prefers_blocks(clean_blocks, services):
    """Synchronous, like `bookwarm config --register-blocks` (Prefect's dual methods need a sync caller)."""
    settings = resolve(
        {**services.env(), "BOOKWARM_ISBNDB_API_KEY": "isbndb-secret", "BOOKWARM_REDIS_PREFIX": "blk:"}
    )
    saved = register_blocks(settings, overwrite=True)
    assert {"bookwarm-redis", "bookwarm-s3", "bookwarm-openlibrary", "bookwarm-isbndb"} <= set(saved)

    values = load_block_values()
    assert values["redis"]["url"].get_secret_value() == services.env()["BOOKWARM_REDIS_URL"]  # a secret
    assert values["isbndb"]["api_key"].get_secret_value() == "isbndb-secret"

    env = {"BOOKWARM_REDIS_URL": "redis://from-env:1/0"}  # a block beats the environment
    resolved = resolve(env, values)
    assert (
        resolved.redis.url == services.env()["BOOKWARM_REDIS_URL"]
        and resolved.origins["redis.url"] == "block:redis"
    )
    assert resolved.redis.key_prefix == "blk:"
    assert "isbndb-secret" not in repr(resolved)


def test_clean_blocks_leaves_no_block_for_later_tests(prefect_api, services):
    """What `clean_blocks` does after each test that saves blocks, checked on a block saved here."""
    cls, name = BLOCK_NAMES["orchestration"]
    cls(**asdict(resolve(services.env()).orchestration)).save(name, overwrite=True)
    assert set(load_block_values()) == {"orchestration"}
    assert set(asyncio.run(aload_block_values())) == {"orchestration"}  # as a flow run reads them
    _delete_blocks()
    assert load_block_values() == {} and asyncio.run(aload_block_values()) == {}


def test_blocks_are_skipped_without_a_prefect_api(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        assert os.environ.get("PREFECT_API_URL") is None
        assert load_block_values() == {}


def test_the_redis_password_is_a_secret_in_its_block(clean_blocks, services, prefect_api):
    """A Redis URL with a password: saved as a secret (the UI, the API and the block's events show it
    masked), read back whole by the resolver, masked by `bookwarm config`."""
    import time

    import httpx

    from bookwarm.settings import describe

    password = "pw-" + os.urandom(6).hex()
    url = services.env()["BOOKWARM_REDIS_URL"].replace("redis://", f"redis://:{password}@")
    started = time.time()
    register_blocks(resolve({**services.env(), "BOOKWARM_REDIS_URL": url}), overwrite=True)

    resolved = resolve({}, load_block_values())
    assert resolved.redis.url == url and resolved.origins["redis.url"] == "block:redis"
    assert password not in str(describe(resolved)) and ":****@" in str(describe(resolved))
    document = httpx.get(f"{prefect_api}/block_documents/name/bookwarm-redis", timeout=10)
    assert document.status_code == 404 or password not in document.text
    documents = httpx.post(f"{prefect_api}/block_documents/filter", json={}, timeout=10)
    assert documents.status_code == 200 and "bookwarm-redis" in documents.text
    assert password not in documents.text
    since = datetime.fromtimestamp(started - 1, UTC).isoformat()
    events = httpx.post(
        f"{prefect_api}/events/filter", json={"filter": {"occurred": {"since": since}}}, timeout=10
    )
    assert events.status_code == 200 and password not in events.text
