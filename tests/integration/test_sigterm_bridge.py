"""SIGTERM that reaches a flow's outermost scope: Prefect's engine restores the handler it found and
sends the signal again. Over SIG_DFL that killed the CLI silently (exit -15, no line), a race the
job-stop tests met under load; over bookwarm's handler it is TerminationSignal again, which the CLI
reports in one line. A real flow on a real Prefect server, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from prefect import flow
    from prefect.exceptions import TerminationSignal
    from bookwarm.cli.main import hand_sigterm_to_prefect

    @flow
    def signalled():
        os.kill(os.getpid(), signal.SIGTERM)  # lands in the flow's own frame, outside any job's code
        signal.pause()

    hand_sigterm_to_prefect()
    try:
        signalled()
    except TerminationSignal:
        print("caught", flush=True)
        sys.exit(3)
    """
)


def test_a_sigterm_leaving_the_outermost_flow_reaches_the_cli_as_termination(
    prefect_api: str, tmp_path
) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 3 and "caught" in done.stdout, (done.returncode, done.stderr[-2000:])


LOST_IN_A_TASK = textwrap.dedent(
    """
    import asyncio, os, signal, threading, time
    from prefect import flow
    from bookwarm.cli.warm_cmd import run_to_state
    from bookwarm.warming.stop import stop_signal

    @flow
    async def job():
        job_signal = stop_signal("job-1")
        spinning = threading.Event()

        async def background():  # one of a job's own tasks (a watchdog, a lane), busy when the signal lands
            spinning.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                pass

        threading.Thread(target=lambda: (spinning.wait(), os.kill(os.getpid(), signal.SIGTERM))).start()
        task = asyncio.create_task(background())
        deadline = time.monotonic() + 40
        while not job_signal.is_set and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lost = type(task.exception()).__name__ if task.done() else "still running"
        print(f"{job_signal.status}|{job_signal.why}|{lost}", flush=True)

    run_to_state(job)
    """
)


def test_a_sigterm_raised_inside_a_background_task_still_stops_the_job(prefect_api: str, tmp_path) -> None:
    """Prefect's bridge raises TerminationSignal in whatever runs when SIGTERM lands; in a job's own
    background task it is stored there and never seen (the job ran to its end, then died -15). The
    CLI's flow runner reads the signal from the wakeup fd as well: the job's stop signal is set."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", LOST_IN_A_TASK],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, why, in_task = done.stdout.strip().splitlines()[-1].split("|")
    assert in_task == "TerminationSignal", done.stdout  # the signal did land in the background task
    assert (status, why) == ("interrupted", "stopped by SIGTERM"), done.stdout


IN_FLIGHT_FOR_EVER = textwrap.dedent(
    """
    import asyncio, os, signal, threading, time
    from prefect import flow
    from prefect.runtime import flow_run
    import flows.job_run
    from bookwarm.errors import JobStopped
    from bookwarm.settings import resolve
    from bookwarm.warming.context import WarmContext
    from bookwarm.warming.shard import ClaimKeeper
    from bookwarm.warming.stop import stop_signal

    flows.job_run.SIGTERM_GRACE_S = 1.0  # the bound under test, shortened (10 s by default)

    @flow
    async def job():
        job_id = "job-held"
        async with WarmContext(resolve()) as ctx:
            await ctx.jobs.start(job_id, source="t", max_depth=0, authors=[{"name": "A", "key": "a"}], force=False)

            async def warm():
                spinning = threading.Event()

                async def background():  # one of the job's own tasks, busy when the signal lands
                    spinning.set()
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not stop_signal(job_id).is_set:
                        pass

                token = await ctx.hot.claim("a", 600)
                async with ClaimKeeper(ctx, {"a": token}):
                    threading.Thread(target=lambda: (spinning.wait(), os.kill(os.getpid(), signal.SIGTERM))).start()
                    lost = asyncio.create_task(background())
                    await asyncio.Event().wait()  # an author whose provider never answers

            try:
                await flows.job_run.run_job(ctx, job_id, None, warm, run_id=str(flow_run.id))
                print("returned", flush=True)
            except JobStopped as stopped:
                record = await ctx.jobs.get(job_id)
                free = await ctx.hot.claim("a", 60)
                print(f"{stopped.status}|{record['status']}|{bool(free)}", flush=True)

    asyncio.run(job())
    """
)


def test_a_sigterm_lost_in_a_task_ends_the_job_even_with_an_author_that_never_answers(
    flow_env, prefect_api: str, tmp_path
) -> None:
    """A job run by a runner or a worker (not the CLI): the same SIGTERM, lost in one of its tasks,
    stops it, and an author in flight is cancelled at the bound (a runner kills the process 30 s
    after its SIGTERM): the record says interrupted, not running, and the claim is released."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", IN_FLIGHT_FOR_EVER],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "interrupted|interrupted|True", done.stdout
