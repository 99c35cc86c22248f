"""`kill -USR1 <pid>` of a running `bookwarm` job, or of a flow run's process on a worker: every asyncio
task's stack and every thread's, on stderr and wherever else the process says (a worker's run: its
log in the Prefect UI, since a worker does not keep its runs' output).

An operator (or a test) whose job seems stuck can see what each task waits on without stopping it.
A plain signal handler, not `loop.add_signal_handler`: that one takes the wakeup fd over, and the
SIGTERM relay (bookwarm.warming.stop) reads SIGTERM from it; and a plain handler runs even when the
loop is stuck, which is when a dump is wanted most."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType


def tasks_and_threads(loop: asyncio.AbstractEventLoop) -> str:
    """Every pending task of ``loop`` with its stack, then every thread's Python stack."""
    out = io.StringIO()
    tasks = asyncio.all_tasks(loop)
    print(f"bookwarm: {len(tasks)} asyncio tasks (SIGUSR1)", file=out)
    for task in tasks:
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=out)
        out.writelines(awaited_chain(task.get_coro()))
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)}", file=out)
        out.writelines(traceback.format_stack(frame, limit=12))
    return out.getvalue()


def awaited_chain(coro: object, limit: int = 40) -> list[str]:
    """Where a suspended coroutine waits, outermost first: its frame, then each one it awaits
    (``cr_await``, ``gi_yieldfrom``, ``ag_await``). `Task.print_stack` shows the outermost only,
    which for a flow is Prefect's engine, not the line that waits."""
    lines: list[str] = []
    while coro is not None and len(lines) < limit:
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "gi_frame", None)
            or getattr(coro, "ag_frame", None)
        )
        if frame is not None:
            lines.append(
                f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}\n'
            )
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
    return lines


def dump_tasks_on_sigusr1(loop: asyncio.AbstractEventLoop, *also: Callable[[str], object]) -> None:
    """On SIGUSR1, the dump on stderr and to each of ``also`` (a sink that fails is skipped)."""

    def dump(signum: int, frame: FrameType | None) -> None:
        text = tasks_and_threads(loop)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(text)
            sys.stderr.flush()
        for sink in also:
            with contextlib.suppress(Exception):
                sink(text)

    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, dump)
