"""Which library sources a run may read: the policy every flow applies before it reads a byte.

A deployment run takes ``source`` from whoever can reach the Prefect API, so it is hostile input.
It may name only:

- ``s3://BUCKET/PREFIX…``: an object under the configured bucket's uploads prefix
  (``bookwarm upload FILE`` puts files there);
- an absolute path under one of the directories the operator lists in ``BOOKWARM_SOURCE_ROOTS``
  (none by default), symlinks resolved before the check;
- base64 text (optionally ``base64:``-prefixed) within Prefect's 512 KB parameter limit.

The three are told apart by rule: ``s3://`` is an object, a leading ``/`` is a path, anything else
must be base64. A refusal is one line that quotes nothing of the source: a path or object name may
itself be what an attacker wants echoed into logs, events and the Prefect database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bookwarm.errors import SourceError
from bookwarm.parsing.source import read_source

if TYPE_CHECKING:
    from bookwarm.cache.objectstore import ObjectStore
    from bookwarm.settings import Settings

PREFECT_PARAMETER_LIMIT = 512 * 1024  # Prefect answers 422 to flow-run parameters over this
BASE64_PREFIX = "base64:"
_BASE64_TEXT = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_OBJECT_KEY = re.compile(r"^[A-Za-z0-9._\-/]+$")
UPLOAD_HINT = "upload the file with `bookwarm upload FILE` and pass the s3:// URI it prints"


@dataclass(frozen=True)
class SourcePolicy:
    bucket: str
    uploads_prefix: str = "uploads/"
    roots: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> SourcePolicy:
        roots = settings.ingest.source_roots
        listed = tuple(
            Path(r.strip()).expanduser() for r in re.split(rf"[,{os.pathsep}]", roots) if r.strip()
        )
        prefix = settings.ingest.uploads_prefix.strip("/") + "/"
        return cls(bucket=settings.s3.bucket, uploads_prefix=prefix, roots=listed)


@dataclass(frozen=True)
class AllowedSource:
    """A source the policy accepted. ``label`` is safe to show (never the content)."""

    kind: str  # "s3" | "path" | "base64"
    label: str
    object_key: str | None = None
    path: Path | None = None
    data: bytes | None = None


def check_source(source: str, policy: SourcePolicy) -> AllowedSource:
    """Accept or refuse ``source`` without reading anything it names. Raises SourceError."""
    if not isinstance(source, str) or not source.strip():
        raise SourceError("empty source: give s3://…, an absolute path or base64 text")
    text = source.strip()
    if text.startswith("s3://"):
        return _check_object(text, policy)
    if text.startswith("/"):
        return _check_path(text, policy)
    return _check_base64(text)


def _check_object(uri: str, policy: SourcePolicy) -> AllowedSource:
    refusal = SourceError(
        f"refused: s3:// sources must be objects under s3://{policy.bucket}/{policy.uploads_prefix} ({UPLOAD_HINT})"
    )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if bucket != policy.bucket or not key.startswith(policy.uploads_prefix) or len(key) > 1024:
        raise refusal
    parts = key.split("/")
    if not _OBJECT_KEY.match(key) or any(p in ("", ".", "..") for p in parts) or key == policy.uploads_prefix:
        raise refusal
    return AllowedSource("s3", f"s3://{bucket}/{key}", object_key=key)


def _check_path(text: str, policy: SourcePolicy) -> AllowedSource:
    resolved = check_local_path(text, policy)
    if not resolved.is_file():
        raise SourceError(f"{resolved.name}: not a file (a library export is a CSV/TSV file)")
    return AllowedSource("path", resolved.name, path=resolved)


def check_local_path(text: str, policy: SourcePolicy, hint: str = UPLOAD_HINT) -> Path:
    """The resolved path (a file or a directory) when it is under one of the operator's roots; a
    refusal that quotes nothing of it otherwise. Library exports and OpenLibrary dumps both pass here."""
    if not policy.roots:
        raise SourceError(
            "refused: local paths are not read by runs unless the operator lists their directory in "
            f"BOOKWARM_SOURCE_ROOTS (none set); {hint}"
        )
    refusal = SourceError(f"refused: the path is not under BOOKWARM_SOURCE_ROOTS; {hint}")
    if "\x00" in text or len(text) > 4096 or ".." in PurePosixPath(text).parts:
        raise refusal
    try:
        resolved = Path(text).resolve(strict=True)  # symlinks followed: a link out of a root is refused
    except (OSError, RuntimeError):
        resolved = None
    for root in policy.roots:
        try:
            real_root = root.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if resolved is not None and resolved.is_relative_to(real_root):
            return resolved
    if resolved is None and any(Path(text).is_relative_to(r) for r in policy.roots):
        raise SourceError("file not found under BOOKWARM_SOURCE_ROOTS")
    raise refusal


def _check_base64(text: str) -> AllowedSource:
    body = text.removeprefix(BASE64_PREFIX)
    if len(text) > PREFECT_PARAMETER_LIMIT:
        raise SourceError(
            f"base64 source is {len(text) // 1024:,} KB, over Prefect's 512 KB parameter limit; {UPLOAD_HINT}"
        )
    if not _BASE64_TEXT.match(body):
        raise SourceError(
            "refused: a source is s3://…, an absolute path (starting with /) or base64 text, and this is none "
            "of them (a relative path is not accepted)"
        )
    compact = re.sub(r"\s+", "", body).replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SourceError("source is not valid base64 text (a path must start with /)") from None
    if not data:
        raise SourceError("base64 source decodes to an empty file")
    return AllowedSource("base64", "<base64>", data=data)


def read_allowed(allowed: AllowedSource, store: ObjectStore | None, max_bytes: int) -> bytes:
    """The bytes of a source the policy accepted, within the size limit (blocking: run in a thread)."""
    if allowed.data is not None:
        data = allowed.data
    elif allowed.path is not None:
        data, _ = read_source(allowed.path, max_bytes=max_bytes)
    else:
        assert store is not None and allowed.object_key is not None
        fetched = store.get_bytes_sync(allowed.object_key, max_bytes=max_bytes)
        if fetched is None:
            raise SourceError(f"{allowed.label} does not exist")
        data = fetched
    if len(data) > max_bytes:
        raise SourceError(f"{allowed.label} is {len(data):,} bytes, over the {max_bytes:,} byte limit")
    return data


def upload_key(path: Path, data: bytes, uploads_prefix: str) -> str:
    """Where an uploaded file goes: content-addressed (re-uploads are idempotent), its name made safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip(".-")[:80] or "library.csv"
    digest = hashlib.sha256(data).hexdigest()[:20]
    return f"{uploads_prefix.strip('/')}/{digest}/{safe}"


def upload_file(path: Path, store: ObjectStore, uploads_prefix: str, max_bytes: int) -> str:
    """Put a local library file into the uploads prefix; return its s3:// URI (blocking)."""
    data, _ = read_source(path, max_bytes=max_bytes)
    return upload_bytes(path.name, data, store, uploads_prefix)


def upload_bytes(name: str, data: bytes, store: ObjectStore, uploads_prefix: str) -> str:
    """Put a library file's bytes (checked by the caller) into the uploads prefix; its s3:// URI (blocking)."""
    key = upload_key(Path(name or "library.csv"), data, uploads_prefix)
    store.put_bytes_sync(key, data, "text/csv")
    return f"s3://{store.bucket}/{key}"
