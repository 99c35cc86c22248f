"""`kill -USR1 <pid>` of a running `bookwarm` job, or of a flow run's process on a worker: every asyncio
task's stack on stderr (a worker copies its runs' stderr into its own log).

An operator (or a test) whose job seems stuck can see what each task waits on without stopping it.
A plain signal handler, not `loop.add_signal_handler`: that one takes the wakeup fd over, and the
SIGTERM relay (bookwarm.warming.stop) reads SIGTERM from it."""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType


def dump_tasks_on_sigusr1(loop: asyncio.AbstractEventLoop) -> None:
    def dump(signum: int, frame: FrameType | None) -> None:
        tasks = asyncio.all_tasks(loop)
        print(f"bookwarm: {len(tasks)} asyncio tasks (SIGUSR1)", file=sys.stderr)
        for task in tasks:
            print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)
        sys.stderr.flush()

    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, dump)
