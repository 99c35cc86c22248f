"""`bookwarm services up|down|status`: a real Redis and a real S3-compatible store on loopback.

State (pids, ports, generated credentials) lives in ``<home>/services.json`` so that any later
command, and ``down``, find the same servers. The tests use this same class with a temp home.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from bookwarm.errors import ServiceError
from bookwarm.services import binaries
from bookwarm.services.postgres import postgres_url, start_postgres
from bookwarm.services.process import (
    free_port,
    pid_alive,
    port_is_free,
    spawn,
    stop,
    wait_for_port,
)
from bookwarm.services.retention import prefect_retention_env
from bookwarm.settings import resolve

STATE_FILE = "services.json"
T = TypeVar("T")


def default_home() -> Path:
    """Project-local folder for service data: $BOOKWARM_HOME, else ./.bookwarm."""
    return Path(os.environ.get("BOOKWARM_HOME") or ".bookwarm").resolve()


# The server writes every task-run state event; by default one transaction per event
# (task_run_recorder batch 1) and per 20 events (event_persister). Batching them is the largest
# CPU saving on a small machine: events still land within the 5 s flush interval. The environment
# overrides each value.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
}


@dataclass
class ServicesState:
    redis_pid: int
    redis_port: int
    s3_pid: int
    s3_port: int
    access_key: str
    secret_key: str
    bucket: str = "bookwarm"
    prefect_pid: int = 0
    prefect_port: int = 0
    postgres_pid: int = 0  # the Prefect server's database, with --postgres (else SQLite)
    postgres_port: int = 0
    s3_inner_ports: tuple[int, ...] = ()  # SeaweedFS master, volume, filer: reused on a restart

    def env(self) -> dict[str, str]:
        """The environment that points bookwarm (and Prefect, when started) at these servers."""
        env = {
            "BOOKWARM_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "BOOKWARM_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}",
            "BOOKWARM_S3_ACCESS_KEY": self.access_key,
            "BOOKWARM_S3_SECRET_KEY": self.secret_key,
            "BOOKWARM_S3_BUCKET": self.bucket,
        }
        if self.prefect_port:
            env["PREFECT_API_URL"] = f"http://127.0.0.1:{self.prefect_port}/api"
        return env

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.prefect_pid, self.postgres_pid, self.s3_pid, self.redis_pid) if p]


class LocalServices:
    def __init__(self, home: Path | None = None, *, stop_grace_s: float = 5.0) -> None:
        self.home = (home or default_home()).resolve()
        self.stop_grace_s = stop_grace_s

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    def state(self) -> ServicesState | None:
        try:
            data = json.loads(self.state_path.read_text())
            data["s3_inner_ports"] = tuple(data.get("s3_inner_ports") or ())
            return ServicesState(**data)
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> ServicesState | None:
        """The recorded servers, if all of them are still alive."""
        state = self.state()
        if state and all(pid_alive(pid) for pid in state.pids):
            return state
        return None

    def up(self, *, with_prefect: bool = False, postgres: bool = False) -> ServicesState:
        """Start the servers (or return the running ones); on any failure nothing is left running.

        ``with_prefect`` adds a local Prefect server (SQLite, UI included): ~13 s to start here, once,
        against 14-22 s of temporary API in *every* process that runs a flow without one.
        ``postgres`` puts that server's database in a local PostgreSQL (many workers, many shards).
        """
        with_prefect = with_prefect or postgres
        current = self.running()
        if current and postgres and current.prefect_pid and not current.postgres_port:
            raise ServiceError(
                "the local Prefect server is running on SQLite; `bookwarm services down`, then "
                "`bookwarm services up --postgres`"
            )
        if current and (current.prefect_pid or not with_prefect):
            return current
        if current and with_prefect:
            return self._add_prefect(current, postgres=postgres)
        recorded = self.state()
        if recorded is not None:
            return self._revive(recorded, with_prefect=with_prefect, postgres=postgres)
        self.home.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        redis_port = free_port(taken=taken)
        started: list[int] = []
        try:
            redis_pid = self._start_redis(redis_port)
            started.append(redis_pid)
            access_key, secret_key = "bw" + secrets.token_hex(8), secrets.token_urlsafe(24)
            s3_port, s3_pid = self._start_s3(access_key, secret_key, taken)
            started.append(s3_pid)
        except BaseException:
            for pid in started:
                stop(pid, self.stop_grace_s)
            raise
        state = ServicesState(redis_pid, redis_port, s3_pid, s3_port, access_key, secret_key)
        state.s3_inner_ports = self._s3_ports_used
        self._save(state)
        if not with_prefect:
            return state
        try:
            return self._add_prefect(state, postgres=postgres)
        except BaseException:  # PostgreSQL or the Prefect server failed: nothing is left running
            self.down()
            raise

    def _revive(self, state: ServicesState, *, with_prefect: bool, postgres: bool = False) -> ServicesState:
        """Start only the recorded servers that died, on their ports and with their credentials, so
        every shell and worker pointed at them keeps working; their data (Redis's append-only file,
        the S3 volume, Prefect's database) is where they left it."""
        if not pid_alive(state.redis_pid):
            state.redis_pid = self._start_redis(state.redis_port)
        if not pid_alive(state.s3_pid):
            recorded = (*state.s3_inner_ports, state.s3_port)
            try:
                state.s3_port, state.s3_pid = self._start_s3(
                    state.access_key, state.secret_key, set(), ports=recorded
                )
            except ServiceError:  # a recorded port went to someone else: new ports, same credentials
                state.s3_port, state.s3_pid = self._start_s3(state.access_key, state.secret_key, set())
            state.s3_inner_ports = self._s3_ports_used
        if state.prefect_pid and not pid_alive(state.prefect_pid):
            state.prefect_pid = 0
        if state.postgres_pid and not pid_alive(state.postgres_pid):
            state.postgres_pid = 0
        self._save(state)
        if with_prefect and not state.prefect_pid:
            postgres = postgres or bool(state.postgres_port)
            return self._add_prefect(state, port=state.prefect_port or None, postgres=postgres)
        if state.prefect_pid and state.postgres_port and not state.postgres_pid:
            self._revive_postgres_under(state)
        return state

    def _revive_postgres_under(self, state: ServicesState) -> None:
        """PostgreSQL died under a live Prefect server (which then answers 500): start it again on
        its port with its data; a server that does not find its database again within
        ``PREFECT_READY_S`` (or must follow it to another port) is restarted onto it, on its port."""
        port = state.postgres_port if port_is_free(state.postgres_port, reusable=True) else free_port()
        state.postgres_pid, _ = start_postgres(self.home / "postgres", self.home / "postgres.log", port)
        moved, state.postgres_port = port != state.postgres_port, port
        self._save(state)
        if not moved and _prefect_ready(state.prefect_port, PREFECT_READY_S):
            return
        stop(state.prefect_pid, self.stop_grace_s)
        state.prefect_pid = 0
        self._save(state)
        self._add_prefect(state, port=state.prefect_port, postgres=True)

    def _save(self, state: ServicesState) -> None:
        self.state_path.write_text(json.dumps(asdict(state), indent=2))
        self.state_path.chmod(0o600)

    def _add_prefect(
        self, state: ServicesState, port: int | None = None, postgres: bool = False
    ) -> ServicesState:
        database_url = None
        if postgres:
            if not state.postgres_pid:
                pg_port = (
                    state.postgres_port
                    if state.postgres_port and port_is_free(state.postgres_port)
                    else free_port()
                )
                state.postgres_pid, _ = start_postgres(
                    self.home / "postgres", self.home / "postgres.log", pg_port
                )
                state.postgres_port = pg_port
                self._save(state)
            database_url = postgres_url(state.postgres_port)
        state.prefect_pid, state.prefect_port = start_prefect_server(
            self.home / "prefect",
            self.home / "prefect.log",
            stop_grace_s=self.stop_grace_s,
            port=port,
            database_url=database_url,
        )
        self._save(state)
        return state

    def down(self) -> bool:
        """Stop whatever the state file records; True when something was stopped."""
        state = self.state()
        if state is None:
            return False
        for pid in state.pids:
            stop(pid, self.stop_grace_s)
        self.state_path.unlink(missing_ok=True)
        return True

    def _start_redis(self, port: int) -> int:
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        log = self.home / "redis.log"
        argv = [
            binaries.redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            # Job records, dead letters, "processed" markers, pending enrichment and the daily quota
            # counters must survive a restart (a quota that reset on restart was an original-system
            # bug): an append-only file, synced every second.
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(data),
            "--protected-mode",
            "yes",
        ]
        proc = spawn(argv, log)
        wait_for_port(port, proc.pid, "redis-server", log, timeout_s=20)
        return proc.pid

    def _start_s3(
        self, access_key: str, secret_key: str, taken: set[int], ports: tuple[int, ...] = ()
    ) -> tuple[int, int]:
        """(S3 port, pid). ``ports`` (master, volume, filer, S3) are reused when all still free.

        A port found free can be taken before the server binds it (another server starting, or a
        client's ephemeral port: Linux hands out 32768-60999): new ports are picked, up to 3 times."""
        return _on_free_ports(
            lambda: self._start_s3_once(access_key, secret_key, taken, ports),
            self.home / "s3.log",
            bool(ports),
        )

    def _start_s3_once(
        self, access_key: str, secret_key: str, taken: set[int], ports: tuple[int, ...]
    ) -> tuple[int, int]:
        data = self.home / "s3"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.home / "s3-identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "bookwarm",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        identities.chmod(0o600)
        if len(ports) == 4:  # the server binds with SO_REUSEADDR: its dead predecessor's ports are fine
            master, volume, filer, s3 = ports
        else:
            master, volume, filer = (free_port(with_grpc=True, taken=taken) for _ in range(3))
            s3 = free_port(with_grpc=True, taken=taken)
        self._s3_ports_used = (master, volume, filer)
        log = self.home / "s3.log"
        argv = [
            binaries.weed(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            "-filer",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={identities}",
            "-master.volumeSizeLimitMB=64",
            # One master, so no election to lose: restarted on its old state it waited out the 10 s
            # default (17-20 s measured) before it led again and S3 answered; 1 s: 3-5 s.
            "-master.electionTimeout=1s",
            "-volume.max=0",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # off: fixed ports collide
        ]
        proc = spawn(argv, log, cwd=self.home)
        try:
            wait_for_port(s3, proc.pid, "SeaweedFS", log, timeout_s=60)
            _wait_s3_ready(s3, proc.pid, log)
            _wait_volumes_loaded(master, len(list(data.rglob("*.dat"))), proc.pid, log)
        except BaseException:
            stop(proc.pid, self.stop_grace_s)
            raise
        return s3, proc.pid


def _on_free_ports(start: Callable[[], T], log: Path, ports_given: bool, attempts: int = 3) -> T:
    """``start()`` a server on ports found free, again (new ports) when its log says one was taken
    before it could bind it: up to ``attempts`` times. Ports asked for are never replaced."""
    for attempt in range(attempts):
        try:
            log_start = log.stat().st_size
        except OSError:
            log_start = 0
        try:
            return start()
        except ServiceError:
            if ports_given or attempt == attempts - 1 or not _port_was_taken(log, log_start):
                raise
    raise AssertionError("unreachable")


def _port_was_taken(log: Path, since: int) -> bool:
    """Whether a server that failed to start said, in its log after ``since``, its port was taken."""
    try:
        with log.open("rb") as f:
            f.seek(since)
            return b"address already in use" in f.read().lower()
    except OSError:
        return False


def start_prefect_server(
    home: Path,
    log: Path,
    *,
    stop_grace_s: float,
    database_url: str | None = None,
    timeout_s: float = 120,
    port: int | None = None,
) -> tuple[int, int]:
    """`prefect server start` on a free loopback port: (pid, port).

    Its own PREFECT_HOME (database included, unless ``database_url`` names another), a UI that talks
    to its own port, telemetry off, and PREFECT_SERVER_TUNING and the clean-up of old runs and events
    (``prefect_retention_env``) unless the environment says otherwise.
    A free port taken before the server binds it (see ``_start_s3``) is replaced, up to 3 times;
    a port asked for is never replaced.
    """
    return _on_free_ports(
        lambda: _start_prefect_server_once(home, log, stop_grace_s, database_url, timeout_s, port),
        log,
        port is not None,
    )


def prefect_server_env(home: Path, database_url: str | None) -> dict[str, str]:
    """The environment of the local Prefect server's processes (the server, and `bookwarm services
    clean`, which runs its clean-up now): its home and database, quiet, and its tuning."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    for name, value in {**PREFECT_SERVER_TUNING, **prefect_retention_env(resolve())}.items():
        env.setdefault(name, value)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env.pop("PREFECT_API_URL", None)
    return env


def _start_prefect_server_once(
    home: Path, log: Path, stop_grace_s: float, database_url: str | None, timeout_s: float, port: int | None
) -> tuple[int, int]:
    port = port if port is not None and port_is_free(port, reusable=True) else free_port()
    env = prefect_server_env(home, database_url)
    env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(argv, log, env=env)
    try:
        wait_http(port, "/api/health", proc.pid, "Prefect server", log, timeout_s=timeout_s)
    except BaseException:
        stop(proc.pid, stop_grace_s)
        raise
    return proc.pid, port


def _wait_s3_ready(port: int, pid: int, log: Path, timeout_s: float = 30.0) -> None:
    """The S3 port opens before the filer is ready; wait for a real HTTP answer."""
    wait_http(port, "/", pid, "SeaweedFS S3", log, timeout_s)


def _wait_volumes_loaded(
    master_port: int, volumes: int, pid: int, log: Path, timeout_s: float = 30.0
) -> None:
    """A restarted store answers S3 before its volume server has re-registered its volumes with the
    master, and reads of existing objects fail until then: wait until the master counts them all."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", master_port, timeout=2)
            conn.request("GET", "/dir/status")
            topology = json.loads(conn.getresponse().read()).get("Topology") or {}
            conn.close()
            nodes = [
                n
                for dc in topology.get("DataCenters") or []
                for r in dc.get("Racks") or []
                for n in r.get("DataNodes") or []
            ]
            if nodes and sum(int(n.get("Volumes") or 0) for n in nodes) >= volumes:
                return
        except (OSError, ValueError):
            pass
        if not pid_alive(pid) or time.monotonic() > deadline:
            raise ServiceError(
                f"SeaweedFS did not load its {volumes} volumes within {timeout_s:.0f}s; see {log}"
            )
        time.sleep(0.2)


PREFECT_READY_S = 20.0  # a Prefect server's pool reconnecting to a restarted PostgreSQL


def _prefect_ready(port: int, timeout_s: float) -> bool:
    """Whether the Prefect server on ``port`` reaches its database (``/api/ready``) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/ready")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def wait_http(port: int, path: str, pid: int, name: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise ServiceError(f"{name} exited during start-up; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"{name} on port {port} not ready within {timeout_s:.0f}s; see {log}")
