"""Bounded flow parameters, shared by every flow: Prefect validates them before a run starts, from the
CLI, the UI or the REST API (deployments enforce the schema built from these)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field

# A person's name as a reader or operator types it: one line, no control characters, nothing a
# spreadsheet would run (a leading = + - @, or a pipe), a few hundred characters at most.
NAME_PATTERN = r"^[^\x00-\x1f\x7f=+@|\-][^\x00-\x1f\x7f|]*$"
MAX_NAME = 300
# How many names one run may take (warm-popular-authors): a deployment's schema is built when it
# is deployed or served, so this is read then.
MAX_NAMES = int(os.environ.get("BOOKWARM_MAX_NAMES", "1000"))

MaxDepth = Annotated[
    int, Field(ge=1, le=3, description="co-author levels: 1 to 3 (library authors are depth 0)")
]
NamedMaxDepth = Annotated[int, Field(ge=0, le=3, description="co-author levels: 0 to 3")]
Concurrency = Annotated[int, Field(ge=1, le=256, description="authors in flight per shard")]
MaxAuthors = Annotated[int, Field(ge=1, le=1_000_000, description="authors enriched in this run at most")]
DemandMaxAuthors = Annotated[
    int, Field(ge=1, le=100_000, description="authors this warm-demand run warms at most")
]
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
PersonName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="an author's name, one line"),
]
PersonNames = Annotated[
    list[PersonName], Field(min_length=1, max_length=MAX_NAMES, description=f"at most {MAX_NAMES} names")
]
JOB_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
JobId = Annotated[
    str,
    Field(
        pattern=JOB_ID_PATTERN,
        description="a job's id: its flow run id (a UUID)",
    ),
]
OpenLibraryAuthorKey = Annotated[
    str, Field(pattern=r"^OL[0-9]{1,12}A$", description="an OpenLibrary author key, e.g. OL23919A")
]
AuthorKeys = Annotated[
    # a key is never formula or control text (bookwarm.parsing.names.author_key): such a value is
    # refused by the schema, never echoed into a run's logs or artifacts
    list[Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]],
    Field(max_length=10_000, description="keys of the job's queued authors"),
]
ShortId = Annotated[str, Field(pattern=r"^[0-9a-zA-Z_-]{1,64}$", description="an internal id")]
Depth = Annotated[int, Field(ge=0, le=3, description="the co-author level: 0 is the library's authors")]
UtcDay = Annotated[
    str, Field(pattern=r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$", description="a UTC day, YYYY-MM-DD")
]


def checked_name(name: str) -> str:
    """``name`` if it is a PersonName, else InputError quoting only a short, neutralised prefix."""
    from pydantic import TypeAdapter, ValidationError

    from bookwarm.errors import InputError

    try:
        return TypeAdapter(PersonName).validate_python(name)
    except ValidationError:
        raise InputError(
            f"not a name: {neutral(name)} (one line, at most {MAX_NAME} characters, no formula or control text)"
        ) from None


def neutral(value: object, limit: int = 24) -> str:
    """A short prefix of ``value`` that can be shown anywhere: printable characters only, quoted."""
    text = "".join(c if c.isprintable() and c not in "=+@|" else "?" for c in str(value)[:limit])
    return repr(text + ("…" if len(str(value)) > limit else ""))
