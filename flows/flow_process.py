"""What every flow does first in the process that runs it (the CLI's, a served deployment's, a
worker's child): outlive a lost console (flows.lost_console), dump its asyncio tasks on `kill -USR1`
(bookwarm.task_dump; run by a worker, into the run's log in the Prefect UI too, since a worker keeps
no output of its runs), and, run by a worker, stop with that worker.

Why stop with the worker: a SIGKILLed worker leaves the runs it started running as orphans no one
supervises (the shards that never ended in CI were another matter, found in session 16: a lost cancel,
bookwarm.deadline.end_task). A run whose worker is
gone now stops its jobs as interrupted (claims released, authors in flight finished or left
uncounted) and ends its run not Completed, so the job runs what it left elsewhere, as it does for a
worker that died with its runs; if it cannot stop within ``WORKER_GONE_GRACE_S`` it exits, its
heartbeats stop, and Prefect's automation ends its run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from prefect import get_run_logger

from bookwarm.task_dump import dump_tasks_on_sigusr1
from bookwarm.warming.stop import WORKER_DIED_WHY, stop_every_job_here
from flows.lost_console import outlive_a_lost_console

WORKER_POLL_S = 1.0
WORKER_GONE_GRACE_S = 30.0
WORKER_GONE_EXIT = 70  # os.EX_SOFTWARE

_watching: list[int] = []


def prepare_flow_process() -> None:
    outlive_a_lost_console()
    on_a_runner = started_by_a_runner()
    run_log = get_run_logger().warning if on_a_runner else print  # a runner's run: its log in the UI
    if threading.current_thread() is threading.main_thread():  # a signal handler can only be set there
        sinks = [run_log] if on_a_runner else []
        with contextlib.suppress(ValueError, RuntimeError):
            dump_tasks_on_sigusr1(asyncio.get_running_loop(), *sinks)
    if on_a_runner and not _watching:
        _stop_with_the_worker(asyncio.get_running_loop(), run_log)


def started_by_a_runner() -> bool:
    """This process is a flow run's own (`python -m prefect.engine`, as a worker or a served
    deployment's runner starts one), not a CLI or a test that runs flows in its own process."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == "prefect.engine"


def _stop_with_the_worker(loop: asyncio.AbstractEventLoop, say: Callable[[str], object]) -> None:
    """``say``: the run's log (in the Prefect UI), where the run tells why it stops."""
    parent = os.getppid()
    _watching.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WORKER_POLL_S)
        with contextlib.suppress(Exception):
            say(
                f"its worker (pid {parent}) is gone: this run stops, its authors in flight finished, "
                "the rest left to its job"
            )
        with contextlib.suppress(RuntimeError):  # the loop closed: the run has ended anyway
            loop.call_soon_threadsafe(stop_every_job_here, "interrupted", WORKER_DIED_WHY)
        time.sleep(WORKER_GONE_GRACE_S)
        os._exit(WORKER_GONE_EXIT)

    threading.Thread(target=watch, name="bookwarm-worker-watch", daemon=True).start()
