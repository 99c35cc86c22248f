"""The CLI's event loop ends even when a signal raised inside the loop's own step lost a task's
step: the other tasks are cancelled and run their clean-up, and the lost one is left."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from bookwarm.cli.event_loop import run_to_end


class Interrupt(BaseException):
    """What Prefect's SIGTERM bridge raises (TerminationSignal is a BaseException too)."""


def test_a_task_whose_step_was_lost_does_not_hold_the_end() -> None:
    cleaned: list[str] = []
    held: list[asyncio.Future[Any]] = []  # whoever waits on the lost task holds it (a gather did)

    async def job() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("job")  # a job writes its record and releases its claims here

    async def main() -> None:
        loop = asyncio.get_running_loop()
        held.append(asyncio.ensure_future(job()))
        await asyncio.sleep(0)  # the job is waiting now
        held.append(asyncio.ensure_future(asyncio.Event().wait()))  # its first step is queued...
        loop._ready.clear()  # type: ignore[attr-defined]  # ...and lost, as to a signal raised in _run_once
        raise Interrupt

    ended = threading.Event()

    def run() -> None:
        with pytest.raises(Interrupt):
            run_to_end(main(), cleanup_s=0.5)
        ended.set()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)  # asyncio.run's own clean-up would wait for the lost task for ever
    assert ended.is_set(), "the loop's end waited for a task that can never run"
    assert cleaned == ["job"]


def test_it_returns_what_main_returns_and_leaves_no_task() -> None:
    leftover: list[asyncio.Task[None]] = []

    async def main() -> int:
        leftover.append(asyncio.ensure_future(asyncio.sleep(3600)))
        return 7

    assert run_to_end(main()) == 7
    assert leftover[0].cancelled()
