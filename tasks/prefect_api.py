"""What a job asks the Prefect API: its own flow run's state (the watchdog's probe), and its shard
runs on a work pool (submitted, read, cancelled).

The probe is plain HTTP with a short timeout and no retries, on purpose: the Prefect client retries
for a long time, while the watchdog must notice a lost API within its grace (bookwarm.warming.stop).
"""

from __future__ import annotations

import base64
import contextlib
import ssl
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import State, Worker
from prefect.settings import get_current_settings

from bookwarm.deadline import within
from bookwarm.tls import tls_context
from bookwarm.warming.context import WarmContext
from bookwarm.warming.run_ends import RunEnd, RunEnds
from bookwarm.warming.stop import CANCELLING, RUNNING, Probe

TIMEOUT_S = 3.0


def _api() -> tuple[str, dict[str, str]]:
    api = get_current_settings().api
    headers = {}
    if api.key:
        headers["Authorization"] = f"Bearer {api.key.get_secret_value()}"
    elif api.auth_string:
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return str(api.url or "").rstrip("/"), headers


def _tls() -> ssl.SSLContext:
    """This process's TLS context for the Prefect API, as Prefect's settings ask (its CA file, or
    none verified), built once: a client made per call would otherwise build one each time."""
    api = get_current_settings().api
    return tls_context(api.ssl_cert_file or None, verify=not api.tls_insecure_skip_verify)


def _client() -> Any:
    """Prefect's client with the shared TLS context (it builds one of its own per client otherwise)."""
    from prefect.client.orchestration import get_client

    return get_client(httpx_settings={"verify": _tls()})


def flow_run_probe(flow_run_id: str) -> Probe:
    """Reads the run's state: ``cancelling`` once someone cancelled it; raises when the API fails."""
    url, headers = _api()

    async def probe() -> str:
        if not url:  # no API configured: nothing to watch
            return RUNNING
        async with httpx.AsyncClient(timeout=TIMEOUT_S, headers=headers, verify=_tls()) as client:
            response = await client.get(f"{url}/flow_runs/{flow_run_id}")
            response.raise_for_status()
        state = (response.json().get("state") or {}).get("type")
        return CANCELLING if state in ("CANCELLING", "CANCELLED") else RUNNING

    return probe


async def api_problem(timeout_s: float = TIMEOUT_S) -> str | None:
    """What keeps the Prefect API from taking a run (before one starts), or None. Its health answers
    while its database is down (then every write is a 500): ``/ready`` asks the database too (a
    server without it, such as Prefect Cloud, answers 404 and is taken as ready)."""
    url, headers = _api()
    if not url:
        return None
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers, verify=_tls()) as client:
            health = await client.get(f"{url}/health")
            if health.status_code != 200:
                return f"is not answering (HTTP {health.status_code} on /health)"
            ready = await client.get(f"{url}/ready")
            if ready.status_code == 503:
                return "answers, but not its database (HTTP 503 on /ready)"
            return None
    except httpx.HTTPError:
        return "is not answering"


# --- shards as runs of the warm-authors deployment (a work pool's workers run them) ---

