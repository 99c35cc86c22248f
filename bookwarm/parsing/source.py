"""Read a library source (path, raw bytes or base64 text) into bytes, within the size limit."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from pathlib import Path

from bookwarm.errors import SourceError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


def read_source(source: str | bytes | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """Return ``(data, label)`` where label names the source in messages (never its content)."""
    if isinstance(source, bytes | bytearray):
        return _within_limit(bytes(source), "<bytes>", max_bytes), "<bytes>"
    if isinstance(source, Path) or _could_be_path(source):
        path = Path(source).expanduser()
        if _is_file(path):
            size = path.stat().st_size
            if size > max_bytes:
                raise SourceError(_too_large(str(path), size, max_bytes))
            try:
                return path.read_bytes(), str(path)
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        if _safe(path.is_dir):
            raise SourceError(f"{path} is a directory, not a library export file")
        if isinstance(source, Path) or not _looks_like_base64(source):
            raise SourceError(f"file not found: {path}")
    return _decode_base64(str(source), max_bytes), "<base64>"


def _is_file(path: Path) -> bool:
    return _safe(path.is_file)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except OSError:  # e.g. a long base64 string is not a valid file name
        return False


def _looks_like_base64(text: str) -> bool:
    compact = text.strip()
    return (
        len(compact) >= 16
        and bool(_BASE64.match(compact))
        and not compact.startswith(("/", "./", "../", "~"))
    )


def _could_be_path(text: str) -> bool:
    return len(text) < 4096 and "\n" not in text


def _decode_base64(text: str, max_bytes: int) -> bytes:
    compact = re.sub(r"\s+", "", text)
    if len(compact) * 3 // 4 > max_bytes:
        raise SourceError(_too_large("<base64>", len(compact) * 3 // 4, max_bytes))
    try:
        alphabet = compact.replace("-", "+").replace("_", "/")
        return base64.b64decode(alphabet + "=" * (-len(alphabet) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SourceError("source is neither an existing file nor valid base64 text") from None


def _within_limit(data: bytes, label: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise SourceError(_too_large(label, len(data), max_bytes))
    return data


def _too_large(label: str, size: int, max_bytes: int) -> str:
    return f"{label} is {_mb(size)}, over the {_mb(max_bytes)} limit (raise it with BOOKWARM_MAX_UPLOAD_MB)"


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size:,} bytes"
