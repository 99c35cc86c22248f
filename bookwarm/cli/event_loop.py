"""`asyncio.run` for the CLI's flows, with an end that cannot hang.

Prefect's SIGTERM bridge raises ``TerminationSignal`` from a signal handler, in whatever the main
thread runs. When it lands inside the event loop's own step (a ready callback taken off the queue,
not yet run), it leaves the loop with that callback lost: the task whose step it was never runs
again, and ``asyncio.run``'s clean-up, which cancels every task and waits for all of them, waits
for that one for ever. Seen once: a `bookwarm warm` sent SIGTERM under load sat 22 minutes in
``_cancel_all_tasks``, its one live task an ``Event.wait()`` whose first step never ran (its job's
record was already written). Here the clean-up waits a bounded time for the cancelled tasks (they
write the job's record and release its claims), then the loop is closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from bookwarm.deadline import within

T = TypeVar("T")

CLEANUP_S = 15.0  # cancelled jobs finish their record within the job's own bounds (5-10 s)


def run_to_end(main: Coroutine[Any, Any, T], cleanup_s: float = CLEANUP_S) -> T:
    """``main`` to its end on a new event loop, as ``asyncio.run`` does; whatever is left of the
    loop's tasks is cancelled and given ``cleanup_s`` to end."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_the_rest(loop, cleanup_s)
            with contextlib.suppress(TimeoutError):
                loop.run_until_complete(within(loop.shutdown_asyncgens(), cleanup_s))
            with contextlib.suppress(TimeoutError):
                loop.run_until_complete(within(loop.shutdown_default_executor(), cleanup_s))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_the_rest(loop: asyncio.AbstractEventLoop, cleanup_s: float) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, _late = loop.run_until_complete(asyncio.wait(tasks, timeout=cleanup_s))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "a task failed while the CLI's flow ended",
                    "exception": task.exception(),
                    "task": task,
                }
            )
