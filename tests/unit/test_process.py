"""Server processes start with the environment they are given: the Prefect server's own
PREFECT_HOME, UI address and database URL depend on it. Their ports stay out of the kernel's
ephemeral range, and a probe that connected to itself is not a server ready."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from bookwarm.services.process import ephemeral_floor, free_port, reached_a_listener, spawn


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


def test_free_ports_stay_below_the_ephemeral_range_grpc_twins_included() -> None:
    low = ephemeral_floor()
    plain = [free_port() for _ in range(200)]
    grpc = [free_port(with_grpc=True) for _ in range(200)]
    assert max(plain) < low and max(p + 10000 for p in grpc) < low, (low, max(plain), max(grpc))
    assert len(set(plain)) > 100  # picked at random, not one port handed out again and again


def test_a_socket_connected_to_itself_is_not_a_listener_reached() -> None:
    """Linux lets a socket bound to port P connect to P with nobody listening (simultaneous open):
    the start-up probe's "connected" then meant nothing, and it held the port the server was binding
    (a Redis restart failed with "Address already in use" while `services up` said it was up)."""
    port = free_port()
    with socket.socket() as lonely:
        lonely.bind(("127.0.0.1", port))
        lonely.connect(("127.0.0.1", port))
        assert not reached_a_listener(lonely)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            assert reached_a_listener(client)
