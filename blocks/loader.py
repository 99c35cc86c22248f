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
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        saved = _saved(client.request("POST", "/block_documents/filter", json=SAVED_FILTER).json())
    values: dict[str, dict[str, Any]] = {}
    for section, cls, name in saved:
        try:
            block = cls.load(name)
        except ValueError:  # Prefect raises ValueError for a block that does not exist (deleted since)
            continue
        values[section] = _fields(block)
    return values


async def aload_block_values() -> dict[str, dict[str, Any]]:
    """Same as ``load_block_values`` for async code (flows), where ``Block.load`` must be awaited."""
    if not prefect_api_configured():
        return {}
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        saved = _saved((await client.request("POST", "/block_documents/filter", json=SAVED_FILTER)).json())
    values: dict[str, dict[str, Any]] = {}
    for section, cls, name in saved:
        try:
            block = await cls.aload(name)
        except ValueError:
            continue
        values[section] = _fields(block)
    return values


# One question for which of bookwarm's blocks are saved, then a load of each that is: eight loads of
# blocks that mostly do not exist cost every flow run and CLI eight API calls (a third of a flow test
# file's requests, session 17). Secrets are not sent with the answer; a load fetches them.
SAVED_FILTER: dict[str, Any] = {
    "block_documents": {
        "name": {"any_": sorted({name for _, name in BLOCK_NAMES.values()})},
        "is_anonymous": {"eq_": False},
    },
    "block_types": {"slug": {"any_": sorted({cls.get_block_type_slug() for cls, _ in BLOCK_NAMES.values()})}},
    "include_secrets": False,
}


def _saved(documents: list[dict[str, Any]]) -> list[tuple[str, type[Block], str]]:
    """(section, block class, name) of each of bookwarm's blocks that an answer of
    /block_documents/filter says is saved, in BLOCK_NAMES' order."""
    found = {((d.get("block_type") or {}).get("slug", ""), d.get("name") or "") for d in documents}
    return [
        (section, cls, name)
        for section, (cls, name) in BLOCK_NAMES.items()
        if (cls.get_block_type_slug(), name) in found
    ]


def _fields(block: object) -> dict[str, Any]:
    """A block's saved fields. ``Block.load`` answers with a coroutine when it runs under an event
    loop: this says so instead of failing on the coroutine's missing ``model_dump``."""
    if not isinstance(block, Block):
        raise TypeError(f"expected a loaded block, got {type(block).__name__}: call aload_block_values")
    return block.model_dump(exclude={"block_type_slug"})
