"""SIGUSR1 to a running job prints what each of its asyncio tasks waits on."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bookwarm.task_dump import dump_tasks_on_sigusr1


def test_sigusr1_prints_every_task_and_where_it_waits(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGUSR1)

    async def held_author() -> None:
        await asyncio.Event().wait()

    async def scenario() -> None:
        dump_tasks_on_sigusr1(asyncio.get_running_loop())
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
