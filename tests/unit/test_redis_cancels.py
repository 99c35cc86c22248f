"""The Redis client keeps the connection class its URL's scheme chose (TCP, TLS, a Unix socket) and,
on Python 3.11, sends through the cancel-keeping send (bookwarm/cache/redis_client.py); the lost
cancel itself is shown against a real Redis in tests/integration/test_job_start.py."""

from __future__ import annotations

import asyncio
import sys

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from bookwarm.cache.redis_client import _SendKeepsCancels, make_redis


@pytest.mark.parametrize(
    ("url", "scheme_class"),
    [
        ("redis://127.0.0.1:6390/0", Connection),
        ("rediss://127.0.0.1:6390/0", SSLConnection),
        ("unix:///tmp/bookwarm-none.sock", UnixDomainSocketConnection),
    ],
)
def test_the_schemes_connection_class_is_kept(url: str, scheme_class: type) -> None:
    client = make_redis(url)
    made = client.connection_pool.connection_class
    assert issubclass(made, scheme_class)
    assert issubclass(made, _SendKeepsCancels) == (sys.version_info < (3, 12))
    assert made is make_redis(url).connection_pool.connection_class  # one class per scheme class
    asyncio.run(client.aclose())
