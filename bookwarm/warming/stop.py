"""Stopping a job cleanly: when it is cancelled, or when the Prefect API is lost for too long.

A job watches its own flow run through a ``probe`` (given by the flow, so this module stays free of
Prefect). Cancelling, or an API unreachable beyond the grace, sets the job's ``StopSignal``: its
shards stop starting authors, authors in flight finish or release their claims, and a failure
while the API is in trouble is not a dead letter (the author is simply not started). The job
record then says ``cancelled`` or ``interrupted`` with what is left, and `bookwarm resume` ends it.

The signal is per process and per job id: every shard subflow of a job in this process sees it.
A shard run by a worker in another process watches its own flow run the same way (the job cancels
its shard runs through Prefect when it is cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signals
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

from bookwarm.deadline import end_task, within

# What a probe reports: the flow run goes on, or someone asked to cancel it. An unreachable API
# raises (any exception).
RUNNING = "running"
CANCELLING = "cancelling"
Probe = Callable[[], Awaitable[str]]


class StopSignal:
    def __init__(self) -> None:
        self.status: str | None = None  # "cancelled" or "interrupted" once set
        self.why = ""
        self.trouble_since: float | None = None  # the API has failed since then (monotonic)
        self.watched = False  # a Watchdog in this process sets it (the job's, or a remote shard's own)
        self._bodies = 0

    @property
    def is_set(self) -> bool:
        return self.status is not None

    @property
    def api_in_trouble(self) -> bool:
        """Failures now may be the orchestrator's, not the author's: never a dead letter."""
        return self.trouble_since is not None or self.status == "interrupted"

    def set(self, status: str, why: str) -> None:
        if self.status is None:
            self.status, self.why = status, why

    @contextlib.asynccontextmanager
    async def shard_body(self) -> AsyncIterator[None]:
        """Marks a shard's own work (its authors), as apart from its subflow's bookkeeping with the
        orchestrator, which cannot end while the API is gone."""
        self._bodies += 1
        try:
            yield
        finally:
            self._bodies -= 1

    async def abandoned(self, poll_s: float = 0.1) -> None:
        """Returns once the job is interrupted and no shard has an author in flight: what is left
        of its subflows is waiting on the lost API, and the job need not wait with them."""
        while not (self.status == "interrupted" and self._bodies == 0):
            await asyncio.sleep(poll_s)


_signals: dict[str, StopSignal] = {}


def stop_signal(job_id: str) -> StopSignal:
    """The job's signal in this process (created on first use)."""
    return _signals.setdefault(job_id, StopSignal())


def forget(job_id: str) -> None:
    _signals.pop(job_id, None)


StoppedListener = Callable[[str, str, dict], None]
_stopped_listeners: list[StoppedListener] = []


def on_stopped(listener: StoppedListener) -> Callable[[], None]:
    """The CLI's hook: called with (job_id, status, summary) once a stopped job's record is written,
    so it can report and exit without waiting for an orchestrator that is gone."""
    _stopped_listeners.append(listener)
    return lambda: _stopped_listeners.remove(listener)


def notify_stopped(job_id: str, status: str, summary: dict) -> None:
    for listener in list(_stopped_listeners):
        listener(job_id, status, summary)


_jobs_here: list[str] = []  # job ids this process ran, first to last


def running_here(job_id: str) -> None:
    """A job's warming began in this process: whoever ends the process early (a SIGTERM caught by
    the CLI) can name it, and the resume command that finishes it."""
    _jobs_here.append(job_id)


def jobs_here() -> list[str]:
    return list(_jobs_here)


def stop_every_job_here(status: str, why: str) -> None:
    """Set the signal of every job this process runs (a SIGTERM to the process stops them all)."""
    for job_signal in list(_signals.values()):
        job_signal.set(status, why)


SIGTERM_WHY = "stopped by SIGTERM"
CANCELLED_WHY = "cancelled from the Prefect UI or API"
WORKER_DIED_WHY = "its worker died"
SIGTERM_GRACE_S = 10.0  # after a SIGTERM, authors in flight get this long before they are cancelled


