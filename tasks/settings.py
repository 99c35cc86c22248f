"""Resolve settings inside a flow run: saved blocks (async load) > environment > local services > default."""

from __future__ import annotations

import os

from blocks.loader import aload_block_values
from bookwarm.services.local import LocalServices
from bookwarm.settings import Settings, resolve


async def run_settings() -> Settings:
    blocks = await aload_block_values()
    first = resolve(os.environ, blocks)
    if first.redis.url and first.s3.endpoint:
        return first
    state = LocalServices().running()  # a worker on a dev machine: use `bookwarm services up`'s servers
    return resolve(os.environ, blocks, state.env() if state else None)
