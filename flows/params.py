"""Bounded flow parameters, shared by every flow: Prefect validates them before a run starts, from the
CLI, the UI or the REST API (deployments enforce the schema built from these)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MaxDepth = Annotated[
    int, Field(ge=1, le=3, description="co-author levels: 1 to 3 (library authors are depth 0)")
]
NamedMaxDepth = Annotated[int, Field(ge=0, le=3, description="co-author levels: 0 to 3")]
Concurrency = Annotated[int, Field(ge=1, le=256, description="authors in flight per shard")]
MaxAuthors = Annotated[int, Field(ge=1, le=1_000_000, description="authors enriched in this run at most")]
ShardSize = Annotated[int, Field(ge=1, le=10_000, description="authors per warm-authors subflow")]
Source = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512 * 1024,
        description="s3://BUCKET/uploads/… (see `bookwarm upload`), base64 CSV text, or an absolute path "
        "under BOOKWARM_SOURCE_ROOTS",
    ),
]
