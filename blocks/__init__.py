"""Prefect blocks: bookwarm's configuration and credentials, editable in the Prefect UI."""

from blocks.bookwarm_blocks import (
    BLOCK_NAMES,
    BookwarmGemini,
    BookwarmObjectStore,
    BookwarmOrchestration,
    BookwarmProvider,
    BookwarmRedis,
)

__all__ = [
    "BLOCK_NAMES",
    "BookwarmGemini",
    "BookwarmObjectStore",
    "BookwarmOrchestration",
    "BookwarmProvider",
    "BookwarmRedis",
]
