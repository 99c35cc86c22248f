"""The read API as a background server of the local services (`bookwarm demo` starts it; `bookwarm
services down` stops it), on a free loopback port, recorded in ``<home>/api.json``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bookwarm.services.local import default_home
from bookwarm.services.process import free_port, pid_alive, spawn, stop, wait_for_port

STATE_FILE = "api.json"


@dataclass
class LocalApiState:
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalApi:
    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or default_home()).resolve()

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    def running(self) -> LocalApiState | None:
        try:
            state = LocalApiState(**json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if pid_alive(state.pid) else None

    def up(self, env: dict[str, str] | None = None) -> LocalApiState:
        """The running one, or a new one with this process's environment (its services, providers)."""
        current = self.running()
        if current:
            return current
        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.home / "logs" / "api.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = spawn(
            [sys.executable, "-m", "bookwarm", "api", "--port", str(port)], log, env=env or dict(os.environ)
        )
        try:
            wait_for_port(port, proc.pid, "the read API", log, timeout_s=60)
        except BaseException:
            stop(proc.pid, 2.0)
            raise
        state = LocalApiState(proc.pid, port)
        self.state_path.write_text(json.dumps(asdict(state)))
        return state

    def down(self) -> bool:
        state = self.running()
        self.state_path.unlink(missing_ok=True)
        if state is None:
            return False
        stop(state.pid, 5.0)
        return True
