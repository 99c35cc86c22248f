"""Resolve settings inside a flow run: saved blocks (async load) > environment > local services > default."""

from __future__ import annotations

from blocks.loader import aload_block_values
from bookwarm.runtime import load_settings
from bookwarm.settings import Settings


async def run_settings() -> Settings:
    """Never starts servers: a worker on a dev machine uses `bookwarm services up`'s, if running."""
    return load_settings(start_services=False, blocks=await aload_block_values())
