"""Read saved bookwarm blocks as plain dicts for ``bookwarm.settings.resolve``.

Blocks are consulted only when a Prefect API is configured (``PREFECT_API_URL``): without one,
Prefect would start a temporary server (~15 s here) just to find that no block exists.
"""

from __future__ import annotations

import os
from typing import Any

from prefect.blocks.core import Block

from blocks.bookwarm_blocks import BLOCK_NAMES


def prefect_api_configured() -> bool:
    if os.environ.get("PREFECT_API_URL"):
        return True
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def load_block_values() -> dict[str, dict[str, Any]]:
    """{section: fields} for every saved block; missing blocks are simply absent."""
    if not prefect_api_configured():
        return {}
    values: dict[str, dict[str, Any]] = {}
    for section, (cls, name) in BLOCK_NAMES.items():
        try:
            block = cls.load(name)
        except ValueError:  # Prefect raises ValueError for a block that does not exist
            continue
        values[section] = _fields(block)
    return values


async def aload_block_values() -> dict[str, dict[str, Any]]:
    """Same as ``load_block_values`` for async code (flows), where ``Block.load`` must be awaited."""
    if not prefect_api_configured():
        return {}
    values: dict[str, dict[str, Any]] = {}
    for section, (cls, name) in BLOCK_NAMES.items():
        try:
            block = await cls.aload(name)
        except ValueError:
            continue
        values[section] = _fields(block)
    return values


def _fields(block: object) -> dict[str, Any]:
    """A block's saved fields. ``Block.load`` answers with a coroutine when it runs under an event
    loop: this says so instead of failing on the coroutine's missing ``model_dump``."""
    if not isinstance(block, Block):
        raise TypeError(f"expected a loaded block, got {type(block).__name__}: call aload_block_values")
    return block.model_dump(exclude={"block_type_slug"})
