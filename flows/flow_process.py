"""What every flow does first in the process that runs it (the CLI's, a served deployment's, a
worker's child): outlive a lost console (flows.lost_console), and dump its asyncio tasks on
`kill -USR1` (bookwarm.task_dump), so a run that seems stuck on a worker can be seen, not guessed."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from bookwarm.task_dump import dump_tasks_on_sigusr1
from flows.lost_console import outlive_a_lost_console


def prepare_flow_process() -> None:
    outlive_a_lost_console()
    if threading.current_thread() is threading.main_thread():  # a signal handler can only be set there
        with contextlib.suppress(ValueError, RuntimeError):
            dump_tasks_on_sigusr1(asyncio.get_running_loop())