SHARD_TAG = "bookwarm-shard"
CRASH_AUTOMATION = "bookwarm: crash runs that stopped beating"
_OLD_CRASH_AUTOMATIONS = ("bookwarm: crash warm-authors runs that stopped beating",)  # shards only
RUN_TAG = "bookwarm"  # every deployment of prefect.yaml and `deployments serve` carries it
_TERMINAL_EVENTS = {f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed")}


async def submit_shard(
    deployment: str, parameters: dict[str, Any], *, idempotency_key: str, flow_run_name: str
) -> UUID:
    """One shard as a subflow run of the deployment, left for a worker (``timeout=0``). The same
    ``idempotency_key`` returns the run already created: a retried submission never runs twice."""
    from prefect.deployments import arun_deployment

    run = await arun_deployment(
        deployment,
        parameters=parameters,
        timeout=0,
        as_subflow=True,
        idempotency_key=idempotency_key,
        flow_run_name=flow_run_name,
        tags=[SHARD_TAG],
    )
    return run.id


# Prefect's API refuses a read of more than this many runs or workers (422: LimitBody,
# PREFECT_SERVER_API_DEFAULT_LIMIT): every read of many is made in pages of it.
PAGE = 200


async def current_states(flow_run_ids: list[UUID]) -> dict[UUID, State]:
    """The states of ``flow_run_ids``: one API call per ``PAGE`` of them, however many."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states: dict[UUID, State] = {}
    if not flow_run_ids:
        return states
    async with _client() as client:
        for start in range(0, len(flow_run_ids), PAGE):
            chunk = flow_run_ids[start : start + PAGE]
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            )
            states.update({run.id: run.state for run in runs if run.state is not None})
    return states


async def run_has_ended(flow_run_id: str) -> bool:
    """True when Prefect has the run in a final state: a job whose Redis went away before its record
    could say so still reads `running` there, with the heartbeat it last wrote."""
    from uuid import UUID

    state = (await current_states([UUID(flow_run_id)])).get(UUID(flow_run_id))
    return state is not None and state.is_final()


async def live_workers(pool: str) -> list[str]:
    """Names of the pool's workers that beat lately (within 3 of their heartbeat intervals, as
    Prefect's own OFFLINE rule): a dead worker drops out of this within that time."""
    from datetime import UTC, datetime, timedelta

    workers: list[Worker] = []
    async with _client() as client:
        while True:
            page = await client.read_workers_for_work_pool(pool, limit=PAGE, offset=len(workers))
            workers.extend(page)
            if len(page) < PAGE:
                break
    now = datetime.now(UTC)
    return [
        w.name
        for w in workers
        if w.last_heartbeat_time is not None
        and now - w.last_heartbeat_time < timedelta(seconds=3 * (w.heartbeat_interval_seconds or 30))
    ]


async def end_flow_runs(flow_run_ids: list[UUID], state: State) -> None:
    """Force ``state`` (Crashed, Cancelled) on runs that no process will end: not started, or lost."""
    async with _client() as client:
        for run_id in flow_run_ids:
            with contextlib.suppress(Exception):  # already final, or gone
                await client.set_flow_run_state(run_id, state.model_copy(), force=True)


async def resolve_task_runs(task_run_ids: list[str], message: str) -> int:
    """Mark Failed `dead-letter` task runs Completed with ``message``: their authors are dead no
    more, and the UI must not say they are. Returns how many Prefect took."""
    from prefect.states import Completed

    resolved = 0
    async with _client() as client:
        for run_id in task_run_ids:
            if not _uuid(run_id):
                continue
            with contextlib.suppress(Exception):  # gone (retention), or the API failing: still Failed
                await client.set_task_run_state(UUID(run_id), Completed(message=message), force=True)
                resolved += 1
    return resolved


async def cancel_flow_runs(flow_run_ids: list[UUID], why: str) -> None:
    """Ask Prefect to cancel the runs: their workers stop them (the UI's Cancel, for each)."""
    from prefect.states import Cancelling

    async with _client() as client:
        for run_id in flow_run_ids:
            with contextlib.suppress(Exception):  # already final, or gone: nothing to cancel
                await client.set_flow_run_state(run_id, Cancelling(message=why), force=True)


async def ensure_crash_automation(lost_after_s: int) -> None:
    """Prefect's own answer to a worker (or serving process) that dies with its runs: an automation
    that marks any bookwarm deployment's run (tag ``bookwarm``: jobs, shards, enrich, redrive,
    resume...) Crashed once it is silent for ``lost_after_s`` after it started Running or last beat
    (every 30 s, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, which every way bookwarm starts runs sets), so
    a run that died before its first beat is caught too, and no dead run holds a queue's slot.
    Created once per server, replaced when its trigger differs (an older bookwarm's, which watched
    shards only, another window); a job then sees its shard Crashed, and a job run's own record
    reads interrupted when its beats stop (`bookwarm resume`)."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    trigger = EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{RUN_TAG}"},
        after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *_TERMINAL_EVENTS},
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=lost_after_s),
    )
    for old_name in _OLD_CRASH_AUTOMATIONS:
        with contextlib.suppress(ValueError):  # Automation.read raises ValueError when there is none
            await (await Automation.aread(name=old_name)).adelete()
    existing = None
    with contextlib.suppress(ValueError):
        existing = await Automation.aread(name=CRASH_AUTOMATION)
    if existing is not None:
        old = existing.trigger
        if (
            isinstance(old, EventTrigger)
            and old.match_related == trigger.match_related
            and old.after == trigger.after
            and old.expect == trigger.expect
            and old.within == trigger.within
        ):
            return
        await existing.adelete()
    await Automation(
        name=CRASH_AUTOMATION,
        description="A bookwarm run whose worker died goes silent: mark it Crashed, so its queue slot "
        "is free again and its job runs its authors again.",
        trigger=trigger,
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message=f"no heartbeat for {lost_after_s} s: its worker was lost",
                force=True,
            )
        ],
    ).acreate()


# --- a job's final state, given to Prefect when the API is back (bookwarm.warming.run_ends) ---


async def report_run_ends(ends: RunEnds) -> list[str]:
    """Gives Prefect the final state of job runs that ended while it could not be told, and of the
    shard runs still open under them (a shard under an ended job ends with it: under a completed
    job it had done its part, the job waited for every shard). Returns the flow run ids it ended.
    Runs Prefect already holds as final are forgotten; a run whose owning process may still report
    it is left for later. One API read for all pending runs, one more per run whose owner is gone."""
    pending = {run_id: end for run_id, end in (await ends.pending()).items() if _uuid(run_id)}
    if not pending:
        return []
    states = await current_states([UUID(run_id) for run_id in pending])
    settled, ended = [], []
    for run_id, end in pending.items():
        state = states.get(UUID(run_id))
        job_open = state is not None and not state.is_final()
        if not end.owner_gone():
            if not job_open:
                settled.append(run_id)  # its owner told Prefect itself
            continue  # else its own process may still report it
        still_open = ([UUID(run_id)] if job_open else []) + await _open_subflow_runs(UUID(run_id))
        if still_open:
            await end_flow_runs(still_open, _final_state(end))
            ended.append(run_id)
        settled.append(run_id)
    await ends.forget(settled)
    return ended


async def _open_subflow_runs(parent: UUID) -> list[UUID]:
    return [run_id for run_id, _ in await _open_subflows(parent)]


NOT_STARTED = (
    "SCHEDULED",
    "PENDING",
    "PAUSED",
)  # state types of runs no process runs yet (Late is Scheduled)


async def end_unstarted_subflow_runs(parent: UUID, why: str) -> int:
    """A job that stops (cancelled, interrupted) ends the shard runs it submitted that no worker has
    started yet: Cancelled at once, so none starts after the job ended and claims its authors (two
    did, 10 s after a cancel). Running ones are the watcher's (a cancel asks their workers to stop
    them) or finish what they hold (an interrupt: their authors count). Returns how many it ended."""
    from prefect.states import Cancelled

    waiting = [run_id for run_id, kind in await _open_subflows(parent) if kind in NOT_STARTED]
    await end_flow_runs(waiting, Cancelled(message=f"not started: {why}"))
    return len(waiting)


async def _open_subflows(parent: UUID) -> list[tuple[UUID, str]]:
    """The flow runs under ``parent`` that are not final, with their state types, in pages."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    final = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
    open_runs = FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[t for t in StateType if t not in final])),
    )
    found: list[tuple[UUID, str]] = []
    async with _client() as client:
        while True:
            page = await client.read_flow_runs(
                flow_run_filter=open_runs, sort=FlowRunSort.ID_DESC, limit=PAGE, offset=len(found)
            )
            found.extend((run.id, run.state_type.value if run.state_type else "") for run in page)
            if len(page) < PAGE:
                return found


async def report_earlier_run_ends(ctx: WarmContext, timeout_s: float = 10.0) -> None:
    """At a job's start (the API is there: the job's run was just created), what earlier jobs could
    not tell it. Best effort and bounded: the job's own work comes first."""
    from prefect.logging import get_run_logger

    try:
        ended = await within(report_run_ends(ctx.run_ends), timeout_s)
    except Exception as exc:
        get_run_logger().warning(
            "earlier jobs' final states not given to Prefect yet (%s)", type(exc).__name__
        )
        return
    if ended:
        get_run_logger().info(
            "gave Prefect the final state of %d earlier job run(s) that ended while it was unreachable: %s",
            len(ended),
            ", ".join(ended),
        )


def _uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _final_state(end: RunEnd) -> State:
    from prefect.client.schemas.objects import StateType

    kind = StateType(end.state_type)
    message = f"{end.message} (recorded by bookwarm once the Prefect API was back)"
    return State(type=kind, name=kind.value.title(), message=message[:1000])
