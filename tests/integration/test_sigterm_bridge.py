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
