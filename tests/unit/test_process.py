"""Server processes start with the environment they are given: the Prefect server's own
PREFECT_HOME, UI address and database URL depend on it. No sockets: the child only prints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bookwarm.services.process import spawn


def _child_output(tmp_path: Path, env: dict[str, str] | None) -> str:
    log = tmp_path / "child.log"
    code = "import os; print(os.environ.get('BOOKWARM_SPAWN_PROBE', '<unset>'))"
    proc = spawn([sys.executable, "-c", code], log, env=env)
    assert proc.wait(timeout=30) == 0
    return log.read_text().strip()


def test_spawn_passes_the_given_environment(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKWARM_SPAWN_PROBE": "given"}
    assert _child_output(tmp_path, env) == "given"


def test_spawn_without_env_inherits_ours(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BOOKWARM_SPAWN_PROBE", "inherited")
    assert _child_output(tmp_path, None) == "inherited"
