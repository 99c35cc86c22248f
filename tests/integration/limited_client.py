"""A separate process calling OpenLibrary through bookwarm's shared Redis limiter (used by
test_shared_limiter.py): `python -m tests.integration.limited_client CALLS` with the BOOKWARM_*
environment pointing at the test's Redis and fake providers."""

from __future__ import annotations

import asyncio
import sys

from bookwarm.providers.http import CallStats
from bookwarm.providers.session import ProviderSession
from bookwarm.settings import resolve


async def main(calls: int) -> None:
    async with ProviderSession(resolve()) as session:
        for n in range(calls):
            await session.ol_batches.works_by_keys([f"OL{n % 3 + 1}A"], CallStats())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
