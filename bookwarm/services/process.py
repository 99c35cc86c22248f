"""Start and stop one server process cleanly: free ports, readiness by TCP, SIGTERM then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from bookwarm.errors import ServiceError

GRPC_OFFSET = 10000
FIRST_PORT = 10000  # above the well-known and most registered ports


def port_is_free(port: int, *, reusable: bool = False) -> bool:
    """Nobody may bind the port. ``reusable``: nobody listens on it, connections of a server that
    died (TIME_WAIT) allowed, as servers bind with SO_REUSEADDR (a restart on the same port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reusable:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(*, with_grpc: bool = False, taken: set[int] | None = None) -> int:
    """A free loopback port below the kernel's ephemeral range; with ``with_grpc`` also port + 10000
    (SeaweedFS's gRPC), both below it.

    Not from the ephemeral range (32768-60999 here), which the kernel hands to every outgoing
    connection: there a client can hold a server's port while it restarts ("Address already in
    use"), and a readiness probe can connect to itself (see `wait_for_port`): both were seen.
    """
    taken = taken if taken is not None else set()
    rnd = random.SystemRandom()
    first, top = FIRST_PORT, ephemeral_floor() - (GRPC_OFFSET if with_grpc else 0)
    for _ in range(500):
        port = rnd.randrange(first, top)
        needed = (port, port + GRPC_OFFSET) if with_grpc else (port,)
        if all(p not in taken and port_is_free(p) for p in needed):
            taken.update(needed)
            return port
    raise ServiceError(f"no free loopback port found in {first}-{top - 1}")


def ephemeral_floor() -> int:
    """The lowest port the kernel gives outgoing connections (Linux's default where it cannot be
    read, or where it leaves too few ports below it to pick from)."""
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        if low - GRPC_OFFSET > FIRST_PORT + 1000:
            return low
    return 32768


def spawn(
    argv: list[str],
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, output to ``log_path``, never inheriting our stdin.

    ``env`` replaces the environment when given (the Prefect server needs its own ``PREFECT_HOME``,
    UI address and database URL); otherwise the server inherits ours.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                # its own group too: a child keeping root's group would get a folder's group bits
                user=user,
                group=user,
                extra_groups=[] if user else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {Path(argv[0]).name}: {exc.strerror}") from None


def wait_for_port(port: int, pid: int, name: str, log_path: Path, timeout_s: float = 30.0) -> None:
    """Until ``pid`` accepts connections on ``port``. A connection to itself does not count: a probe
    of a port in the ephemeral range can be given that very port as its own and "connect" with
    nobody listening (TCP simultaneous open), which also keeps the server from binding it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise ServiceError(f"{name} exited during start-up; see {log_path}: {_tail(log_path)}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe,
        ):
            if reached_a_listener(probe):
                return
        time.sleep(0.1)
    raise ServiceError(f"{name} did not open port {port} within {timeout_s:.0f}s; see {log_path}")


def reached_a_listener(sock: socket.socket) -> bool:
    """Whether a connected socket reached another socket (not itself, by simultaneous open)."""
    return bool(sock.getsockname() != sock.getpeername())


def pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children so they do not linger as zombies
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL it; return once it is gone."""
    if not pid_alive(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        raise ServiceError(f"process {pid} survived SIGKILL")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
