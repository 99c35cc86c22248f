"""Run the fake providers: in the foreground (`bookwarm providers serve`) or as a managed
background process (demo, tests, benchmarks) whose state lives beside the local services."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bookwarm.providers.fake.server import PROVIDERS, REAL_BURSTS, REAL_LIMITS, Faults
from bookwarm.services.local import default_home
from bookwarm.services.process import free_port, pid_alive, spawn, stop, wait_for_port

STATE_FILE = "fake-providers.json"
PLACEHOLDER_ISBNDB_KEY = "fake-providers-accept-any-key"  # not a secret: the fake server checks presence only


def provider_env(port: int) -> dict[str, str]:
    """The environment that points bookwarm at a fake provider server on ``port``."""
    root = f"http://127.0.0.1:{port}"
    return {
        "BOOKWARM_OPENLIBRARY_URL": root,
        "BOOKWARM_GOOGLE_BOOKS_URL": f"{root}/books/v1",
        "BOOKWARM_ISBNDB_URL": f"{root}/isbndb",
        "BOOKWARM_ISBNDB_API_KEY": PLACEHOLDER_ISBNDB_KEY,
        "BOOKWARM_GOOGLE_BOOKS_RPS": str(REAL_LIMITS["google_books"]),
    }


def faults_from_options(
    *, latency_ms: float, error_rate: float, rate_429: float, real_limits: bool
) -> dict[str, Faults]:
    return {
        p: Faults(
            latency_ms=latency_ms,
            error_rate=error_rate,
            rate_429=rate_429,
            rate_per_s=REAL_LIMITS[p] if real_limits else 0.0,
            burst=REAL_BURSTS[p] if real_limits else 0,
        )
        for p in PROVIDERS
    }


def serve_forever(catalog_path: Path, port: int, faults: dict[str, Faults]) -> None:
    import uvicorn

    from bookwarm.providers.fake.catalog import load_catalog
    from bookwarm.providers.fake.server import build_app

    app = build_app(load_catalog(catalog_path), faults)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@dataclass
class FakeProvidersState:
    pid: int
    port: int
    catalog: str


class FakeProviders:
    """A background fake-provider server, started and stopped like the local services."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or default_home()).resolve()

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    def running(self) -> FakeProvidersState | None:
        try:
            state = FakeProvidersState(**json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if pid_alive(state.pid) else None

    def up(self, catalog: Path, *, latency_ms: float = 0.0, real_limits: bool = True) -> FakeProvidersState:
        current = self.running()
        if current and current.catalog == str(catalog.resolve()):
            return current
        self.down()
        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "bookwarm",
            "providers",
            "serve",
            "--catalog",
            str(catalog),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ]
        if not real_limits:
            argv.append("--no-limits")
        log = self.home / "fake-providers.log"
        proc = spawn(argv, log)
        try:
            wait_for_port(port, proc.pid, "fake providers", log, timeout_s=30)
        except BaseException:
            stop(proc.pid, 2.0)
            raise
        state = FakeProvidersState(proc.pid, port, str(catalog.resolve()))
        self.state_path.write_text(json.dumps(asdict(state)))
        return state

    def down(self) -> bool:
        state = self.running()
        self.state_path.unlink(missing_ok=True)
        if state is None:
            return False
        stop(state.pid, 2.0)
        return True


def set_faults(port: int, faults: dict[str, Faults]) -> None:
    httpx.post(
        f"http://127.0.0.1:{port}/_faults", json={p: asdict(f) for p, f in faults.items()}, timeout=10
    ).raise_for_status()


def release_holds(port: int) -> None:
    """Ends the answers held by a ``hold_when_asked`` fault, and those still to come."""
    httpx.post(f"http://127.0.0.1:{port}/_release", timeout=10).raise_for_status()


def stats(port: int) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=10).json()
    return counts
