"""Where a level's shards run: in the job's process (the embedded default), or as runs of the
warm-authors deployment on a work pool's workers (``BOOKWARM_WORK_POOL``), so that the shards of one
job spread over every machine with a worker.

Either way a shard gets its authors' keys and hands its co-authors back through Redis, and what it
did not count is run again in the level's next round (bookwarm.warming.jobs). A shard run that ends
Crashed, Failed or Cancelled (a worker killed, its machine lost) is therefore not lost: its authors
are submitted again once the dead worker's claims have lapsed, and those it finished are skipped.

Nothing waits for good on a run no process will end. A run that started and went silent is marked
Crashed by Prefect's automation (tasks.prefect_api). A run a worker took (Pending) but never
started is marked Crashed by the job after ``BOOKWARM_SHARD_START_TIMEOUT_S``. A run still waiting
for a worker then, while the pool has no live worker, stops the job as interrupted with one line
saying so (its waiting runs Cancelled): `bookwarm resume` goes on once workers are back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import State, StateType
from prefect.logging import get_run_logger
from prefect.states import Cancelled, Crashed

from bookwarm.warming.context import WarmContext
from bookwarm.warming.stop import StopSignal, stop_signal
from flows.warm_authors import warm_authors
from tasks.prefect_api import (
    cancel_flow_runs,
    current_states,
    end_flow_runs,
    ensure_crash_automation,
    live_workers,
    submit_shard,
)


class ShardRunner:
    """Runs the shards of one pass over a job (its first run, a resume, a redrive)."""

    def __init__(
        self,
        ctx: WarmContext,
        job_id: str,
        pass_id: str,
        *,
        concurrency: int,
        progress_artifact_id: str | None,
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.pass_id = pass_id
        self.concurrency = concurrency
        self.progress_artifact_id = progress_artifact_id
        self.orchestration = ctx.settings.orchestration
        self.on_pool = bool(self.orchestration.work_pool)
        self._watcher: ShardRunWatcher | None = None

    def parameters(
        self, authors: list[dict[str, Any]], depth: int, index: int, forced: bool
    ) -> dict[str, Any]:
        return {
            "author_keys": [a["key"] for a in authors],
            "depth": depth,
            "job_id": self.job_id,
            "pass_id": self.pass_id,
            "force": forced,
            "concurrency": self.concurrency,
            "shard": index,
            "progress_artifact_id": self.progress_artifact_id,
        }

    async def run_here(self, authors: list[dict[str, Any]], depth: int, index: int, forced: bool) -> None:
        """The shard as a subflow in this process."""
        await warm_authors(**self.parameters(authors, depth, index, forced))

    async def submit(
        self, authors: list[dict[str, Any]], depth: int, round_no: int, index: int, forced: bool
    ) -> UUID:
        """The shard as a deployment run for the pool's workers; idempotent per job, pass, depth,
        round and shard (a round runs again only what the previous one left uncounted)."""
        if self._watcher is None:
            self._watcher = ShardRunWatcher(
                self.job_id,
                self.orchestration.work_pool,
                poll_s=self.orchestration.shard_poll_s,
                start_timeout_s=self.orchestration.shard_start_timeout_s,
                grace_s=self.ctx.settings.redis.prefect_grace_s,
                cancel_wait_s=self.orchestration.cancel_wait_s,
            )
            try:
                await ensure_crash_automation(self.orchestration.shard_lost_after_s)
            except Exception as exc:  # e.g. a server without automations: the job still runs
                get_run_logger().warning(
                    "could not create the automation that marks lost shard runs Crashed (%s: %.200s): a shard "
                    "whose worker dies will wait until someone marks its run Crashed",
                    type(exc).__name__,
                    exc,
                )
        return await submit_shard(
            self.orchestration.shard_deployment,
            self.parameters(authors, depth, index, forced),
            idempotency_key=f"{self.job_id}/{self.pass_id}/d{depth}/r{round_no}/s{index}",
            flow_run_name=f"warm-authors/d{depth}/shard-{index}" + (f"/round-{round_no}" if round_no else ""),
        )

    async def wait(self, run_id: UUID, authors: list[dict[str, Any]], depth: int, index: int) -> bool:
        """Until the run ends; True when it completed. One that did not is logged, and the job waits
        for the claims its worker held to lapse, so the next round claims (and batches) those
        authors again."""
        assert self._watcher is not None
        state = await self._watcher.final_state(run_id)
        if state.is_completed():
            return True
        if stop_signal(self.job_id).is_set:
            return False  # a stopping job counts what is left in its record; `bookwarm resume` runs it
        await self.ctx.jobs.incr(self.job_id, shard_retries=1)
        left = await self.ctx.jobs.uncounted(self.job_id, [a["key"] for a in authors])
        get_run_logger().warning(
            "shard %d at depth %d ended %s (%s): %d of its %d authors not done run again",
            index,
            depth,
            state.name,
            (state.message or "")[:200],
            len(left),
            len(authors),
        )
        await self._claims_lapsed(sorted(left))
        return False

    async def _claims_lapsed(self, author_keys: list[str]) -> None:
        deadline = time.monotonic() + self.ctx.claim_ttl_s + 5
        while time.monotonic() < deadline and await self.ctx.hot.claimed(author_keys):
            await asyncio.sleep(1.0)


class ShardRunWatcher:
    """Waits for many shard runs with one API call per poll, whatever their number (no connection
    per run). When the job is cancelled, it cancels the runs still going through Prefect, whose
    workers stop them. A run that stays Pending, or waits for a worker while none of the pool is
    alive, past ``start_timeout_s`` is ended here (see the module's docstring)."""

    def __init__(
        self,
        job_id: str,
        pool: str,
        *,
        poll_s: float,
        start_timeout_s: float,
        grace_s: float,
        cancel_wait_s: float = 60.0,
    ) -> None:
        self.job_id = job_id
        self.pool = pool
        self.signal: StopSignal = stop_signal(job_id)
        self.poll_s = poll_s
        self.start_timeout_s = start_timeout_s
        self.grace_s = grace_s
        # A worker stops a cancelled run by killing its process; Prefect then often leaves the run
        # Cancelling for good (it takes no other end from there), so the job ends it after this wait.
        self.cancel_wait_s = cancel_wait_s
        self._failing_since: float | None = None  # reads of the runs' states have failed since (monotonic)
        self._waiting: dict[UUID, asyncio.Future[State]] = {}
        self._since: dict[UUID, tuple[StateType, float]] = {}  # a run's state type, seen since (monotonic)
        self._task: asyncio.Task[None] | None = None
        self._cancelled_at: float | None = None

    async def final_state(self, run_id: UUID) -> State:
        future = self._waiting.get(run_id)
        if future is None:
            future = self._waiting[run_id] = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        return await future

    async def _poll(self) -> None:
        try:
            await self._polling()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # SIGTERM reaches a job as Prefect's TerminationSignal, raised in whatever task runs when it
            # lands: landing here it killed this task alone, and the job went on to its end, to die
            # silently (-15) after. Every waiter gets it instead, so the job stops as SIGTERM says.
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(exc)

    async def _polling(self) -> None:
        while any(not f.done() for f in self._waiting.values()):
            await asyncio.sleep(self.poll_s)
            pending = [run_id for run_id, f in self._waiting.items() if not f.done()]
            if self.signal.status == "cancelled" and self._cancelled_at is None:
                self._cancelled_at = time.monotonic()
                await self._cancel(pending)
            try:
                states = await current_states(pending)
                await self._unstick(states)
            except Exception as exc:  # the API is in trouble, or refuses the read: bounded by the grace
                self._cannot_read(exc)
                continue
            self._failing_since = None
            for run_id, state in states.items():
                if state.is_final():
                    self._waiting[run_id].set_result(state)
                    self._since.pop(run_id, None)
            if self._cancelled_at is not None and time.monotonic() - self._cancelled_at > self.cancel_wait_s:
                late = [run_id for run_id in pending if not self._waiting[run_id].done()]
                gave_up: State = Cancelled(
                    message=f"its worker did not stop it within {self.cancel_wait_s:g} s of the cancel"
                )
                await end_flow_runs(late, gave_up)  # never left Cancelling in the UI
                for run_id in late:
                    self._waiting[run_id].set_result(gave_up)

    async def _cancel(self, pending: list[UUID]) -> None:
        """The job was cancelled: runs no worker started are Cancelled at once (asked to cancel,
        a Scheduled run would wait for a worker to notice); running ones are asked to cancel, and
        their workers stop them."""
        try:
            states = await current_states(pending)
        except Exception:  # cannot tell which started: ask them all, as the UI's Cancel does
            states = {}
        waiting = [r for r, s in states.items() if s.type in (StateType.SCHEDULED, StateType.PENDING)]
        await end_flow_runs(waiting, Cancelled(message=f"not started: {self.signal.why}"))
        await cancel_flow_runs([r for r in pending if r not in set(waiting)], self.signal.why)

    def _cannot_read(self, exc: Exception) -> None:
        """A read of the shard runs' states failed. Past the grace the job stops in one line
        (interrupted, resumable), whatever the reason: it can no longer see a shard end, nor that
        no worker takes them, and waiting on would hang it for good."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            get_run_logger().warning(
                "job %s: cannot read its shard runs' states (%s: %.200s); trying again for %g s",
                self.job_id,
                type(exc).__name__,
                exc,
                self.grace_s,
            )
        elif now - self._failing_since >= self.grace_s and not self.signal.is_set:
            why = (
                f"cannot read its shard runs' states from the Prefect API for {self.grace_s:g} s "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
            get_run_logger().error("job %s: %s", self.job_id, why)
            self.signal.set("interrupted", why)
            for future in self._waiting.values():
                if not future.done():
                    future.set_result(Crashed(message=why))

    def _not_started(self, states: dict[UUID, State]) -> dict[StateType, list[UUID]]:
        """Runs Pending or Scheduled (Late included) for ``start_timeout_s`` or longer, by type."""
        now = time.monotonic()
        overdue: dict[StateType, list[UUID]] = {StateType.PENDING: [], StateType.SCHEDULED: []}
        for run_id, state in states.items():
            seen = self._since.get(run_id)
            if seen is None or seen[0] != state.type:
                self._since[run_id] = (state.type, now)
            elif state.type in overdue and now - seen[1] >= self.start_timeout_s:
                overdue[state.type].append(run_id)
        return overdue

    async def _unstick(self, states: dict[UUID, State]) -> None:
        if self.signal.is_set:
            return
        overdue = self._not_started(states)
        taken = overdue[StateType.PENDING]
        if taken:
            why = f"taken by a worker but not started within {self.start_timeout_s:g} s: its worker was lost"
            get_run_logger().warning("%d shard run(s) %s; their authors run again", len(taken), why)
            await end_flow_runs(taken, Crashed(message=why))
            for run_id in taken:
                states[run_id] = Crashed(message=why)
        waiting = overdue[StateType.SCHEDULED]
        if waiting and not await live_workers(self.pool):
            why = (
                f"no worker is taking shards of work pool {self.pool!r} ({len(waiting)} shard run(s) waited "
                f"{self.start_timeout_s:g} s); start workers (`bookwarm workers start`)"
            )
            get_run_logger().error("job %s: %s", self.job_id, why)
            not_started = [r for r, s in states.items() if s.type in (StateType.SCHEDULED, StateType.PENDING)]
            await end_flow_runs(not_started, Cancelled(message=why))
            self.signal.set("interrupted", why)
