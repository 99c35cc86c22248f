"""SIGUSR1 to a running job prints what each of its asyncio tasks waits on, down to the line that
waits, and every thread's stack; and hands the same text to the process's other sinks."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bookwarm.task_dump import dump_tasks_on_sigusr1


def test_sigusr1_prints_every_task_and_where_it_waits(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    sunk: list[str] = []

    async def provider_call() -> None:
        await asyncio.Event().wait()

    async def held_author() -> None:
        await provider_call()

    async def scenario() -> None:
        dump_tasks_on_sigusr1(asyncio.get_running_loop(), sunk.append)
        waiting = asyncio.create_task(held_author(), name="shard-7")
        await asyncio.sleep(0)
        signal.raise_signal(signal.SIGUSR1)
        await asyncio.sleep(0)
        waiting.cancel()

    try:
        asyncio.run(scenario())
    finally:
        signal.signal(signal.SIGUSR1, before)
    err = capsys.readouterr().err
    assert "asyncio tasks (SIGUSR1)" in err
    assert "--- shard-7" in err and "held_author" in err
    # the line it waits on, not only the task's outermost coroutine (all Task.print_stack shows)
    assert "in provider_call" in err and "--- thread MainThread" in err
    assert sunk == [err]