class _SigtermRelay:
    """One per process: the wakeup fd is the process's, and jobs run together in one process (two
    flows gathered, the CLI's runner around a job's). The first user installs it, the last one out
    restores what was there; each user's ``on_sigterm`` is called while it is in."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.previous = -1
        self.callbacks: list[Callable[[], None]] = []
        self.sockets: tuple[socket.socket, socket.socket] | None = None

    def enter(self, callback: Callable[[], None]) -> bool:
        """False where no relay can be (off the main thread, or another loop holds it)."""
        loop = asyncio.get_running_loop()
        if self.sockets is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            try:
                self.previous = signals.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            except ValueError:  # not the main thread
                reader.close()
                writer.close()
                return False
            self.sockets, self.loop = (reader, writer), loop
            loop.add_reader(reader.fileno(), self._woken)
        elif loop is not self.loop:
            return False
        self.callbacks.append(callback)
        return True

    def leave(self, callback: Callable[[], None]) -> None:
        self.callbacks.remove(callback)
        if self.callbacks or self.sockets is None or self.loop is None:
            return
        reader, writer = self.sockets
        self.loop.remove_reader(reader.fileno())
        signals.set_wakeup_fd(self.previous)
        reader.close()
        writer.close()
        self.sockets = self.loop = None

    def _woken(self) -> None:
        assert self.sockets is not None
        try:
            data = self.sockets[0].recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        if self.previous != -1:  # whoever listened before (an asyncio signal handler) still hears it
            with contextlib.suppress(OSError):
                os.write(self.previous, data)
        if signals.SIGTERM in data:
            stop_every_job_here("interrupted", SIGTERM_WHY)
            for callback in list(self.callbacks):
                callback()


_relay = _SigtermRelay()


@contextlib.asynccontextmanager
async def sigterm_stops_jobs(on_sigterm: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """While this block runs on the main thread's loop, a SIGTERM to the process also stops every
    job here as ``interrupted`` ("stopped by SIGTERM"), whatever Prefect's handler does with it.

    Why: Prefect's SIGTERM bridge raises ``TerminationSignal`` in whatever code runs on the main
    thread when the signal lands. In the job's flow that is the right place; in one of the job's
    own asyncio tasks (its watchdog, heartbeat, an enrichment lane) the exception is stored in
    that task and never seen, and the job ran on to its end. The C-level signal handler also writes
    the signal's number to the wakeup fd, whichever Python handler is installed (Prefect's nested
    engines reinstall theirs), so reading that fd on the loop is a second, reliable path that
    touches no handler. Off the main thread (no wakeup fd there) this does nothing. Blocks may
    nest and overlap (jobs run together): one relay serves them all.

    ``on_sigterm`` is called on the loop as well: the job uses it to bound how long its authors in
    flight may take (a Prefect runner or Kubernetes kills the process 30 s after its SIGTERM)."""

    def callback() -> None:
        if on_sigterm is not None:
            on_sigterm()

    if not _relay.enter(callback):
        yield
        return
    try:
        yield
    finally:
        _relay.leave(callback)


class Watchdog:
    """Probes the job's flow run every ``interval_s``: cancelling stops the job at once; failures
    for longer than ``grace_s`` stop it as interrupted."""

    def __init__(self, job_id: str, probe: Probe, *, grace_s: float, interval_s: float | None = None) -> None:
        self.signal = stop_signal(job_id)
        self.probe = probe
        self.grace_s = grace_s
        self.interval_s = interval_s or max(0.2, min(2.0, grace_s / 5))
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watchdog:
        self.signal.watched = True
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            await end_task(self._task)

    async def _watch(self) -> None:
        signal = self.signal
        while not signal.is_set:
            await asyncio.sleep(self.interval_s)
            try:
                state = await within(self.probe(), max(1.0, self.interval_s * 2))
            except Exception as exc:  # unreachable, timing out, 5xx: the orchestrator is in trouble
                now = time.monotonic()
                signal.trouble_since = signal.trouble_since or now
                if now - signal.trouble_since >= self.grace_s:
                    signal.set(
                        "interrupted",
                        f"the Prefect API was unreachable for {self.grace_s:g} s ({type(exc).__name__})",
                    )
                continue
            signal.trouble_since = None
            if state == CANCELLING:
                signal.set("cancelled", CANCELLED_WHY)
