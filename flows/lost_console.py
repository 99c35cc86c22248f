"""A flow process that outlives its console.

A worker runs each flow run as a child whose stdout and stderr are pipes the worker reads. When the
worker dies (SIGKILLed, its container stopped) the child lives on, and the first Prefect log line it
writes meets a broken pipe: rich, which Prefect's console handler prints with, then raises
``SystemExit(1)`` from inside that log call. In an asyncio task or a task-runner thread that ends
one piece of the shard, not the process, so the run kept beating as Running and never ended (a CI
run of the dead-worker pool test: 300 s). The run's logs still reach the Prefect API; only the
console is gone, so the process goes quiet on it and finishes its work."""

from __future__ import annotations

import contextlib
import functools
import logging
import os

from rich.console import Console


def outlive_a_lost_console() -> None:
    """Makes every console of Prefect's log handlers in this process go quiet on a broken pipe,
    rather than exit. Call it once Prefect's logging is set up (in a flow run, it is)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            console = getattr(handler, "console", None)
            if isinstance(console, Console):
                console.on_broken_pipe = functools.partial(_go_quiet, console)  # type: ignore[method-assign]


def _go_quiet(console: Console) -> None:
    """rich's own remedy without its exit: nothing more is printed, and stdout and stderr go to
    /dev/null so that no other writer meets the broken pipe either."""
    console.quiet = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)
